//! Pushing, pulling and merging against a real registry (Debian's `docker-registry`) on
//! 127.0.0.1, checked with skopeo: no container engine involved. Each test starts its own
//! registry and makes its own OCI layout with oci-spec's types.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use support::registry::Registry;
use support::{XTASK, platforms, root, succeed};

/// Runs the xtask with the credential files pointed into `home` (none unless a test puts
/// them there), and `stdin` on its standard input.
fn xtask(args: &[&str], home: &Path, stdin: &str) -> Output {
    xtask_in(Command::new(XTASK).args(args), home, stdin)
}

/// Runs `command` (the xtask, or something that runs it) as `xtask` does; what `command`
/// already sets or removes of these variables stays as it is.
fn xtask_in(command: &mut Command, home: &Path, stdin: &str) -> Output {
    eprintln!("$ {command:?}");
    let defaults = [
        ("HOME", Some(home.to_owned())),
        ("DOCKER_CONFIG", Some(home.join("docker"))),
        ("XDG_RUNTIME_DIR", Some(home.join("run"))),
        ("XDG_CONFIG_HOME", Some(home.join("config"))),
        ("REGISTRY_AUTH_FILE", None),
    ];
    for (key, value) in defaults {
        if command.get_envs().any(|(k, _)| k == key) {
            continue;
        }
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    support::output_with_stdin(command.current_dir(root()), stdin)
}

fn xtask_ok(args: &[&str], home: &Path) -> String {
    let out = xtask(args, home, "");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "cargo xtask {args:?} failed:\n{stdout}"
    );
    stdout
}

/// Runs xtask expecting failure; returns its one-line error.
fn xtask_fails(args: &[&str], home: &Path, stdin: &str) -> String {
    let out = xtask(args, home, stdin);
    assert!(!out.status.success(), "cargo xtask {args:?} succeeded");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    err
}

fn skopeo(args: &[&str]) -> Value {
    serde_json::from_slice(&succeed(Command::new("skopeo").args(args)).stdout).unwrap()
}

/// The manifest or index bytes exactly as the registry serves them.
fn raw(reference: &str) -> Vec<u8> {
    succeed(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{reference}")),
    )
    .stdout
}

