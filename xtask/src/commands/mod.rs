//! One module per command, each `impl <Command>Args { fn run(self, sh, project) }`. They
//! hand each other values, never import one another.

pub mod bench;
pub mod build;
pub mod doctor;
pub mod image;
pub mod sbom;
pub mod smoke;
