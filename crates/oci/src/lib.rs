//! Container images as data, without a container engine:
//!
//! - [`recipe`]: a runtime Dockerfile (`FROM`, `COPY`, `USER`, `ENTRYPOINT`, ...; no `RUN`)
//!   parsed into a [`recipe::Recipe`] that every engine renders the same way.
//! - [`json`]: the canonical JSON every OCI document is written in (keys sorted, so the same
//!   value always hashes the same), and the multi-architecture image index.
//! - [`referrers`]: SBOM and provenance attached to an image as OCI referrers.
//! - [`auth`]: registry credentials as docker and podman find them (files, helpers) and the
//!   registry's authentication challenge.
//! - [`epoch`]: the `SOURCE_DATE_EPOCH` instant stamped into every "created" field.
//!
//! Nothing here knows of cargo or of a particular service.
//!
//! # Example
//!
//! ```
//! use tiny_oci::epoch::Epoch;
//! use tiny_oci::json::{canonical_document, canonical_json};
//! use tiny_oci::recipe::{Base, Recipe};
//!
//! let recipe = Recipe::parse(
//!     "FROM scratch\nCOPY app /usr/local/bin/app\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/app\"]\n",
//!     &[],
//! )?;
//! assert_eq!(recipe.base, Base::Scratch);
//! assert_eq!(recipe.config.user.as_deref(), Some("65532:65532"));
//!
//! let labels = std::collections::HashMap::from([("b", 2), ("a", 1)]);
//! assert_eq!(canonical_json(&labels)?, br#"{"a":1,"b":2}"#);
//! assert!(canonical_document(&labels)?.ends_with("}\n"));
//!
//! let epoch: Epoch = "1700000000".parse()?;
//! assert_eq!(epoch.rfc3339(), "2023-11-14T22:13:20Z");
//! assert!("yesterday".parse::<Epoch>().is_err());
//! # Ok::<(), tiny_oci::Error>(())
//! ```

#![warn(missing_docs)]

pub mod assemble;
pub mod auth;
pub mod blobstore;
pub mod compare;
pub mod digest;
pub mod epoch;
mod error;
pub mod json;
pub mod layer;
pub mod layout;
pub mod platform;
pub mod progress;
pub mod recipe;
pub mod referrers;
pub mod registry;

pub use error::{Error, Result};