fn inspect_raw(reference: &str) -> Value {
    serde_json::from_slice(&raw(reference)).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An OCI layout with one small image per architecture (a gzipped tar holding one file
/// that names the architecture) and an image index over them, as the builtin engine
/// writes it.
struct Layout {
    dir: tempfile::TempDir,
}

impl Layout {
    fn new(arches: &[&str], content: &str) -> Layout {
        Layout::with_revision(arches, content, None)
    }

    /// With `org.opencontainers.image.revision` set to `revision` in each config, as
    /// `image` labels its images.
    fn with_revision(arches: &[&str], content: &str, revision: Option<&str>) -> Layout {
        let labels: std::collections::HashMap<String, String> = revision
            .map(|r| ("org.opencontainers.image.revision".to_owned(), r.to_owned()))
            .into_iter()
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let write = |bytes: &[u8]| {
            let digest = sha256(bytes);
            std::fs::write(
                root.join("blobs/sha256").join(&digest["sha256:".len()..]),
                bytes,
            )
            .unwrap();
            digest
        };
        let descriptor = |media: MediaType, bytes: &[u8]| -> Descriptor {
            DescriptorBuilder::default()
                .media_type(media)
                .size(bytes.len() as u64)
                .digest(write(bytes).parse::<oci_spec::image::Digest>().unwrap())
                .build()
                .unwrap()
        };
        let mut entries = Vec::new();
        for arch in arches {
            let tar = tar_with_file("hello.txt", format!("{content} {arch}\n").as_bytes());
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            gz.write_all(&tar).unwrap();
            let layer_bytes = gz.finish().unwrap();
            let layer = descriptor(MediaType::ImageLayerGzip, &layer_bytes);
            let config = ImageConfigurationBuilder::default()
                .architecture(Arch::from(*arch))
                .os(Os::Linux)
                .config(
                    ConfigBuilder::default()
                        .entrypoint(vec!["/hello".to_owned()])
                        .labels(labels.clone())
                        .build()
                        .unwrap(),
                )
                .rootfs(
                    RootFsBuilder::default()
                        .typ("layers")
                        .diff_ids(vec![sha256(&tar)])
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            let config = descriptor(
                MediaType::ImageConfig,
                config.to_string().unwrap().as_bytes(),
            );
            let manifest = ImageManifestBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageManifest)
                .config(config)
                .layers(vec![layer])
                .build()
                .unwrap();
            let mut entry = descriptor(
                MediaType::ImageManifest,
                manifest.to_string().unwrap().as_bytes(),
            );
            entry.set_platform(Some(
                PlatformBuilder::default()
                    .os(Os::Linux)
                    .architecture(Arch::from(*arch))
                    .build()
                    .unwrap(),
            ));
            entries.push(entry);
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(entries)
            .build()
            .unwrap();
        let index = descriptor(MediaType::ImageIndex, index.to_string().unwrap().as_bytes());
        let top = ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(vec![index])
            .build()
            .unwrap();
        top.to_file(root.join("index.json")).unwrap();
        Layout { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

/// A ustar archive with one regular file, written by hand: the tar format needs no crate
/// for one entry.
fn tar_with_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    header[100..107].copy_from_slice(b"0000644");
    header[108..115].copy_from_slice(b"0000000");
    header[116..123].copy_from_slice(b"0000000");
    header[124..135].copy_from_slice(format!("{:011o}", content.len()).as_bytes());
    header[136..147].copy_from_slice(b"00000000000");
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap()
}

#[test]
fn push_uploads_once_and_pull_brings_one_platform_back() {
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let layout = Layout::new(&["amd64", "arm64"], "push");
    let tag = format!("{}/test/app:1.0", registry.host);

    let first = json(&xtask_ok(
        &["push", "--layout", layout.path(), "--tag", &tag, "--json"],
        home.path(),
    ));
    assert!(first["uploaded_bytes"].as_u64().unwrap() > 0, "{first}");
    let index = inspect_raw(&tag);
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    let arm = skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}-arm64"),
    ]);
    assert_eq!(arm["Architecture"], "arm64", "{arm}");

    // Unchanged images: every blob is already there, nothing is uploaded again, and the
    // index keeps its digest.
    let second = json(&xtask_ok(
        &["push", "--layout", layout.path(), "--tag", &tag, "--json"],
        home.path(),
    ));
    assert_eq!(second["uploaded_bytes"], 0, "{second}");
    assert_eq!(second["uploaded_blobs"], 0, "{second}");
    assert_eq!(second["digest"], first["digest"]);

    // The base, pinned by the index digest, pulled for one platform into the cache layout.
    let pinned = format!("{tag}@{}", first["digest"].as_str().unwrap());
    let out = xtask_ok(&["pull", &pinned, "--target", "arm64"], home.path());
    let cache = out
        .lines()
        .find_map(|l| l.strip_prefix("cache: "))
        .unwrap_or_else(|| panic!("{out}"));
    let cache = root().join(cache);
    let arm_digest = first["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["platform"] == "linux/arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(out.contains(&arm_digest), "{out}");
    let name = format!("{pinned}+linux-arm64");
    let cached = skopeo(&["inspect", &format!("oci:{}:{name}", cache.display())]);
    assert_eq!(cached["Architecture"], "arm64", "{cached}");
    assert_eq!(cached["Digest"], arm_digest.as_str());
    let unpacked = tempfile::tempdir().unwrap();
    let bundle = unpacked.path().join("bundle");
    succeed(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:{name}", cache.display()))
            .arg(&bundle),
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/hello.txt")).unwrap(),
        "push arm64\n"
    );
    // Pinned and cached: served without the registry.
    drop(registry);
    let again = xtask_ok(&["pull", &pinned, "--target", "arm64"], home.path());
    assert!(again.contains(&arm_digest), "{again}");
}

#[test]
fn basic_auth_takes_docker_config_podman_auth_or_stdin_and_refuses_wrong_ones_in_one_line() {
    let registry = Registry::with_basic_auth("ci", "right");
    let home = tempfile::tempdir().unwrap();
    let layout = Layout::new(&["amd64"], "auth");
    let tag = format!("{}/secure/app:1", registry.host);
    let push = ["push", "--layout", layout.path(), "--tag", &tag];

    let err = xtask_fails(&push, home.path(), "");
    assert!(
        err.contains(&format!("registry {} requires credentials", registry.host)),
        "{err}"
    );

    let config = |dir: &str, file: &str, password: &str| -> PathBuf {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("ci:{password}"));
        let path = home.path().join(dir).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
                registry.host
            ),
        )
        .unwrap();
        path
    };
    let docker = config("docker", "config.json", "wrong");
    let err = xtask_fails(&push, home.path(), "");
    assert!(
        err.contains(&format!(
            "registry {} refused the credentials for ci (from {})",
            registry.host,
            docker.display()
        )),
        "{err}"
    );
    config("docker", "config.json", "right");
    xtask_ok(&push, home.path());

    // podman's auth.json comes first.
    let podman = config("run", "containers/auth.json", "wrong");
    let err = xtask_fails(&push, home.path(), "");
    assert!(err.contains(&podman.display().to_string()), "{err}");

    // --username with the password on stdin wins over both files.
    let mut with_user = push.to_vec();
    with_user.extend(["--username", "ci", "--password-stdin"]);
    let out = xtask(&with_user, home.path(), "right\n");
    assert!(out.status.success());
    let err = xtask_fails(&with_user, home.path(), "nope\n");
    assert!(
        err.contains("refused the credentials for ci (from --username and --password-stdin)"),
        "{err}"
    );
}

