//! Finding programs on PATH (see `tiny_cross::which`).

pub use tiny_cross::which::find_on_path;
