//! Plain values and the rules over them: targets, project settings, artifacts, ELF checks.
//! Nothing here runs a process or imports from the layers above.

pub mod choice;
pub mod dist;
pub mod elf;
pub mod project;
pub mod recipe;
pub mod run;
pub mod target;
pub mod verify;
