//! Plain values and the rules over them that are this project's own: the choices of the command
//! line, the project settings, the declared images, run and verify results.
//! Nothing here runs a process or imports from the layers above.

pub mod choice;
// Declared images: not wired into the commands yet.
#[allow(dead_code)]
pub mod images;
pub mod project;
pub mod run;
pub mod verify;
