//! Images as data: references, and (as they arrive) layers, layouts and registries.

pub mod auth;
pub mod blobstore;
pub mod reference;
pub mod registry;
