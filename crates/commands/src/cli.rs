//! The command line: clap types only, no I/O.

use cargo_metadata::camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};
use oci_spec::distribution::Reference;

use crate::model::choice::{BaseKind, BuildEngine, Compression, EngineKind};
use crate::oci::reference::{BaseRef, ImageRef, Registry};
use tiny_cross::target::{Selection, Target};
use tiny_engine::VolumeName;

/// Builds the workspace's services as static binaries for Linux (musl), packages them as
/// tiny container images, and proves the images work.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
pub struct Cli<E: Subcommand = NoCommands> {
    /// What to do.
    #[command(subcommand)]
    pub command: Commands<E>,
}

/// The commands of this crate, then the workspace's own (see [`Ours`](crate::Ours)).
// Parsed once per run: the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Commands<E: Subcommand> {
    /// One of this crate's commands.
    #[command(flatten)]
    Builtin(Command),
    /// One of the workspace's own commands.
    #[command(flatten)]
    Ours(E),
}

/// For a workspace that adds no commands of its own.
#[derive(Debug, Subcommand)]
pub enum NoCommands {}

/// This crate's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the `.cargo/` settings (the `xtask` alias, the rustc wrapper, the musl linkers,
    /// the C cross compilers) and `Dockerfile.runtime` into the workspace; the first time,
    /// before the alias exists: `cargo run -p xtask -- init`
    Init(InitArgs),
    /// Cross-compile the service for the musl targets and stage verified static binaries
    Build(BuildArgs),
    /// Build one container image per architecture from the staged binaries
    Image(Box<ImageArgs>),
    /// Push an OCI image layout to a registry: each architecture's image, then the index
    Push(PushArgs),
    /// Fetch a base image for each target's platform into the builtin engine's cache
    Pull(PullArgs),
    /// Merge per-architecture images in a registry into one multi-architecture index
    Index(IndexArgs),
    /// Run each architecture's image as a real container and check that it works
    SmokeTest(SmokeArgs),
    /// Check every tool the commands need: found, or how to get it
    Doctor(DoctorArgs),
    /// Write an SPDX SBOM and SLSA provenance for each target's staged binaries
    Sbom(SbomArgs),
    /// Rebuild HEAD in a clean worktree and compare its binaries and image digests with
    /// what is staged (or pushed)
    Verify(VerifyArgs),
    /// Build and run one target's image locally, locked down as the smoke test runs it, and
    /// stream its logs until Ctrl-C, which stops and removes it
    Run(RunArgs),
    /// Write an ECDSA P-256 key pair for signing: cosign.key (encrypted in cosign's format,
    /// mode 0600) and cosign.pub
    Keygen(KeygenArgs),
    /// Sign an image in a registry as cosign does: each platform's image and the index get a
    /// `.sig` signature and a sigstore bundle referrer
    Sign(SignArgs),
}

/// The arguments of `cargo xtask init`: none. A file that is there already is kept when it is
/// this version's, and in the way otherwise (nothing is written then); a `.cargo/config.toml`
/// of the workspace's own gets ours after its settings when none of its tables are ours.
#[derive(Debug, Args)]
pub struct InitArgs {}

