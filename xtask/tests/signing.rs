//! Signing checked by verifiers that are not ours, against a real registry: sigstore's Rust
//! implementation (the `sigstore` crate's cosign verification, built from
//! xtask/tests/cosign-verifier) reads the `.sig` signatures, and sigstore's JavaScript
//! verifier (npm `@sigstore/verify`, provisioned by .ci/provision) the bundle referrers, each
//! with the public key `keygen` wrote as its only trust material. Both must accept each
//! signed platform image and refuse an unsigned one, one signed with another key, and one
//! whose manifest was replaced after signing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use support::registry::Registry;
use support::{XTASK, root, xtask_ok_with};

/// Where .ci/provision installs `@sigstore/verify`.
const SIGSTORE_JS: &str = "/usr/local/lib/sigstore-verify/node_modules";
const PASSWORD: &str = "correct horse battery staple";

/// Runs the xtask with `stdin` and `env`; returns (success, stdout, stderr).
fn xtask(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (bool, String, String) {
    eprintln!("$ cargo xtask {}", args.join(" "));
    let out = support::output_with_stdin(
        Command::new(XTASK)
            .args(args)
            .env_remove("COSIGN_PASSWORD")
            .envs(env.iter().copied())
            .current_dir(root()),
        stdin,
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        stderr,
    )
}

/// The test-only verifier's target directory.
fn cosign_verifier_dir() -> PathBuf {
    support::target_dir().join("cosign-verifier")
}

/// The test-only verifier on the `sigstore` crate, built in its own target directory (its
/// own workspace: the project's builds never compile it).
fn cosign_verifier() -> PathBuf {
    let target = cosign_verifier_dir();
    let manifest = root().join("xtask/tests/cosign-verifier/Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "building {} failed", manifest.display());
    target.join("debug/cosign-verifier")
}

/// The two verifiers' answers for one image: (sigstore-rs on `.sig`, sigstore-js on bundles).
struct Verifiers {
    rust: PathBuf,
    host: String,
}

impl Verifiers {
    fn check(&self, repository: &str, tag: &str, key: &Path) -> (bool, bool) {
        let reference = format!("{}/{repository}:{tag}", self.host);
        let rust = Command::new(&self.rust)
            .arg(&reference)
            .arg(key)
            .output()
            .unwrap();
        eprintln!(
            "sigstore-rs {reference}: {}",
            String::from_utf8_lossy(&rust.stdout).trim()
        );
        assert!(
            Path::new(SIGSTORE_JS).join("@sigstore/verify").is_dir(),
            "@sigstore/verify is missing from {SIGSTORE_JS}: run .ci/provision"
        );
        let js = Command::new("node")
            .arg(root().join("xtask/tests/sigstore-js/verify-bundle.js"))
            .args([&self.host, repository, tag])
            .arg(key)
            .env("NODE_PATH", SIGSTORE_JS)
            .output()
            .expect("node must be installed");
        let said = String::from_utf8_lossy(&js.stdout);
        eprintln!("sigstore-js {reference}: {}", said.trim());
        assert!(
            js.status.success() || said.starts_with("refused: "),
            "the JavaScript verifier did not run: {said}{}",
            String::from_utf8_lossy(&js.stderr)
        );
        (rust.status.success(), js.status.success())
    }
}

fn get(url: &str, accept: &str) -> Vec<u8> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(true)
        .build()
        .into();
    agent
        .get(url)
        .header("Accept", accept)
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap()
}

fn put(url: &str, media_type: &str, bytes: &[u8]) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(true)
        .build()
        .into();
    agent
        .put(url)
        .header("Content-Type", media_type)
        .send(bytes)
        .unwrap();
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn real_verifiers_accept_signed_images_and_refuse_unsigned_foreign_and_replaced_ones() {
    let rust_verifier = cosign_verifier();
    let registry = Registry::start();
    let host = registry.host.clone();
    let keys = tempfile::tempdir().unwrap();
    let prefix = |name: &str| keys.path().join(name).to_str().unwrap().to_owned();

    // Keys: the password on stdin, or in COSIGN_PASSWORD; never overwritten.
    let (ok, _, _) = xtask(
        &[
            "keygen",
            "--output-key-prefix",
            &prefix("cosign"),
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert!(ok);
    let (ok, _, _) = xtask(
        &["keygen", "--output-key-prefix", &prefix("other")],
        "",
        &[("COSIGN_PASSWORD", "other password")],
    );
    assert!(ok);
    let private = keys.path().join("cosign.key");
    let public = keys.path().join("cosign.pub");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(&private).unwrap();
    let (ok, _, err) = xtask(
        &[
            "keygen",
            "--output-key-prefix",
            &prefix("cosign"),
            "--password-stdin",
        ],
        "x\n",
        &[],
    );
    assert!(!ok && err.lines().count() == 1 && err.contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&private).unwrap(), before);

    // Built, pushed and signed in one run; the same layout pushed elsewhere unsigned, and
    // signed there with the other key.
    let layout = tempfile::tempdir().unwrap();
    let layout = layout.path().to_str().unwrap();
    let signed_tag = format!("{host}/signed/tiny-service:t");
    xtask_ok_with(
        &[
            "image",
            "--image",
            "tiny-service",
            "--no-load",
            "--layout",
            layout,
            "--tag",
            &signed_tag,
            "--push",
            "--allow-dirty",
            "--sign",
            "--key",
            private.to_str().unwrap(),
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    // The layout's images pushed to another repository, as they are (unsigned).
    let push_copy =
        |repository: &str| push_t(layout, &format!("{host}/{repository}/tiny-service:t"));
    let foreign_key = keys.path().join("other.key");
    // Signs what a repository's tag `t` stands for with one of the two keys.
    let sign = |repository: &str, key: &Path| {
        let password = if key == private {
            PASSWORD
        } else {
            "other password"
        };
        let reference = format!("{host}/{repository}/tiny-service:t");
        xtask_ok_with(
            &["sign", &reference, "--key", key.to_str().unwrap()],
            &[("COSIGN_PASSWORD", password)],
        )
    };
    for repository in ["unsigned", "foreign", "replaced"] {
        push_copy(repository);
    }
    sign("foreign", &foreign_key);

    // Signing again adds nothing (how long it took is for the log: figures come from
    // benchmarks, not from timed assertions).
    let started = Instant::now();
    let again: Value = serde_json::from_str(&xtask_ok_with(
        &[
            "sign",
            &signed_tag,
            "--key",
            private.to_str().unwrap(),
            "--json",
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    ))
    .unwrap();
    let elapsed = started.elapsed();
    eprintln!("signing both platforms and the index again took {elapsed:?}");
    let again = again.as_array().unwrap();
    let what: Vec<&str> = again.iter().map(|s| s["what"].as_str().unwrap()).collect();
    let manifests: Vec<&str> = what.iter().copied().filter(|w| !w.contains(' ')).collect();
    assert_eq!(manifests, ["linux/amd64", "linux/arm64", "index"]);
    // Each platform's SBOM referrer and provenance are signed too.
    for arch in ["amd64", "arm64"] {
        for document in ["sbom", "provenance"] {
            let row = format!("linux/{arch} {document}");
            assert!(what.contains(&row.as_str()), "{row} is not in {what:?}");
        }
    }
    assert!(
        again
            .iter()
            .all(|s| s["signature_added"] == false && s["bundle_added"] == false)
    );

    // The signed image, as the replaced one was before its amd64 manifest was swapped.
    sign("replaced", &private);
    // Another key's signature is kept beside ours.
    sign("foreign", &private);
    // Replaced after signing: the amd64 manifest changes (an annotation added), and an
    // attacker carries the old signatures over to the new digest's tags.
    let base = format!("http://{host}/v2/replaced/tiny-service");
    let original = get(&format!("{base}/manifests/t-amd64"), OCI_MANIFEST);
    let original_hex = support::sha256_hex(&original);
    let mut manifest: Value = serde_json::from_slice(&original).unwrap();
    manifest["annotations"] = serde_json::json!({"replaced": "after signing"});
    let replaced = serde_json::to_vec(&manifest).unwrap();
    let replaced_hex = support::sha256_hex(&replaced);
    put(
        &format!("{base}/manifests/t-amd64"),
        OCI_MANIFEST,
        &replaced,
    );
    let sig = get(
        &format!("{base}/manifests/sha256-{original_hex}.sig"),
        OCI_MANIFEST,
    );
    put(
        &format!("{base}/manifests/sha256-{replaced_hex}.sig"),
        OCI_MANIFEST,
        &sig,
    );
    let referrers = get(
        &format!("{base}/manifests/sha256-{original_hex}"),
        OCI_INDEX,
    );
    put(
        &format!("{base}/manifests/sha256-{replaced_hex}"),
        OCI_INDEX,
        &referrers,
    );

    let verifiers = Verifiers {
        rust: rust_verifier,
        host: host.clone(),
    };
    let other_public = keys.path().join("other.pub");
    for arch in ["amd64", "arm64"] {
        let tag = format!("t-{arch}");
        assert_eq!(
            verifiers.check("signed/tiny-service", &tag, &public),
            (true, true),
            "signed {arch}"
        );
        assert_eq!(
            verifiers.check("unsigned/tiny-service", &tag, &public),
            (false, false),
            "unsigned {arch}"
        );
        assert_eq!(
            verifiers.check("signed/tiny-service", &tag, &other_public),
            (false, false),
            "signed {arch}, checked with another key"
        );
        // Signed by both keys: each verifies with its own.
        assert_eq!(
            verifiers.check("foreign/tiny-service", &tag, &other_public),
            (true, true),
            "two keys {arch}"
        );
    }
    assert_eq!(
        verifiers.check("signed/tiny-service", "t", &public),
        (true, true),
        "the index"
    );
    assert_eq!(
        verifiers.check("replaced/tiny-service", "t-arm64", &public),
        (true, true),
        "the platform left alone"
    );
    assert_eq!(
        verifiers.check("replaced/tiny-service", "t-amd64", &public),
        (false, false),
        "replaced after signing"
    );
    // Only the other key signed this one (a copy of the layout, signed with it alone).
    push_copy("other-only");
    sign("other-only", &foreign_key);
    assert_eq!(
        verifiers.check("other-only/tiny-service", "t-amd64", &public),
        (false, false),
        "signed with another key"
    );

    provenance_envelope_verifies_with_securesystemslib(&host, &public);
    // `verify --key` reads the same signatures and agrees, before anything is rebuilt.
    verify_checks_signatures_first(&host, &public);
    // So does `smoke-test --require-signature`, with the images docker pulled.
    smoke_test_requires_signatures(&host, &public);
    // Signed into the OCI layout, then pushed: the same signatures arrive with the images.
    layout_signatures_travel_with_push(&verifiers, layout, &private, &public, &other_public);
    support::tidy(&[cosign_verifier_dir()]);
}

/// Pushes the image the layout names `t` as `tag`.
fn push_t(layout: &str, tag: &str) -> String {
    xtask_ok_with(
        &[
            "push",
            "--allow-dirty",
            "--layout",
            layout,
            "--ref",
            "t",
            "--tag",
            tag,
        ],
        &[],
    )
}

/// `image --sign` without `--push` signs the images in the builtin engine's OCI layout (the
/// build is the one above, so nothing is compiled again); `verify --key` checks them there,
/// and `push` carries them: both verifiers accept the pushed images, and signing the pushed
/// image again finds every signature (the SBOM's and the provenance envelope too) there.
fn layout_signatures_travel_with_push(
    verifiers: &Verifiers,
    layout: &str,
    private: &Path,
    public: &Path,
    other_public: &Path,
) {
    let host = &verifiers.host;
    let tag = format!("{host}/laysigned/tiny-service:t");
    let (ok, _, err) = xtask(
        &[
            "image",
            "--image",
            "tiny-service",
            "--no-load",
            "--layout",
            layout,
            "--tag",
            &tag,
            "--sign",
            "--key",
            private.to_str().unwrap(),
        ],
        "",
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("for {host}/laysigned/tiny-service")),
        "{err}"
    );
    let index = std::fs::read_to_string(Path::new(layout).join("index.json")).unwrap();
    assert_eq!(index.matches(".sig\"").count(), 5, "{index}");

    // `verify --key` reads the layout's signatures before anything is rebuilt (and then
    // stops at the empty target directory given to it).
    let empty_target = tempfile::tempdir().unwrap();
    let verify = |key: &Path| {
        xtask(
            &[
                "verify",
                "--allow-dirty",
                "--image",
                "tiny-service",
                "--layout",
                layout,
                "--tag",
                &tag,
                "--key",
                key.to_str().unwrap(),
            ],
            "",
            &[("CARGO_TARGET_DIR", empty_target.path().to_str().unwrap())],
        )
    };
    let (ok, _, err) = verify(public);
    assert!(!ok);
    assert!(
        err.contains("verified the signatures of t in") && err.contains("3 manifests signed by"),
        "{err}"
    );
    assert!(
        err.lines().last().unwrap().contains("no staged binaries"),
        "{err}"
    );
    let (ok, _, err) = verify(other_public);
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("  ")).collect();
    assert!(
        !ok && lines.len() == 1 && lines[0].contains("signed by other keys only"),
        "{err}"
    );

    push_t(layout, &tag);
    for image in ["t-amd64", "t-arm64", "t"] {
        assert_eq!(
            verifiers.check("laysigned/tiny-service", image, public),
            (true, true),
            "{image} signed in the layout, then pushed"
        );
        assert_eq!(
            verifiers.check("laysigned/tiny-service", image, other_public),
            (false, false),
            "{image} signed in the layout, checked with another key"
        );
    }
    // Pushed where another key signed already: its signature stays beside ours.
    push_t(layout, &format!("{host}/foreign/tiny-service:t"));
    for key in [public, other_public] {
        assert_eq!(
            verifiers.check("foreign/tiny-service", "t-amd64", key),
            (true, true),
            "pushed over another key's signature, checked with {}",
            key.display()
        );
    }
    let again: Value = serde_json::from_str(&xtask_ok_with(
        &["sign", &tag, "--key", private.to_str().unwrap(), "--json"],
        &[("COSIGN_PASSWORD", PASSWORD)],
    ))
    .unwrap();
    let again = again.as_array().unwrap();
    assert_eq!(again.len(), 7, "{again:?}");
    assert!(
        again
            .iter()
            .all(|s| s["signature_added"] == false && s["bundle_added"] == false),
        "{again:?}"
    );
}

/// The provenance of the signed amd64 image, as a DSSE envelope attached beside it: in-toto's
/// own library (securesystemslib, provisioned by .ci/provision) verifies it with the public
/// key, and refuses it once one byte of its payload is changed.
fn provenance_envelope_verifies_with_securesystemslib(host: &str, public: &Path) {
    let base = format!("http://{host}/v2/signed/tiny-service");
    let image = get(&format!("{base}/manifests/t-amd64"), OCI_MANIFEST);
    let hex = support::sha256_hex(&image);
    // distribution 2.8 has no referrers API: the fallback tag lists them.
    let referrers: Value =
        serde_json::from_slice(&get(&format!("{base}/manifests/sha256-{hex}"), OCI_INDEX)).unwrap();
    let dsse = "application/vnd.dsse.envelope.v1+json";
    let listed: Vec<&Value> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == dsse)
        .collect();
    assert_eq!(listed.len(), 1, "{referrers}");
    let manifest: Value = serde_json::from_slice(&get(
        &format!("{base}/manifests/{}", listed[0]["digest"].as_str().unwrap()),
        OCI_MANIFEST,
    ))
    .unwrap();
    assert_eq!(manifest["artifactType"], dsse);
    assert_eq!(manifest["subject"]["digest"], format!("sha256:{hex}"));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let envelope = get(&format!("{base}/blobs/{layer}"), "*/*");
    let mut json: Value = serde_json::from_slice(&envelope).unwrap();
    assert_eq!(json["payloadType"], "application/vnd.in-toto+json");

    let dir = tempfile::tempdir().unwrap();
    let verify = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = Command::new("python3")
            .arg(root().join("xtask/tests/securesystemslib/verify-dsse.py"))
            .arg(&path)
            .arg(public)
            .output()
            .expect("python3 must be installed");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!("securesystemslib {name}: {said}");
        assert!(
            out.status.success() || said.starts_with("refused: "),
            "securesystemslib did not run: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success()
    };
    assert!(
        verify("provenance.dsse.json", &envelope),
        "the signed provenance"
    );
    // One byte of the statement changed.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut payload = b64.decode(json["payload"].as_str().unwrap()).unwrap();
    let at = payload.len() / 2;
    payload[at] ^= 0x01;
    json["payload"] = Value::String(b64.encode(&payload));
    let changed = serde_json::to_vec(&json).unwrap();
    assert!(!verify("changed.dsse.json", &changed), "one byte changed");
}

/// Removes the images a test pulled or tagged in docker, also when an assertion fails.
struct Pulled(Vec<String>);

impl Drop for Pulled {
    fn drop(&mut self) {
        let _ = Command::new("docker").arg("rmi").args(&self.0).output();
    }
}

/// `smoke-test --require-signature` refuses an unsigned image and a local one before any
/// container starts, and tests the signed one.
fn smoke_test_requires_signatures(host: &str, public: &Path) {
    let public = public.to_str().unwrap();
    let signed = format!("{host}/signed/tiny-service:t-amd64");
    let unsigned = format!("{host}/unsigned/tiny-service:t-amd64");
    let local = format!("xtask-signing-test-{}/tiny-service:t", std::process::id());
    let _pulled = Pulled(vec![signed.clone(), unsigned.clone(), local.clone()]);
    for image in [&signed, &unsigned] {
        let out = Command::new("docker")
            .args(["pull", "-q", image])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker pull {image}: {out:?}");
    }
    let out = Command::new("docker")
        .args(["tag", &signed, &local])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let smoke = |image: &str| {
        xtask(
            &[
                "smoke-test",
                "--engine",
                "docker",
                "--image",
                image,
                "--require-signature",
                public,
            ],
            "",
            &[],
        )
    };
    for (image, says) in [
        (&unsigned, "is not signed"),
        (
            &local,
            "names no registry, so there is no signature to check it against",
        ),
    ] {
        let (ok, _, err) = smoke(image);
        assert!(!ok, "{image} was accepted");
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("  ")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(says), "{err}");
        assert!(
            !err.contains("healthz"),
            "a container started for {image}: {err}"
        );
    }
    let (ok, _, err) = smoke(&signed);
    assert!(ok, "{err}");
    assert!(err.contains("verified the signatures of"), "{err}");
}

/// `verify --key` against each image above: a missing, foreign or replaced one fails in one
/// line naming the manifest and the fix, before any rebuild; the signed one passes the check
/// (and then stops at the empty target directory given to it, instead of rebuilding).
fn verify_checks_signatures_first(host: &str, public: &Path) {
    let public = public.to_str().unwrap();
    let empty_target = tempfile::tempdir().unwrap();
    let empty_target = empty_target.path().to_str().unwrap();
    let verify = |against: &str, one_target: bool| {
        let mut args = vec![
            "verify",
            "--allow-dirty",
            "--key",
            public,
            "--against",
            against,
        ];
        if one_target {
            args.extend(["--target", "x86_64-unknown-linux-musl"]);
        }
        let started = Instant::now();
        let (ok, _, err) = xtask(&args, "", &[("CARGO_TARGET_DIR", empty_target)]);
        (ok, err, started.elapsed())
    };
    let refused = |against: &str, one_target: bool, says: &[&str]| {
        let (ok, err, _) = verify(against, one_target);
        assert!(!ok, "verify --key accepted {against}");
        // Progress lines are indented; the refusal is one line.
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("  ")).collect();
        assert_eq!(lines.len(), 1, "{against}: {err}");
        for said in says {
            assert!(
                lines[0].contains(said),
                "{against}: {err} does not say {said}"
            );
        }
    };
    refused(
        &format!("{host}/unsigned/tiny-service:t"),
        false,
        &["linux/amd64 sha256:", "is not signed", "cargo xtask sign"],
    );
    refused(
        &format!("{host}/other-only/tiny-service:t"),
        false,
        &["linux/amd64 sha256:", "signed by other keys only", public],
    );
    refused(
        &format!("{host}/replaced/tiny-service:t-amd64"),
        true,
        &[
            "image sha256:",
            "was changed after signing",
            "put back the image that was signed",
        ],
    );
    // A private key where the public one belongs.
    let private = public.replace(".pub", ".key");
    let (ok, _, err) = xtask(
        &[
            "verify",
            "--allow-dirty",
            "--key",
            &private,
            "--against",
            &format!("{host}/signed/tiny-service:t"),
        ],
        "",
        &[],
    );
    assert!(
        !ok && err.lines().count() == 1 && err.contains("verifying needs the public key"),
        "{err}"
    );

    let (ok, err, elapsed) = verify(&format!("{host}/signed/tiny-service:t"), false);
    eprintln!(
        "verify --key read and checked the signatures of both platforms and the index in {elapsed:?}"
    );
    assert!(!ok);
    assert!(
        err.contains("verified the signatures of") && err.contains("3 manifests signed by"),
        "{err}"
    );
    let last = err.lines().last().unwrap();
    assert!(last.contains("no staged binaries"), "{err}");
}
