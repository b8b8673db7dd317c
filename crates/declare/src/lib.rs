//! Container images and their checks, declared in a Cargo workspace's root `Cargo.toml`
//! (`[workspace.metadata.xtask]`), checked and resolved against the workspace's packages.
//! It knows nothing of any particular service: the declarations say everything.
//!
//! A declaration looks like this:
//!
//! ```toml
//! # What every image gets unless its own table says otherwise.
//! [workspace.metadata.xtask.image-defaults]
//! package = "notes"
//! size-budget = { scratch = "4 MiB", with-base = "16 MiB" }
//!
//! [workspace.metadata.xtask.images.notes]
//! port = 3000
//! health = "/status/live"
//! healthcheck = ["notectl", "probe"]
//!
//! [[workspace.metadata.xtask.images.notes.checks]]
//! http = "POST /checksum"
//! body = "hello"
//! expect = "adler32:062c0215 words:1\n"
//!
//! # No port: a job that runs to completion (a migration before a rollout).
//! [workspace.metadata.xtask.images.notes-verify]
//! binaries = ["notectl"]
//! entrypoint = "notectl"
//! args = ["verify"]
//! ```
//!
//! Keys of an image table (all optional but `package`, which may come from the defaults):
//!
//! | key           | meaning                                                  | default                    |
//! |---------------|----------------------------------------------------------|----------------------------|
//! | `package`     | the workspace package whose binaries the image ships     | `image-defaults`           |
//! | `binaries`    | which of its binaries, copied to `/usr/local/bin`        | all of them                |
//! | `entrypoint`  | a binary of the image, or an absolute path               | the binary named like the package, else the only one |
//! | `args`        | the entrypoint's default arguments (`CMD`)               | none                       |
//! | `port`        | the port it serves on; no port means a job               | none                       |
//! | `port-env`    | the variable it reads its port from (the smoke test moves it to a free one) | `PORT`  |
//! | `address-env` | the variable it reads its bind address from (set to `127.0.0.1` in tests) | none     |
//! | `listen-env`  | the variable it reads `address:port` from, for a service that takes both in one (set to `127.0.0.1:<port>`) | none |
//! | `health`      | the path that answers 200 once it is live (needs `port`) | required with `port`       |
//! | `healthcheck` | a command baked into the image as `HEALTHCHECK`          | none                       |
//! | `base`        | `scratch` or `alpine`                                    | `scratch`                  |
//! | `alpine`      | the alpine reference, pinned by digest                   | alpine 3.20                |
//! | `size-budget` | `{ scratch = "..", with-base = ".." }`: the largest it may be | no limit              |
//! | `dockerfile`  | the runtime Dockerfile, relative to the workspace root   | `Dockerfile.runtime`       |
//! | `env`         | environment variables set in the image                   | none                       |
//! | `volumes`     | folders owned by the image's user, declared `VOLUME`     | none                       |
//! | `checks`      | HTTP probes and commands the smoke test runs             | none                       |
//!
//! `[workspace.metadata.xtask.image-defaults]` takes the keys every image may share
//! (`package`, `base`, `alpine`, `size-budget`, `dockerfile`, `env`, `volumes`); a key set in an
//! image's table replaces the default's value whole. A check is a table with either
//! `http = "[METHOD] /path"` (`headers = { Content-Type = "..." }` and `body` sent; no
//! `Content-Type` unless declared; `status` expected, default 200, a redirect not followed) or
//! `command = ["binary", "arg", ...]` (`exit` expected, default 0), and optionally `expect`
//! (the whole response body or standard output) or `expect-contains` (a part of it).
//! `after-restart = true` runs a check after the container was stopped and started again on
//! the same volumes, the others before: what the first run stored must still be there.
//! Every mistake is one line naming the table and the key to fix.
//!
//! # Example
//!
//! ```
//! use tiny_declare::{Base, Members, Role, images};
//!
//! // `[workspace.metadata.xtask]` as `cargo metadata` hands it over (JSON).
//! let xtask = serde_json::json!({
//!     "image-defaults": { "package": "notes", "size-budget": { "scratch": "4 MiB" } },
//!     "images": {
//!         "notes": { "port": 3000, "health": "/status/live",
//!                    "checks": [{ "http": "GET /status/live", "expect": "ok" }] },
//!         "notes-verify": { "binaries": ["notectl"], "args": ["verify"] }
//!     }
//! });
//! let members = Members::new([("notes".into(), vec!["notes".into(), "notectl".into()])]);
//! let [notes, job] = &images(&xtask, &members)?[..] else { unreachable!() };
//! assert_eq!(notes.entrypoint.to_string(), "/usr/local/bin/notes");
//! assert!(matches!(notes.role, Role::Service { port: 3000, .. }));
//! assert_eq!(notes.size_budget(Base::Scratch), Some(4 << 20));
//! assert_eq!(job.role, Role::Job);
//! assert_eq!(job.entrypoint.to_string(), "/usr/local/bin/notectl verify");
//!
//! // A mistake is one line that names the table and the key.
//! let wrong = serde_json::json!({ "images": { "notes": { "package": "notes", "port": 0 } } });
//! let error = images(&wrong, &members).unwrap_err().to_string();
//! assert!(error.starts_with("[workspace.metadata.xtask.images.notes] port:"), "{error}");
//! # Ok::<(), tiny_declare::Error>(())
//! ```

#![warn(missing_docs)]

mod error;
mod images;
mod size;

pub use error::Error;
pub use images::*;
pub use size::parse_size;
