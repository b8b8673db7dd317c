//! The programs the commands drive: cargo and the C cross compiler, the container engines,
//! qemu, and a service as a client sees it.

pub(crate) mod buildinfo;
pub(crate) mod cache;
pub mod compile;
pub(crate) mod credential_helper;
pub(crate) mod documents;
pub mod git;
pub(crate) mod inventory;
pub mod probe;
pub mod process;
pub mod toolchain;
pub mod which;
pub(crate) mod writable;
