//! Container images as data, without a container engine: the canonical JSON every OCI
//! document is written in (keys sorted, so the same value always hashes the same), the
//! multi-architecture image index, and the `SOURCE_DATE_EPOCH` instant stamped into every
//! "created" field.
//!
//! # Example
//!
//! ```
//! use tiny_oci::epoch::Epoch;
//! use tiny_oci::json::{canonical_document, canonical_json};
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

pub mod epoch;
mod error;
pub mod json;

pub use error::{Error, Result};