/// The arguments of `cargo xtask build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build for this target, or `all`; repeatable. Also accepts the platform (amd64, arm64,
    /// arm/v7, arm/v6, 386, riscv64, ppc64le, loong64) or the machine (x86_64, aarch64, ...)
    /// [default: `targets` in [workspace.metadata.xtask]: x86_64-unknown-linux-musl and
    /// aarch64-unknown-linux-musl]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// The cargo profile to build with; binaries of any profile but release are staged in
    /// `dist/<profile>/<triple>`
    #[arg(long, value_name = "NAME", default_value = "release")]
    pub profile: String,
    /// Build with the dev-image profile (no LTO, incremental): the same as
    /// `--profile dev-image`
    #[arg(long, conflicts_with = "profile")]
    pub fast: bool,
    /// Print the staged artifacts as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Build for this target; repeatable (amd64, arm64 and the triples are accepted). Two
    /// targets or more get the index `<tag>` of exactly those; one target gets its
    /// `<tag>-<arch>` only, and an index `<tag>` left in the layout that does not list that
    /// very image is taken out [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// Only this declared image (`[workspace.metadata.xtask.images.<NAME>]`); repeatable
    /// [default: every declared image]
    #[arg(long = "image", value_name = "NAME")]
    pub image_names: Vec<String>,
    /// The base image kind [default: `base` in [workspace.metadata.xtask.image], scratch]
    #[arg(long, value_enum)]
    pub base: Option<BaseKind>,
    /// Any base image reference, or `oci:<layout dir>:<ref name>`; overrides --base
    #[arg(long, value_name = "REF")]
    pub base_image: Option<BaseRef>,
    /// What builds the images: the builtin OCI writer (no daemon, reproducible digests), or
    /// docker or podman building Dockerfile.runtime
    #[arg(long, value_enum, default_value_t)]
    pub engine: BuildEngine,
    /// Load the builtin engine's images into this engine; repeatable [default: every engine
    /// that answers]
    #[arg(long, value_enum, value_name = "ENGINE", conflicts_with = "no_load")]
    pub load: Vec<EngineKind>,
    /// Leave the builtin engine's images in the OCI layout only
    #[arg(long)]
    pub no_load: bool,
    /// Where the builtin engine writes its OCI image layout [default: <target dir>/xtask/oci/<name>]
    #[arg(long, value_name = "DIR")]
    pub layout: Option<Utf8PathBuf>,
    /// The compression of the builtin engine's layers (docker before 23.0 cannot pull zstd)
    #[arg(long, value_enum, default_value_t)]
    pub compression: Compression,
    /// The multi-architecture reference `[registry/]name[:tag]`; each architecture is tagged
    /// `<tag>-<arch>`, and `<tag>` names the index of two targets or more
    /// [default: `<name>:<version>` from Cargo.toml]
    #[arg(long, value_name = "REF")]
    pub tag: Option<ImageRef>,
    /// The registry to name the images for, `host:port`
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<Registry>,
    /// Push every architecture's image, then the multi-architecture index (one target pushes
    /// its `<tag>-<arch>` only: merge runners' images with `cargo xtask index`)
    #[arg(long)]
    pub push: bool,
    /// Sign the images as `cargo xtask sign` does, with --key: in the registry after --push,
    /// else in the builtin engine's OCI layout, for `push` to carry
    #[arg(long, requires = "key")]
    pub sign: bool,
    /// The private key --sign signs with (see `sign --key`)
    #[arg(long, value_name = "FILE", requires = "sign")]
    pub key: Option<std::path::PathBuf>,
    /// Build from binaries of the dev-image profile (no LTO, incremental): much faster to
    /// rebuild, larger and slower. Tagged `<tag>-dev` (`<tag>-dev-<arch>`) and labelled
    /// `xtask.profile=dev-image`; `--push` refuses them unless --allow-dev
    #[arg(long)]
    pub fast: bool,
    /// Push dev-image builds all the same (with --fast --push)
    #[arg(long, requires = "push")]
    pub allow_dev: bool,
    /// Push images built from uncommitted changes all the same (their revision label ends
    /// in `-dirty`); refused otherwise, before anything is built
    #[arg(long, requires = "push")]
    pub allow_dirty: bool,
    /// The registry's credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
    /// Print the images as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push this declared image (`[workspace.metadata.xtask.images.<NAME>]`) from its layout
    /// `<target dir>/xtask/oci/<NAME>`; repeatable [default: every declared image]
    #[arg(long = "image", value_name = "NAME", conflicts_with = "layout")]
    pub image_names: Vec<String>,
    /// The registry to push the declared images to, `host:port`: each goes to
    /// `<registry>/<name>:<version>` (and `<version>-<arch>`)
    #[arg(long, value_name = "HOST:PORT")]
    pub registry: Option<Registry>,
    /// The OCI image layout to push instead (a directory with `oci-layout` and
    /// `index.json`); needs --tag
    #[arg(long, value_name = "DIR", requires = "tag")]
    pub layout: Option<std::path::PathBuf>,
    /// Where to push one image, `registry/name:tag`: each architecture's image goes to
    /// `<tag>-<arch>`, and a multi-architecture index to `<tag>` (a single image leaves
    /// `<tag>` alone)
    #[arg(long, value_name = "REF", conflicts_with = "registry")]
    pub tag: Option<Reference>,
    /// What to push: the ref name of an index or of one image in the layout's `index.json`
    /// [default: the index named like --tag's tag, else the images named `<tag>-<arch>`,
    /// else the layout's only index, else every image it lists]
    #[arg(long = "ref", value_name = "NAME")]
    pub name: Option<String>,
    /// Push images labelled as dev-image builds (`image --fast`) all the same
    #[arg(long)]
    pub allow_dev: bool,
    /// Push images built from uncommitted changes (revision label ending in `-dirty`) all
    /// the same, with a warning; refused otherwise
    #[arg(long)]
    pub allow_dirty: bool,
    /// The registry's credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
    /// Print the pushed images and the uploaded byte count as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The base image, best pinned by digest (`registry/name:tag@sha256:...`)
    #[arg(value_name = "REF")]
    pub reference: Reference,
    /// Fetch this target's platform; repeatable [default: `targets` in
    /// [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// The registry's credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
}

