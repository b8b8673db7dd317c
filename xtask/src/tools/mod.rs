//! The programs the commands drive: cargo and the C cross compiler, the container engines,
//! qemu, and the service itself as a client sees it (and under load).

pub mod buildinfo;
pub mod cache;
pub mod compile;
pub mod credential_helper;
pub mod documents;
pub mod git;
pub mod inventory;
pub mod load;
pub mod probe;
pub mod process;
pub mod toolchain;
pub mod which;
pub mod writable;
