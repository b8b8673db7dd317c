//! Supply-chain documents for static binaries and the images that ship them, built from
//! typed values only, so the same inputs always give the same bytes (no random ids, no
//! clock: every time is `SOURCE_DATE_EPOCH`):
//!
//! - [`audit`]: the dependency list cargo-auditable embeds in a binary (`.dep-v0`), read
//!   from the ELF file, and the runtime crate graph of several binaries.
//! - [`spdx`]: an SPDX 2.3 JSON document: the crates, the C code bundled by some of them,
//!   and the files shipped.
//! - [`provenance`]: a SLSA v1 provenance statement (in-toto Statement v1).
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use tiny_sbom::audit::{Graph, VersionInfo};
//! use tiny_sbom::spdx::{ImageFile, SbomInput, render};
//!
//! // What cargo-auditable embeds, once decompressed (read with `VersionInfo::from_elf`).
//! let info: VersionInfo = serde_json::from_str(r#"{"packages":[
//!     {"name":"app","version":"1.0.0","source":"local","dependencies":[1],"root":true},
//!     {"name":"itoa","version":"1.0.15","source":"crates.io"}
//! ]}"#)?;
//! let sbom = render(&SbomInput {
//!     name: "app-1.0.0-x86_64-unknown-linux-musl".into(),
//!     namespace_base: "https://example.com/app".into(),
//!     created: "2023-11-14T22:13:20Z".into(),
//!     creators: vec!["Tool: example".into()],
//!     local_supplier: "Organization: Example".into(),
//!     graph: Graph::runtime(&[info]),
//!     details: BTreeMap::new(),
//!     c_libraries: vec![],
//!     files: vec![ImageFile::from_bytes("/usr/local/bin/app", b"\x7fELF", true)],
//! })?;
//! let document: serde_json::Value = serde_json::from_str(&sbom)?;
//! assert_eq!(document["spdxVersion"], "SPDX-2.3");
//! assert!(sbom.contains("pkg:cargo/itoa@1.0.15"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod audit;
mod error;
pub mod provenance;
pub mod spdx;

pub use error::{Error, Result};