/// The arguments of `cargo xtask index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// The index to push, `registry/name:tag`
    #[arg(
        long,
        value_name = "REF",
        requires = "members",
        conflicts_with = "registry"
    )]
    pub tag: Option<Reference>,
    /// The images to list in it, one per platform, each in the same registry (e.g.
    /// `registry/name:tag-amd64`); each platform is read from the image's config
    #[arg(value_name = "MEMBER", requires = "tag")]
    pub members: Vec<Reference>,
    /// Merge each declared image's per-architecture images in this registry instead, `host:port`:
    /// `<registry>/<name>:<version>-<arch>` for every target into `<registry>/<name>:<version>`
    #[arg(long, value_name = "HOST:PORT", required_unless_present = "tag")]
    pub registry: Option<Registry>,
    /// With --registry: merge this declared image only; repeatable [default: every declared
    /// image]
    #[arg(long = "image", value_name = "NAME", requires = "registry")]
    pub image_names: Vec<String>,
    /// With --registry: the architectures to merge; repeatable [default: `targets` in
    /// [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE", requires = "registry")]
    pub targets: Vec<Selection>,
    /// The registry's credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
    /// Print the index and its members as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Credentials for a registry.
#[derive(Debug, Clone, Args)]
pub struct RegistryAuthArgs {
    /// The registry user; the password is read from stdin (with --password-stdin) [default:
    /// what `docker login` or `podman login` stored for the registry (podman's auth.json,
    /// docker's config.json, and the credential helpers they name), else anonymous]
    #[arg(long, value_name = "USER", requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password of --username from stdin
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

/// The arguments of `cargo xtask smoke-test`.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Test this target's image (`<name>:<version>-<arch>`); repeatable
    /// [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// Test this declared image (`[workspace.metadata.xtask.images.<NAME>]`), or this image
    /// reference instead (its architecture read from the image, its checks those of the
    /// declared image its repository is named after, else of the one whose entrypoint it
    /// runs); repeatable [default: every declared image]
    #[arg(long = "image", value_name = "NAME|REF")]
    pub images: Vec<ImageRef>,
    /// The multi-architecture reference the images were built as (see `image --tag`)
    #[arg(long, value_name = "REF")]
    pub tag: Option<ImageRef>,
    /// The container engine [default: docker if its daemon runs and it has BuildKit, else podman]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// Seconds to wait for /healthz after the container starts (emulation is slow)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Test the dev images `image --fast` built (`<tag>-dev-<arch>`), with the same checks
    #[arg(long)]
    pub fast: bool,
    /// Refuse, before any container starts, an image whose registry holds no cosign
    /// signature by this public key for the digest the engine pulled (a local image has none:
    /// refused)
    #[arg(long, value_name = "KEY")]
    pub require_signature: Option<std::path::PathBuf>,
    /// Print the results as JSON (schema in README) instead of a table; progress stays on
    /// stderr
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run this target's image (amd64, arm64 or a triple); it is built as `image --target`
    /// builds it: `<tag>-<arch>` only, the index `<tag>` left as it is while it lists that
    /// very image [default: the host's architecture]
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<Target>,
    /// The declared image (`[workspace.metadata.xtask.images.<NAME>]`)
    /// [default: the first declared]
    #[arg(long = "image", value_name = "NAME")]
    pub image_name: Option<String>,
    /// Serve on this port of 127.0.0.1 [default: a free one]
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// The container engine to run in (the image is loaded into it) [default: docker if its
    /// daemon runs and it has BuildKit, else podman]
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// Keep /data in this named volume, made if missing and kept after the run [default: a
    /// fresh volume, removed with the container]
    #[arg(long, value_name = "NAME")]
    pub volume: Option<VolumeName>,
    /// The multi-architecture reference to build the image as (see `image --tag`)
    #[arg(long, value_name = "REF")]
    pub tag: Option<ImageRef>,
    /// Seconds to wait for /healthz after the container starts (emulation is slow)
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Build and run a dev image (`image --fast`) instead of a release one
    #[arg(long)]
    pub fast: bool,
    /// Refuse, before any container starts, an image the registry --tag names holds no
    /// cosign signature for by this public key (the digest of the image built here)
    #[arg(long, value_name = "KEY")]
    pub require_signature: Option<std::path::PathBuf>,
}

