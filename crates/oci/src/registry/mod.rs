//! A registry client for the OCI distribution API: push images and indexes from an OCI
//! layout, pull a base image (one platform) into a cache layout, read manifests and configs.
//!
//! Written on `ureq` (blocking, already a dependency; its `rustls` feature adds HTTPS) rather
//! than `oci-client` 0.18, by measurement. Cold `cargo build -p xtask` on the 2-core build
//! machine, oci-spec in every variant, each variant calling the client, two rounds under the
//! same load: without a registry client 116-132 s, 41 MB debug binary, 79 crates; ureq +
//! rustls (ring) 133 s, 57 MB, 92 crates; oci-client (reqwest 0.13, hyper, tokio, rustls on
//! aws-lc, whose C build dominates) 315-355 s, 115 MB, 174 crates: the xtask would take
//! 2.5 times as long to build from cold. oci-client would save the HTTP calls and the token
//! flow (about 150 lines here); the rest (credentials from docker and podman files, the
//! layout walk, platform choice, mounts, upload accounting, one-line errors) would be needed
//! on top of it all the same.
//!
//! Loopback registries (127.0.0.1, ::1, localhost) are spoken to over plain HTTP, every other
//! one over HTTPS. Authentication follows the registry's `WWW-Authenticate` challenge:
//! none, Basic, or a Bearer token from the registry's token service.
//!
//! Every request has two deadlines ([`Deadlines`]): one to connect, and one for silence (no
//! byte received or sent for that long, whatever the phase), so a registry that stops
//! answering fails in one line that says what it was doing, never a hang.

mod client;
mod merge;
mod pull;
mod push;
mod sign;

pub use client::*;
pub use merge::*;
pub use pull::*;
pub use push::*;
pub use sign::*;