/// The file podman's login writes as root without `XDG_RUNTIME_DIR` (or `DOCKER_CONFIG`)
/// is `/run/containers/0/auth.json`: both commands run in a mount namespace of their own with
/// a fresh folder over `/run/containers`, so the machine's own file is never touched.
#[test]
fn podman_login_as_root_without_xdg_runtime_dir_is_read_by_push() {
    let registry = Registry::with_basic_auth("ci", "right");
    let home = tempfile::tempdir().unwrap();
    let run_containers = tempfile::tempdir().unwrap();
    let layout = Layout::new(&["amd64"], "podman-login");
    let tag = format!("{}/secure/podman:1", registry.host);
    std::fs::create_dir_all("/run/containers").unwrap();
    let script = r#"mount --bind "$1" /run/containers &&
        podman login --tls-verify=false --username ci --password-stdin "$2" >&2 &&
        exec "$3" push --layout "$4" --tag "$5""#;
    let out = xtask_in(
        Command::new("unshare")
            .args(["--mount", "sh", "-c", script, "sh"])
            .arg(run_containers.path())
            .args([&registry.host, XTASK, layout.path(), &tag])
            // podman 4 logs in to $DOCKER_CONFIG/config.json when that is set.
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_CONFIG"),
        home.path(),
        "right\n",
    );
    assert!(out.status.success(), "podman login, then push, failed");
    let written = run_containers.path().join("0/auth.json");
    assert!(
        std::fs::read_to_string(&written)
            .unwrap()
            .contains(&registry.host),
        "podman did not write {}",
        written.display()
    );
    assert_eq!(
        inspect_as(&tag, "ci:right")["mediaType"],
        MediaType::ImageIndex.to_string()
    );
}

/// What `skopeo inspect --raw` shows of `reference`, logged in with `creds` (`user:pass`).
fn inspect_as(reference: &str, creds: &str) -> Value {
    skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds,
        &format!("docker://{reference}"),
    ])
}