/// The arguments of `cargo xtask sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// Describe this target's build; repeatable (amd64, arm64 and the triples are accepted)
    /// [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// Only this declared image (`[workspace.metadata.xtask.images.<NAME>]`); repeatable
    /// [default: every declared image]
    #[arg(long = "image", value_name = "NAME")]
    pub image_names: Vec<String>,
    /// Write `<DIR>/<triple>/{sbom.spdx.json,provenance.intoto.json}`
    /// [default: <target dir>/xtask/sbom]
    #[arg(long, value_name = "DIR")]
    pub out: Option<Utf8PathBuf>,
    /// Print what was written as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask verify`.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Rebuild and compare this target; repeatable. Two targets or more compare the index
    /// too; one target compares its image alone (`<tag>-<arch>` in the layout, or that
    /// platform's image of --against) [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// Only this declared image (`[workspace.metadata.xtask.images.<NAME>]`); repeatable
    /// [default: every declared image]
    #[arg(long = "image", value_name = "NAME")]
    pub image_names: Vec<String>,
    /// The multi-architecture reference the staged images were built as (see `image --tag`):
    /// its tag names the index in the layout [default: `<name>:<version>` from Cargo.toml]
    #[arg(long, value_name = "REF", conflicts_with = "against")]
    pub tag: Option<ImageRef>,
    /// The staged OCI layout [default: <target dir>/xtask/oci/<name>]
    #[arg(long, value_name = "DIR", conflicts_with = "against")]
    pub layout: Option<Utf8PathBuf>,
    /// Compare the images with this pushed index, `registry/name:tag`, instead of the layout
    /// (with one --target, a single image such as `registry/name:tag-amd64` will do)
    #[arg(long, value_name = "REF")]
    pub against: Option<Reference>,
    /// Also check that each image compared and the index carry a cosign signature by this
    /// public key (cosign.pub), before anything is rebuilt
    #[arg(long, value_name = "FILE")]
    pub key: Option<std::path::PathBuf>,
    /// The registry's credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
    /// Compare with a rebuild of HEAD even though the working tree has uncommitted changes
    #[arg(long)]
    pub allow_dirty: bool,
    /// Print the comparison as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write `<PREFIX>.key` and `<PREFIX>.pub`; an existing file is never overwritten
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: std::path::PathBuf,
    /// Read the password that encrypts the private key from stdin [default: the
    /// COSIGN_PASSWORD environment variable]
    #[arg(long)]
    pub password_stdin: bool,
}

