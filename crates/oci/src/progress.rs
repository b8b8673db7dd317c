//! How long transfers report that they are still going: the caller decides what a terminal
//! shows.

use std::any::Any;

/// Told when a step that may take a while (a large upload or download) begins; the step
/// lasts until the returned value is dropped.
///
/// ```
/// use std::sync::Mutex;
/// use tiny_oci::progress::{Progress, size};
///
/// #[derive(Default)]
/// struct Log(Mutex<Vec<String>>);
///
/// impl Progress for Log {
///     fn begin(&self, what: String) -> Box<dyn std::any::Any + Send> {
///         self.0.lock().unwrap().push(what);
///         Box::new(())
///     }
/// }
///
/// let log = Log::default();
/// drop(log.begin(format!("uploading blob sha256:ab ({})", size(3 << 20))));
/// assert_eq!(log.0.lock().unwrap()[0], "uploading blob sha256:ab (3.00 MiB)");
/// ```
pub trait Progress: Send + Sync {
    /// `what` has begun; it ends when the returned value is dropped.
    fn begin(&self, what: String) -> Box<dyn Any + Send>;
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn begin(&self, _what: String) -> Box<dyn Any + Send> {
        Box::new(())
    }
}

/// A byte count for people: `1.90 MiB`, `812 KiB`, `940 B`.
///
/// ```
/// assert_eq!(tiny_oci::progress::size(940), "940 B");
/// assert_eq!(tiny_oci::progress::size(812 * 1024), "812 KiB");
/// ```
pub fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB {
        format!("{:.2} MiB", b / KIB / KIB)
    } else if b >= KIB {
        format!("{:.0} KiB", b / KIB)
    } else {
        format!("{bytes} B")
    }
}
