//! Finding programs on PATH (see `tiny_cross::which`).

pub use tiny_cross::which::{find_all_on_path, find_on_path};
