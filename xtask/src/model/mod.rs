//! Plain values and the rules over them: targets, project settings, artifacts, ELF checks,
//! the embedded dependency data, SBOM and provenance documents.
//! Nothing here runs a process or imports from the layers above.

pub mod choice;
pub mod project;
pub mod run;
pub mod verify;
