//! Images as data: references, and (as they arrive) layers, layouts and registries.

pub mod reference;
