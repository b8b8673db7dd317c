//! Every engine renders the same recipe: images of `Dockerfile.runtime` built by the builtin
//! engine, docker and podman hold the same files (path, type, mode, owner, size, content,
//! mtime) and the same config. The builtin engine's OCI layout is also read by umoci and
//! skopeo. Needs docker and podman (`.ci/provision`); uses its own tags and removes them.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{run, succeed, xtask_ok};

const REPO: &str = "xtask-images-test/tiny-service";
/// The repository of the base-image test, apart so that each test removes only its own.
const BASE_REPO: &str = "xtask-images-test/on-base";
const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// One file as the image holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    sha256: String,
    mtime: u64,
}

type Tree = BTreeMap<String, Node>;

/// Applies layer tars in order (later entries replace earlier ones, as overlays do).
fn apply(tree: &mut Tree, layer: &[u8]) {
    let mut archive = tar::Archive::new(layer);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if path.is_empty() {
            continue;
        }
        assert!(!path.contains(".wh."), "no whiteouts expected: {path}");
        let header = entry.header().clone();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let kind = match header.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => 'f',
            other => panic!("unexpected entry type {other:?} at {path}"),
        };
        tree.insert(
            path,
            Node {
                kind,
                mode: header.mode().unwrap() & 0o7777,
                uid: header.uid().unwrap(),
                gid: header.gid().unwrap(),
                size: bytes.len() as u64,
                sha256: format!("{:x}", Sha256::digest(&bytes)),
                mtime: header.mtime().unwrap(),
            },
        );
    }
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The image `ref_name` names in an OCI layout: its file tree and config.
fn from_layout(layout: &Path, ref_name: &str) -> (Tree, Value) {
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let descriptor = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == ref_name)
        .unwrap_or_else(|| panic!("no {ref_name} in {index}"));
    let manifest: Value =
        serde_json::from_slice(&blob(descriptor["digest"].as_str().unwrap())).unwrap();
    let config: Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let mut tree = Tree::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let bytes = blob(layer["digest"].as_str().unwrap());
        match layer["mediaType"].as_str().unwrap() {
            "application/vnd.oci.image.layer.v1.tar+gzip" => apply(&mut tree, &gunzip(&bytes)),
            "application/vnd.oci.image.layer.v1.tar" => apply(&mut tree, &bytes),
            other => panic!("unexpected layer type {other}"),
        }
    }
    (tree, config)
}

/// An engine's image through `save` as a docker-archive: its file tree and config.
fn from_engine(engine: &str, reference: &str, dir: &Path) -> (Tree, Value) {
    std::fs::create_dir_all(dir).unwrap();
    let archive = dir.join(format!("{engine}.tar"));
    let mut args = vec!["save", "--output", archive.to_str().unwrap()];
    if engine == "podman" {
        args.extend(["--format", "docker-archive"]);
    }
    args.push(reference);
    run(engine, &args);
    let unpacked = dir.join(engine);
    std::fs::create_dir_all(&unpacked).unwrap();
    tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .unpack(&unpacked)
        .unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(unpacked.join(manifest[0]["Config"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut tree = Tree::new();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let bytes = std::fs::read(unpacked.join(layer.as_str().unwrap())).unwrap();
        // podman may store layers compressed in its archive.
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            gunzip(&bytes)
        } else {
            bytes
        };
        apply(&mut tree, &bytes);
    }
    (tree, config)
}

/// What the engines must agree on in a config (the base's name aside: each engine names
/// the base its own way).
fn runtime(config: &Value) -> BTreeMap<&'static str, Value> {
    let c = &config["config"];
    let mut out = BTreeMap::new();
    for key in [
        "User",
        "Env",
        "Entrypoint",
        "Cmd",
        "Labels",
        "Healthcheck",
        "Volumes",
        "ExposedPorts",
        "WorkingDir",
        "StopSignal",
    ] {
        // The same meaning written two ways: podman writes `Cmd: []` and no `WorkingDir`
        // where BuildKit writes no `Cmd` and `WorkingDir: "/"`.
        let value = match &c[key] {
            Value::String(s) if s.is_empty() || (key == "WorkingDir" && s == "/") => Value::Null,
            Value::Array(a) if a.is_empty() => Value::Null,
            other => other.clone(),
        };
        out.insert(key, value);
    }
    if let Some(labels) = out.get_mut("Labels").and_then(Value::as_object_mut) {
        labels.remove("org.opencontainers.image.base.name");
    }
    out.insert("architecture", config["architecture"].clone());
    out.insert("os", config["os"].clone());
    out
}

/// Holds an engine's image (`theirs`) to the builtin engine's.
fn assert_same(engine: &str, arch: &str, theirs: &(Tree, Value), builtin: &(Tree, Value)) {
    let ((tree, config), (builtin_tree, builtin_config)) = (theirs, builtin);
    assert_eq!(
        runtime(config),
        runtime(builtin_config),
        "{engine} {arch}: config"
    );
    for (path, node) in builtin_tree {
        let mut theirs = tree.get(path).cloned();
        // BuildKit (docker 20.10) keeps a synced copy of the build context and gives a
        // folder the time it first received it, whatever the context says: folder times
        // cannot be made to match there. File times do.
        if let Some(theirs) = theirs
            .as_mut()
            .filter(|n| engine == "docker" && n.kind == 'd')
        {
            theirs.mtime = node.mtime;
        }
        assert_eq!(theirs.as_ref(), Some(node), "{engine} {arch}: {path}");
    }
    let extra: Vec<_> = tree
        .keys()
        .filter(|p| !builtin_tree.contains_key(*p))
        .collect();
    assert!(
        extra.is_empty(),
        "{engine} {arch}: only in {engine}: {extra:?}"
    );
}

