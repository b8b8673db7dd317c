//! Images as data: references, reproducible layers, OCI image layouts, and the builtin
//! engine that assembles images from a recipe.

pub mod assemble;
pub mod blobstore;
pub mod compare;
pub mod context;
pub mod layer;
pub mod layout;
pub mod reference;
pub mod registry;
