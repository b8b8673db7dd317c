//! Plain values and the rules over them that are this project's own: the choices of the command
//! line, the project settings, verify results.
//! Nothing here runs a process or imports from the layers above.

pub mod choice;
pub mod project;
pub(crate) mod verify;