/// Removes a test's images (those of one repository) from both engines, also when an
/// assertion failed.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for engine in ["docker", "podman"] {
            let Ok(out) = Command::new(engine)
                .args(["images", "--format", "{{.Repository}} {{.Tag}}"])
                .output()
            else {
                continue;
            };
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some((repo, tag)) = line.split_once(' ') else {
                    continue;
                };
                if repo.trim_start_matches("localhost/") == self.0 {
                    let image = format!("{repo}:{tag}");
                    let _ = Command::new(engine)
                        .args(["rmi", "--force", &image])
                        .output();
                }
            }
        }
    }
}

#[test]
fn builtin_docker_and_podman_build_the_same_image() {
    let _cleanup = Cleanup(REPO);
    let tmp = tempfile::tempdir().unwrap();
    let layout: PathBuf = tmp.path().join("layout");
    let layout_arg = layout.to_str().unwrap();
    let tag = |engine: &str| format!("{REPO}:{engine}");

    xtask_ok(&[
        "image",
        "--tag",
        &tag("builtin"),
        "--layout",
        layout_arg,
        "--load",
        "docker",
    ]);
    xtask_ok(&["image", "--engine", "docker", "--tag", &tag("docker")]);
    xtask_ok(&["image", "--engine", "podman", "--tag", &tag("podman")]);

    for arch in ARCHES {
        let (builtin_tree, builtin_config) = from_layout(&layout, &format!("builtin-{arch}"));
        assert!(
            builtin_tree.contains_key("usr/local/bin/service"),
            "{builtin_tree:?}"
        );
        assert_eq!(builtin_tree["data"].uid, 65532);
        for engine in ["docker", "podman"] {
            let dir = tmp.path().join(format!("{engine}-{arch}"));
            let theirs = from_engine(engine, &format!("{}-{arch}", tag(engine)), &dir);
            let builtin = (builtin_tree.clone(), builtin_config.clone());
            assert_same(engine, arch, &theirs, &builtin);
        }
    }

    // Readers of OCI layouts: umoci unpacks each architecture; skopeo copies one into docker
    // with the same image ID (the config's digest) as the builtin engine's own load.
    for arch in ARCHES {
        let bundle = tmp.path().join(format!("bundle-{arch}"));
        let image = format!("{layout_arg}:builtin-{arch}");
        run(
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &image,
                bundle.to_str().unwrap(),
            ],
        );
        assert!(bundle.join("rootfs/usr/local/bin/service").is_file());
        assert!(bundle.join("config.json").is_file());
    }
    let copied = format!("{REPO}:skopeo-amd64");
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{layout_arg}:builtin-amd64"),
            &format!("docker-daemon:{copied}"),
        ],
    );
    let id = |reference: &str| {
        run(
            "docker",
            &["image", "inspect", "--format", "{{.Id}}", reference],
        )
    };
    assert_eq!(id(&copied), id(&format!("{}-amd64", tag("builtin"))));
}

/// A base other than scratch: a small image made by docker, copied into an OCI layout by
/// skopeo, is the builtin engine's base; docker builds on the same image. Both inherit its
/// env, workdir, labels and files alike, and the base's layers come first.
#[test]
fn a_base_from_a_layout_is_inherited_as_docker_inherits_it() {
    let _cleanup = Cleanup(BASE_REPO);
    let tmp = tempfile::tempdir().unwrap();
    let context = tmp.path().join("base");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("hello"), "from the base\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY hello /etc/hello\nENV PATH=/bin BASEVAR=1 PORT=1\n\
         LABEL base.label=yes\nWORKDIR /work\nCMD [\"/bin/sh\"]\n",
    )
    .unwrap();
    let base = format!("{BASE_REPO}:base");
    succeed(
        Command::new("docker")
            .args([
                "build",
                "--quiet",
                "--tag",
                &base,
                context.to_str().unwrap(),
            ])
            .env("DOCKER_BUILDKIT", "0"),
    );
    let bases = tmp.path().join("bases");
    let bases_arg = bases.to_str().unwrap();
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("docker-daemon:{base}"),
            &format!("oci:{bases_arg}:base"),
        ],
    );

    let layout = tmp.path().join("layout");
    xtask_ok(&[
        "image",
        "--target",
        "amd64",
        "--base-image",
        &format!("oci:{bases_arg}:base"),
        "--tag",
        &format!("{BASE_REPO}:on-base"),
        "--layout",
        layout.to_str().unwrap(),
        "--no-load",
    ]);
    xtask_ok(&[
        "image",
        "--engine",
        "docker",
        "--target",
        "amd64",
        "--base-image",
        &base,
        "--tag",
        &format!("{BASE_REPO}:docker-on-base"),
    ]);
    let builtin = from_layout(&layout, "on-base-amd64");
    let docker = from_engine(
        "docker",
        &format!("{BASE_REPO}:docker-on-base-amd64"),
        tmp.path(),
    );
    assert_same("docker", "amd64", &docker, &builtin);
    let (tree, config) = builtin;
    assert_eq!(tree["etc/hello"].size, 14);
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/bin",
            "BASEVAR=1",
            "PORT=8080",
            "DATABASE_PATH=/data/service.db"
        ])
    );
    assert_eq!(c["WorkingDir"], "/work");
    assert_eq!(c["Labels"]["base.label"], "yes");
    assert_eq!(c["Cmd"], Value::Null, "ENTRYPOINT drops the base's CMD");
}