/// A `docker-credential-<name>` script on PATH that knows one registry: `user` with
/// `secret`, and for every other server says what docker's helpers say.
fn credential_helper(bin: &Path, name: &str, host: &str, user: &str, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bin.join(format!("docker-credential-{name}"));
    std::fs::create_dir_all(bin).unwrap();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread server\nif [ \"$server\" = '{host}' ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'\n  exit 1\nfi\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn docker_credential_helpers_are_run_for_cred_helpers_and_creds_store() {
    let registry = Registry::with_basic_auth("ci", "right");
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let layout = Layout::new(&["amd64"], "helper");
    let tag = format!("{}/secure/helper:1", registry.host);
    let push = |stdin: &str| {
        xtask_in(
            Command::new(XTASK)
                .args(["push", "--layout", layout.path(), "--tag", &tag])
                .env("PATH", &path),
            home.path(),
            stdin,
        )
    };
    let config = home.path().join("docker/config.json");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let write_config = |text: String| std::fs::write(&config, text).unwrap();

    // credHelpers names a helper for this registry alone.
    credential_helper(&bin, "test", &registry.host, "ci", "right");
    write_config(format!(
        r#"{{"credHelpers": {{"{}": "test"}}}}"#,
        registry.host
    ));
    assert!(push("").status.success(), "push with credHelpers failed");
    assert_eq!(
        inspect_as(&tag, "ci:right")["mediaType"],
        MediaType::ImageIndex.to_string()
    );

    // credsStore is the helper for every registry; a wrong secret is refused naming it.
    credential_helper(&bin, "store", &registry.host, "ci", "wrong");
    write_config(r#"{"credsStore": "store"}"#.to_owned());
    let out = push("");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "registry {} refused the credentials for ci (from docker-credential-store, credsStore in {})",
            registry.host,
            config.display()
        )),
        "{err}"
    );

    // A helper that is not installed is named.
    write_config(r#"{"credsStore": "nosuch"}"#.to_owned());
    let out = push("");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(
        err.contains("the credential helper docker-credential-nosuch (credsStore in")
            && err.contains("is not installed"),
        "{err}"
    );

    // A helper without credentials for the registry: the message lists where we looked
    // and the logins that write there.
    credential_helper(&bin, "store", "elsewhere.io", "ci", "right");
    write_config(r#"{"credsStore": "store"}"#.to_owned());
    let out = push("");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    let host = &registry.host;
    for says in [
        format!("registry {host} requires credentials and none are stored for it (looked in "),
        format!(
            "docker-credential-store (credsStore in {})",
            config.display()
        ),
        format!("`podman login {host}` (writes {})", config.display()),
        format!("`docker login {host}` (writes docker-credential-store)"),
    ] {
        assert!(err.contains(&says), "{err} does not say {says}");
    }
}

#[test]
fn index_merges_images_pushed_separately_and_refuses_bad_members() {
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let host = &registry.host;
    // Two CI runners, each pushing its own architecture; the arm64 one to another
    // repository of the same registry.
    let amd = Layout::new(&["amd64"], "runner");
    let arm = Layout::new(&["arm64"], "runner");
    xtask_ok(
        &[
            "push",
            "--layout",
            amd.path(),
            "--tag",
            &format!("{host}/app:ci"),
        ],
        home.path(),
    );
    xtask_ok(
        &[
            "push",
            "--layout",
            arm.path(),
            "--tag",
            &format!("{host}/runners/app:ci"),
        ],
        home.path(),
    );
    let amd64 = format!("{host}/app:ci-amd64");
    let arm64 = format!("{host}/runners/app:ci-arm64");
    let tag = format!("{host}/app:1.0");

    let merged = json(&xtask_ok(
        &["index", "--tag", &tag, &arm64, &amd64, "--json"],
        home.path(),
    ));
    // The arm64 image's config and layer were linked into `app`, not sent again.
    assert_eq!(merged["mounted_blobs"], 2, "{merged}");
    assert_eq!(merged["uploaded_bytes"], 0, "{merged}");
    let index = inspect_raw(&tag);
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    assert_eq!(merged["digest"].as_str().unwrap(), sha256(&raw(&tag)));
    // Every entry resolves in the index's own repository.
    for entry in index["manifests"].as_array().unwrap() {
        let digest = entry["digest"].as_str().unwrap();
        let manifest = inspect_raw(&format!("{host}/app@{digest}"));
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
    }
    // The order the members are given in does not change the index.
    let again = json(&xtask_ok(
        &["index", "--tag", &tag, &amd64, &arm64, "--json"],
        home.path(),
    ));
    assert_eq!(again["digest"], merged["digest"]);

    let err = xtask_fails(&["index", "--tag", &tag, &amd64, &amd64], home.path(), "");
    assert!(err.contains("are both linux/amd64"), "{err}");
    let err = xtask_fails(
        &["index", "--tag", &tag, &amd64, &format!("{host}/app:ci")],
        home.path(),
        "",
    );
    assert!(err.contains("is itself an index"), "{err}");
}

#[test]
fn an_unreachable_registry_is_one_line_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let layout = Layout::new(&["amd64"], "nowhere");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = xtask_fails(
        &[
            "push",
            "--layout",
            layout.path(),
            "--tag",
            &format!("127.0.0.1:{port}/app:1"),
        ],
        home.path(),
        "",
    );
    assert!(
        err.contains(&format!("registry 127.0.0.1:{port} is unreachable")),
        "{err}"
    );
}