/// The arguments of `cargo xtask sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image to sign, `registry/name:tag` or `registry/name@sha256:...`: an index (each
    /// platform's image and the index are signed) or one image
    #[arg(value_name = "REF")]
    pub reference: Reference,
    /// The private key: cosign's encrypted key file (its password from COSIGN_PASSWORD), or
    /// a PKCS#8 or EC PEM file; readable by its owner only
    #[arg(long, value_name = "FILE")]
    pub key: std::path::PathBuf,
    /// The registry's credentials.
    #[command(flatten)]
    pub auth: RegistryAuthArgs,
    /// Print what was signed as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `cargo xtask doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Check for these targets [default: `targets` in [workspace.metadata.xtask]]
    #[arg(long = "target", value_name = "TRIPLE")]
    pub targets: Vec<Selection>,
    /// Print the tools as JSON (schema in README) instead of a table
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn builtin(cli: Cli) -> Command {
        match cli.command {
            Commands::Builtin(command) => command,
            Commands::Ours(none) => match none {},
        }
    }

    #[test]
    fn the_cli_is_well_formed() {
        <Cli>::command().debug_assert();
    }

    #[test]
    fn targets_repeat_and_accept_shorthands() {
        let cli = <Cli>::try_parse_from([
            "xtask",
            "build",
            "--target",
            "arm64",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .unwrap();
        let Command::Build(args) = builtin(cli) else {
            panic!("not build")
        };
        assert_eq!(
            Selection::expand(&args.targets),
            [Target::Aarch64Musl, Target::X86_64Musl]
        );
    }

    #[test]
    fn index_takes_typed_references_and_a_password_only_from_stdin() {
        let cli = <Cli>::try_parse_from([
            "xtask",
            "index",
            "--tag",
            "127.0.0.1:5000/svc:1.0",
            "127.0.0.1:5000/svc:1.0-amd64",
            "127.0.0.1:5000/svc:1.0-arm64",
            "--username",
            "ci",
            "--password-stdin",
        ])
        .unwrap();
        let Command::Index(args) = builtin(cli) else {
            panic!("not index")
        };
        assert_eq!(args.tag.unwrap().registry(), "127.0.0.1:5000");
        assert_eq!(args.members[1].tag(), Some("1.0-arm64"));
        assert_eq!(args.auth.username.as_deref(), Some("ci"));
        for args in [
            &["xtask", "index", "--tag", "r.io/a:1"][..],
            &[
                "xtask",
                "index",
                "--tag",
                "r.io/a:1",
                "r.io/a:1-amd64",
                "--username",
                "u",
            ],
            &[
                "xtask",
                "index",
                "--tag",
                "r.io/a:1",
                "r.io/a:1-amd64",
                "--password-stdin",
            ],
            &["xtask", "index", "--tag", "r.io/A:1", "r.io/a:1-amd64"],
            // Members without the index they go into, and the reverse.
            &["xtask", "index", "r.io/a:1-amd64"],
            &["xtask", "index", "--tag", "r.io/a:1"],
            &["xtask", "index"],
            &["xtask", "index", "--image", "tiny-service"],
            &[
                "xtask",
                "index",
                "--registry",
                "r.io",
                "--tag",
                "r.io/a:1",
                "r.io/a:1-amd64",
            ],
            &["xtask", "push", "--layout", "dir"],
            &[
                "xtask", "push", "--layout", "dir", "--tag", "r.io/a:1", "--image", "a",
            ],
            &["xtask", "push", "--registry", "r.io", "--tag", "r.io/a:1"],
        ] {
            assert!(<Cli>::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn run_takes_one_target_and_a_checked_volume_name() {
        let cli = <Cli>::try_parse_from([
            "xtask", "run", "--target", "arm64", "--port", "8181", "--volume", "my-data",
        ])
        .unwrap();
        let Command::Run(args) = builtin(cli) else {
            panic!("not run")
        };
        assert_eq!(args.target, Some(Target::Aarch64Musl));
        assert_eq!(args.port, Some(8181));
        assert_eq!(args.volume.unwrap().to_string(), "my-data");
        for args in [
            &["xtask", "run", "--target", "arm64", "--target", "amd64"][..],
            &["xtask", "run", "--volume", "../etc"],
            &["xtask", "run", "--port", "99999"],
        ] {
            assert!(<Cli>::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn fast_means_the_dev_image_profile_and_conflicts_with_another() {
        let cli = <Cli>::try_parse_from(["xtask", "build", "--fast"]).unwrap();
        let Command::Build(args) = builtin(cli) else {
            panic!("not build")
        };
        assert!(args.fast);
        for args in [
            &["xtask", "build", "--fast", "--profile", "release"][..],
            &["xtask", "image", "--fast", "--allow-dev"],
        ] {
            assert!(<Cli>::try_parse_from(args).is_err(), "{args:?}");
        }
        for args in [
            &["xtask", "image", "--fast", "--push", "--allow-dev"][..],
            &[
                "xtask",
                "push",
                "--layout",
                "l",
                "--tag",
                "r.io/a:1",
                "--allow-dev",
            ],
            &["xtask", "smoke-test", "--fast", "--target", "arm64"],
        ] {
            assert!(<Cli>::try_parse_from(args).is_ok(), "{args:?}");
        }
    }

    #[test]
    fn an_unknown_target_is_a_usage_error_naming_the_supported_ones() {
        let err = <Cli>::try_parse_from(["xtask", "build", "--target", "nonsense"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(
            err.to_string()
                .contains("supported targets are x86_64-unknown-linux-musl")
        );
    }

    #[test]
    fn references_and_registries_are_parsed_before_anything_runs() {
        for args in [
            &["xtask", "image", "--tag", "Bad/Ref:1"][..],
            &["xtask", "image", "--base-image", "x y"],
            &["xtask", "smoke-test", "--image", ""],
            &["xtask", "smoke-test", "--tag", "svc:"],
        ] {
            let err = <Cli>::try_parse_from(args).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            assert!(
                err.to_string().contains("invalid image reference `"),
                "{err}"
            );
        }
        let err = <Cli>::try_parse_from(["xtask", "image", "--registry", "not a registry!!"])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid registry `not a registry!!`"),
            "{err}"
        );
        let cli =
            <Cli>::try_parse_from(["xtask", "image", "--registry", "127.0.0.1:5000"]).unwrap();
        let Command::Image(args) = builtin(cli) else {
            panic!("not image")
        };
        assert_eq!(args.registry.as_deref(), Some("127.0.0.1:5000"));
    }
}