/// A blob of `repository`, as the registry serves it.
fn blob(host: &str, repository: &str, digest: &str) -> Vec<u8> {
    let mut response = ureq::get(format!("http://{host}/v2/{repository}/blobs/{digest}"))
        .call()
        .unwrap();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    assert_eq!(sha256(&bytes), digest);
    bytes
}

/// `sha256` of each regular file in a gzipped layer, by path (`/usr/local/bin/service`).
fn layer_files(gzipped: &[u8]) -> Vec<(String, String)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gzipped));
    let mut files = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = format!("/{}", entry.path().unwrap().display());
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
            files.push((path, format!("{:x}", Sha256::digest(&bytes))));
        }
    }
    files
}

/// The SBOM and provenance `image --push` attaches to each platform's image are found from
/// the image's digest alone, through the referrers tag schema (distribution 2.8 has no
/// referrers API): read with skopeo, their blobs are the layout's, the SBOM lists the
/// binaries with the sha256 of the files in the image's layers, and the provenance names
/// the manifest digest. A second push uploads nothing and leaves the tag as it was; `index`
/// (our client reading the tag) copies them into the index's repository.
#[test]
fn documents_attached_on_push_are_found_from_each_image_digest() {
    let registry = Registry::start();
    let host = &registry.host;
    let repository = "attached/tiny-service";
    let tag = format!("{host}/{repository}:t");
    let layout = tempfile::tempdir().unwrap();
    let dir = layout.path().to_str().unwrap();
    let images: Value = serde_json::from_str(&support::xtask_ok(&[
        "image",
        "--no-load",
        "--push",
        "--tag",
        &tag,
        "--layout",
        dir,
        "--json",
    ]))
    .unwrap();
    let images = images.as_array().unwrap();
    assert_eq!(images.len(), 2);
    let mut tags = Vec::new();
    for image in images {
        let digest = image["digest"].as_str().unwrap();
        let referrers_tag = format!("{host}/{repository}:{}", digest.replace(':', "-"));
        let listed = inspect_raw(&referrers_tag);
        assert_eq!(
            listed["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let entries = listed["manifests"].as_array().unwrap();
        let mut types: Vec<&str> = entries
            .iter()
            .map(|e| e["artifactType"].as_str().unwrap())
            .collect();
        types.sort();
        assert_eq!(
            types,
            ["application/spdx+json", "application/vnd.in-toto+json"]
        );
        assert_eq!(image["attached"].as_array().unwrap().len(), 2, "{image}");
        // The image's files, from its layers in the registry.
        let manifest = inspect_raw(&format!("{host}/{repository}@{digest}"));
        let files: Vec<(String, String)> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| layer_files(&blob(host, repository, l["digest"].as_str().unwrap())))
            .collect();
        for entry in entries {
            let artifact = format!("{host}/{repository}@{}", entry["digest"].as_str().unwrap());
            let referrer = inspect_raw(&artifact);
            assert_eq!(referrer["subject"]["digest"], digest);
            assert_eq!(
                referrer["config"]["mediaType"],
                "application/vnd.oci.empty.v1+json"
            );
            let layer = referrer["layers"][0]["digest"].as_str().unwrap();
            let document = blob(host, repository, layer);
            let in_layout = std::fs::read(
                layout
                    .path()
                    .join("blobs/sha256")
                    .join(&layer["sha256:".len()..]),
            )
            .unwrap();
            assert_eq!(document, in_layout, "{artifact}");
            let document: Value = serde_json::from_slice(&document).unwrap();
            if entry["artifactType"] == "application/spdx+json" {
                for binary in ["/usr/local/bin/service", "/usr/local/bin/migrate"] {
                    let (_, sha) = files.iter().find(|(p, _)| p == binary).unwrap();
                    let listed = document["files"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|f| f["fileName"] == format!(".{binary}"))
                        .unwrap_or_else(|| panic!("{binary} not in the sbom of {digest}"));
                    let checksum = listed["checksums"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|c| c["algorithm"] == "SHA256")
                        .unwrap();
                    assert_eq!(checksum["checksumValue"], sha.as_str(), "{binary}");
                }
            } else {
                let hex = &digest["sha256:".len()..];
                let subjects = document["subject"].as_array().unwrap();
                assert!(
                    subjects.iter().any(|s| s["digest"]["sha256"] == hex),
                    "{subjects:?}"
                );
            }
        }
        tags.push((
            referrers_tag,
            raw(&format!("{host}/{repository}:{}", digest.replace(':', "-"))),
        ));
    }

    // Pushed again: nothing uploaded, the referrers tags unchanged.
    let again: Value = serde_json::from_str(&support::xtask_ok(&[
        "push", "--layout", dir, "--tag", &tag, "--json",
    ]))
    .unwrap();
    assert_eq!(again["uploaded_bytes"], 0, "{again}");
    for image in again["images"].as_array().unwrap() {
        assert_eq!(image["referrers"], 2, "{image}");
    }
    for (referrers_tag, before) in &tags {
        assert_eq!(&raw(referrers_tag), before, "{referrers_tag}");
    }

    // `index` reads each member's referrers with our client and copies them along.
    let merged = format!("{host}/merged/tiny-service:m");
    let members: Vec<String> = images
        .iter()
        .map(|i| format!("{tag}-{}", i["arch"].as_str().unwrap()))
        .collect();
    let mut args = vec!["index", "--tag", merged.as_str()];
    args.extend(members.iter().map(String::as_str));
    support::xtask_ok(&args);
    for (referrers_tag, before) in &tags {
        let copied = referrers_tag.replace(repository, "merged/tiny-service");
        assert_eq!(&raw(&copied), before, "{copied}");
    }
}

/// `git status` says the tracked files are as committed: the clone below builds HEAD.
fn assert_clean_tree() {
    let status = succeed(
        Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .current_dir(root()),
    );
    assert!(
        status.stdout.is_empty(),
        "commit your changes first: the second clone builds HEAD"
    );
}

/// Copies `from` to `to` (parents made), as a CI cache restores a folder.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    succeed(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// The HTTP status of `GET /v2/<repository>/manifests/<tag>`.
fn manifest_status(host: &str, repository: &str, tag: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .get(format!("http://{host}/v2/{repository}/manifests/{tag}"))
        .header(
            "Accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .call()
        .unwrap()
        .status()
        .as_u16()
}

/// The flow "Across machines" in the README, with two clones standing in for two runners:
/// this checkout pushes its amd64 image and a second clone of HEAD, with a target dir of
/// its own, pushes its arm64 image, both with `image --target X --push --tag R:ci`. Each
/// push writes its `ci-<arch>` and neither writes `ci`; `index` merges the two into the
/// very bytes `image` writes for the same manifests; `verify --against` the merged index
/// passes (a cold rebuild of both targets), and so does `verify --target arm64 --against`
/// it (its arm64 entry alone, as the CI workflow's runners check theirs). The clone's target dir is seeded with this
/// checkout's arm64 and host artifacts and its zig, as a CI cache restores them: registry
/// crates are reused, the workspace's crates (whose fingerprints carry the clone's path)
/// build from cold there, with the clone's own compiler wrappers. Needs a clean working
/// tree, since the clone builds HEAD.
#[test]
fn per_architecture_pushes_from_two_clones_merge_into_the_index_image_writes_and_verify_accepts() {
    assert_clean_tree();
    let registry = Registry::start();
    let host = &registry.host;
    let repository = "clones/tiny-service";
    let ci = format!("{host}/{repository}:ci");
    let scratch = tempfile::tempdir().unwrap();
    let layout = |name: &str| scratch.path().join(name).to_str().unwrap().to_owned();
    let started = std::time::Instant::now();

    // Runner one: this checkout, amd64.
    let amd_layout = layout("amd64");
    let amd: Value = serde_json::from_str(&support::xtask_ok(&[
        "image",
        "--no-load",
        "--target",
        "amd64",
        "--push",
        "--tag",
        &ci,
        "--layout",
        &amd_layout,
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        manifest_status(host, repository, "ci"),
        404,
        "a single-platform push wrote the tag"
    );

    // Runner two: a clone of HEAD with its own target dir, arm64.
    let clone = scratch.path().join("clone");
    succeed(
        Command::new("git")
            .arg("clone")
            .arg("--quiet")
            .arg(root())
            .arg(&clone),
    );
    let ours = Path::new(XTASK).parent().unwrap().parent().unwrap();
    let theirs = clone.join("target");
    for seeded in ["aarch64-unknown-linux-musl/release", "release", "xtask/zig"] {
        copy_dir(&ours.join(seeded), &theirs.join(seeded));
    }
    let seeded = started.elapsed();
    let arm_layout = layout("arm64");
    let args = [
        "image",
        "--no-load",
        "--target",
        "arm64",
        "--push",
        "--tag",
        &ci,
        "--layout",
        &arm_layout,
        "--json",
    ];
    eprintln!("$ (in {}) cargo xtask {}", clone.display(), args.join(" "));
    let mut command = Command::new(XTASK);
    command
        .args(args)
        .current_dir(&clone)
        .env("CARGO_TARGET_DIR", &theirs)
        .stderr(Stdio::inherit());
    // A fresh runner: the compiler wrappers are the clone's own, not this checkout's.
    for (key, _) in std::env::vars() {
        if key.starts_with("CC_") || key.starts_with("AR_") {
            command.env_remove(key);
        }
    }
    let clone_started = std::time::Instant::now();
    let arm: Value = serde_json::from_slice(&succeed(&mut command).stdout).unwrap();
    let clone_build = clone_started.elapsed();
    assert_eq!(manifest_status(host, repository, "ci"), 404);
    for (image, arch) in [(&amd, "amd64"), (&arm, "arm64")] {
        assert_eq!(image[0]["arch"], arch, "{image}");
        assert_eq!(image[0]["layout"]["index"], Value::Null, "{image}");
        let pushed = raw(&format!("{ci}-{arch}"));
        assert_eq!(image[0]["digest"].as_str().unwrap(), sha256(&pushed));
    }

    // The merge, and the index `image` writes for the same two manifests.
    let merged_tag = format!("{host}/{repository}:0.1.0");
    let merged = json(&support::xtask_ok(&[
        "index",
        "--tag",
        &merged_tag,
        &format!("{ci}-arm64"),
        &format!("{ci}-amd64"),
        "--json",
    ]));
    let both_layout = layout("both");
    let both: Value = serde_json::from_str(&support::xtask_ok(&[
        "image",
        "--no-load",
        "--tag",
        &ci,
        "--layout",
        &both_layout,
        "--json",
    ]))
    .unwrap();
    for image in both.as_array().unwrap() {
        let arch = image["arch"].as_str().unwrap();
        let pushed = if arch == "amd64" { &amd } else { &arm };
        assert_eq!(image["digest"], pushed[0]["digest"], "{arch}: {image}");
    }
    let written = both[0]["layout"]["index_digest"].as_str().unwrap();
    assert_eq!(merged["digest"].as_str().unwrap(), written, "{merged}");
    let in_layout = std::fs::read(
        Path::new(&both_layout)
            .join("blobs/sha256")
            .join(&written["sha256:".len()..]),
    )
    .unwrap();
    assert_eq!(raw(&merged_tag), in_layout);

    let verify_started = std::time::Instant::now();
    let report: Value = serde_json::from_str(&support::xtask_ok(&[
        "verify",
        "--against",
        &merged_tag,
        "--json",
    ]))
    .unwrap();
    assert_eq!(report["passed"], true, "{report}");
    assert!(
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["what"] == "index" && r["result"] == "pass"),
        "{report}"
    );
    let verify_both = verify_started.elapsed();
    // One platform's entry of the index, as each native runner of the CI workflow checks
    // its own (.github/workflows/images.yml).
    let one: Value = serde_json::from_str(&support::xtask_ok(&[
        "verify",
        "--target",
        "arm64",
        "--against",
        &merged_tag,
        "--json",
    ]))
    .unwrap();
    assert_eq!(one["passed"], true, "{one}");
    assert!(
        one["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["what"] == "image linux/arm64" && r["result"] == "pass"),
        "{one}"
    );
    eprintln!(
        "seeding the clone: {:.1} s; the clone's arm64 build and push: {:.1} s; verify: {:.1} s (arm64 alone: {:.1} s); in all {:.1} s",
        seeded.as_secs_f64(),
        clone_build.as_secs_f64(),
        verify_both.as_secs_f64(),
        verify_started.elapsed().as_secs_f64() - verify_both.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Names the layout's one index `name` in its `index.json`, and lists there too the index
/// of `other` (blobs copied) named `other_name`: a layout after `image` with two tags.
fn name_indexes(layout: &Layout, name: &str, other: &Layout, other_name: &str) {
    let read = |l: &Layout| -> Value {
        serde_json::from_slice(&std::fs::read(l.dir.path().join("index.json")).unwrap()).unwrap()
    };
    let blobs = other.dir.path().join("blobs/sha256");
    for blob in std::fs::read_dir(&blobs).unwrap() {
        let blob = blob.unwrap();
        std::fs::copy(
            blob.path(),
            layout
                .dir
                .path()
                .join("blobs/sha256")
                .join(blob.file_name()),
        )
        .unwrap();
    }
    let mut top = read(layout);
    let mut theirs = read(other)["manifests"][0].clone();
    top["manifests"][0]["annotations"] =
        serde_json::json!({"org.opencontainers.image.ref.name": name});
    theirs["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": other_name});
    top["manifests"].as_array_mut().unwrap().push(theirs);
    std::fs::write(
        layout.dir.path().join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();
}

/// A layout naming two indexes: `push` takes the one named like the tag, or the one
/// `--ref` names, and otherwise refuses in one line naming both and the flag. Images built
/// from uncommitted changes are refused unless `--allow-dirty`, which pushes them with a
/// warning.
#[test]
fn push_picks_an_index_by_tag_or_ref_and_refuses_dirty_builds_unless_allowed() {
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let host = &registry.host;
    let layout = Layout::new(&["amd64", "arm64"], "release");
    let ci = Layout::new(&["amd64", "arm64"], "ci build");
    name_indexes(&layout, "1.0", &ci, "ci");
    let digest_of = |name: &str| -> String {
        let top: Value =
            serde_json::from_slice(&std::fs::read(layout.dir.path().join("index.json")).unwrap())
                .unwrap();
        top["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == name)
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let push = |tag: &str, extra: &[&str]| {
        let mut args = vec!["push", "--layout", layout.path(), "--tag", tag, "--json"];
        args.extend(extra);
        json(&xtask_ok(&args, home.path()))
    };
    let by_tag = push(&format!("{host}/app:ci"), &[]);
    assert_eq!(by_tag["digest"].as_str().unwrap(), digest_of("ci"));
    let by_ref = push(&format!("{host}/app:prod"), &["--ref", "1.0"]);
    assert_eq!(by_ref["digest"].as_str().unwrap(), digest_of("1.0"));
    let err = xtask_fails(
        &[
            "push",
            "--layout",
            layout.path(),
            "--tag",
            &format!("{host}/app:x"),
        ],
        home.path(),
        "",
    );
    assert!(
        err.contains("lists 2 image indexes (`1.0`, `ci`) and none is named `x` like the tag: pick one with --ref <name>"),
        "{err}"
    );

    let dirty = Layout::with_revision(&["amd64"], "dirty", Some("0123abc-dirty"));
    let tag = format!("{host}/dirty/app:t");
    let args = ["push", "--layout", dirty.path(), "--tag", tag.as_str()];
    let err = xtask_fails(&args, home.path(), "");
    assert!(
        err.contains("refusing to push an image built from uncommitted changes (org.opencontainers.image.revision=0123abc-dirty)")
            && err.contains("--allow-dirty"),
        "{err}"
    );
    let out = xtask(&[&args[..], &["--allow-dirty"]].concat(), home.path(), "");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: pushing sha256:") && stderr.contains("0123abc-dirty"),
        "{stderr}"
    );
}
