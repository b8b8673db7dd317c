//! What the commands print: progress lines on stderr, tables and sizes for stdout.

use std::any::Any;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs one step and prints `what` with its elapsed time on stderr when it succeeds.
pub fn step<T>(
    what: impl std::fmt::Display,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = f()?;
    eprintln!("  {what} ({})", seconds(started.elapsed()));
    Ok(result)
}

/// Shows how long a step has been running, on stderr, until dropped: on a terminal one line
/// rewritten in place after the first second; otherwise (a log, CI) one line once the step
/// passes 5 s, then one every 10 s, so a slow step is never silent.
pub struct Ticking {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// When `Ticking` writes.
struct Notes {
    /// Rewrite one line in place (a terminal), or add lines.
    terminal: bool,
    /// How often it looks at the clock.
    pause: Duration,
    /// The first note, after this long.
    first: Duration,
    /// Lines after the first, this far apart (not on a terminal).
    every: Duration,
}

/// A step that says it is still going (every few seconds off a terminal, a ticking line on
/// one) until the returned value is dropped.
pub fn ticking(what: impl Into<String>) -> Ticking {
    let terminal = std::io::stderr().is_terminal();
    let notes = Notes {
        terminal,
        pause: Duration::from_millis(if terminal { 200 } else { 500 }),
        first: Duration::from_secs(if terminal { 1 } else { 5 }),
        every: Duration::from_secs(10),
    };
    ticking_to(what.into(), std::io::stderr(), notes)
}

fn ticking_to(what: String, mut out: impl Write + Send + 'static, notes: Notes) -> Ticking {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        let mut drawn = false;
        let mut next_note = notes.first;
        // A closed stderr only loses the note: these writes never panic.
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(notes.pause) {
            let elapsed = started.elapsed();
            if elapsed < next_note {
                continue;
            }
            if notes.terminal {
                let _ = write!(out, "\r\x1b[K  {what} ({})", seconds(elapsed));
                drawn = true;
            } else {
                let _ = writeln!(out, "  {what}: {} so far", seconds(elapsed));
                next_note += notes.every;
            }
            let _ = out.flush();
        }
        if drawn {
            let _ = write!(out, "\r\x1b[K");
            let _ = out.flush();
        }
    });
    Ticking {
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether stdout and stderr both go to a terminal, where rows already printed as progress
/// need not be printed again as results.
pub fn on_one_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// One row of a table printed as it comes, before the widths of the rest are known: fixed
/// widths for the leading columns (a wider cell pushes the rest right), the last as it is.
pub fn live_row(widths: &[usize], cells: &[&str]) -> String {
    let padded: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            let width = widths.get(i).copied().unwrap_or(0);
            format!("{cell:<width$}")
        })
        .collect();
    format!("  {}", padded.join("  ")).trim_end().to_owned()
}

/// The exit status of a run whose stdout or stderr was closed under it (`doctor | head -1`):
/// 128 + SIGPIPE, as a shell reports a program that SIGPIPE ended. Never success, since
/// what the run had to say did not all arrive.
pub const CLOSED_OUTPUT: u8 = 141;

/// std's `print!` panics when its stream is a pipe nobody reads any more. For that panic
/// only, the default hook's message and backtrace are left out: `main` catches it and exits
/// with `CLOSED_OUTPUT`. Every other panic is reported as usual.
pub fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload_as_str().is_some_and(is_closed_output) {
            default(info);
        }
    }));
}

/// Whether a caught panic is std's on a closed stdout or stderr.
pub fn closed_output(payload: &(dyn Any + Send)) -> bool {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied());
    message.is_some_and(is_closed_output)
}

/// std's message is `failed printing to stdout: <io error>`; EPIPE is the closed pipe.
fn is_closed_output(message: &str) -> bool {
    let epipe = format!("(os error {})", nix::errno::Errno::EPIPE as i32);
    message.starts_with("failed printing to std") && message.ends_with(&epipe)
}

/// An error that ends the run with an exit status of its own (`run` exits with the
/// service's).
#[derive(Debug)]
pub struct ExitStatus {
    /// The exit status.
    pub code: u8,
    /// The one line printed before exiting.
    pub message: String,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitStatus {}

/// A failure whose one line a child (the xtask run again) has printed already: the run
/// ends with its status and says nothing more.
#[derive(Debug)]
pub struct Reported {
    /// The child's exit status, which the run ends with.
    pub code: u8,
}

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed with status {}: see the error above", self.code)
    }
}

impl std::error::Error for Reported {}

/// Seconds with one decimal (`1.5s`).
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Milliseconds, for steps that take less than a second.
pub fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// `1.9 MiB`, `812 KiB`, `940 B`.
pub use tiny_oci::progress::size;

/// Long transfers of the libraries, shown as [`ticking`] shows a slow step.
pub struct Terminal;

impl tiny_oci::progress::Progress for Terminal {
    fn begin(&self, what: String) -> Box<dyn Any + Send> {
        Box::new(ticking(what))
    }
}

/// What the registry client reports its long transfers to.
pub fn progress() -> std::sync::Arc<dyn tiny_oci::progress::Progress> {
    std::sync::Arc::new(Terminal)
}

/// What went to a registry: a row per platform image, then the index if there is one.
pub fn pushed_table<R: std::fmt::Display, D: std::fmt::Display>(
    images: impl Iterator<Item = (String, R, D)>,
    index: Option<(R, D)>,
) -> String {
    let mut rows: Vec<Vec<String>> = images
        .map(|(platform, reference, digest)| {
            vec![platform, reference.to_string(), digest.to_string()]
        })
        .collect();
    if let Some((reference, digest)) = index {
        rows.push(vec![
            "index".into(),
            reference.to_string(),
            digest.to_string(),
        ]);
    }
    table(&["platform", "image", "digest"], &rows)
}

/// Left-aligned columns separated by two spaces, with a header row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out += &line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_human() {
        assert_eq!(size(940), "940 B");
        assert_eq!(size(812 * 1024), "812 KiB");
        assert_eq!(size(2_000_000), "1.91 MiB");
    }

    /// What a `Ticking` wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn notes(terminal: bool) -> Notes {
        Notes {
            terminal,
            pause: Duration::from_millis(5),
            first: Duration::from_millis(30),
            every: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_log_gets_a_line_once_a_step_is_slow_and_a_terminal_a_line_rewritten_then_cleared() {
        let quick = Sink::default();
        drop(ticking_to("quick".into(), quick.clone(), notes(false)));
        assert_eq!(quick.text(), "");

        let log = Sink::default();
        let ticking = ticking_to("arm64 healthz".into(), log.clone(), notes(false));
        let noted = crate::interrupt::wait_until(Duration::from_secs(5), || {
            Ok(Some(log.text()).filter(|t| !t.is_empty()))
        })
        .unwrap()
        .unwrap();
        drop(ticking);
        assert!(
            noted.starts_with("  arm64 healthz: 0.0s so far\n"),
            "{noted:?}"
        );
        assert_eq!(log.text().lines().count(), 1, "one line per `every`");

        let terminal = Sink::default();
        let ticking = ticking_to("migrate up".into(), terminal.clone(), notes(true));
        crate::interrupt::wait_until(Duration::from_secs(5), || {
            Ok(terminal.text().matches('\r').nth(1).map(drop))
        })
        .unwrap()
        .unwrap();
        drop(ticking);
        let text = terminal.text();
        assert!(text.starts_with("\r\x1b[K  migrate up (0.0s)"), "{text:?}");
        assert!(
            text.ends_with("\r\x1b[K") && !text.contains('\n'),
            "{text:?}"
        );
    }

    #[test]
    fn live_rows_pad_the_leading_columns() {
        assert_eq!(
            live_row(&[6, 5], &["arm64", "hello", "pass"]),
            "  arm64   hello  pass"
        );
        assert_eq!(
            live_row(&[3, 2], &["amd64", "x", "d e"]),
            "  amd64  x   d e"
        );
    }

    #[test]
    fn only_a_closed_stream_counts_as_closed_output() {
        let closed: Box<dyn Any + Send> =
            Box::new("failed printing to stdout: Broken pipe (os error 32)".to_string());
        assert!(closed_output(closed.as_ref()));
        let other: Box<dyn Any + Send> = Box::new("index out of bounds");
        assert!(!closed_output(other.as_ref()));
        let full: Box<dyn Any + Send> =
            Box::new("failed printing to stdout: No space left on device".to_string());
        assert!(!closed_output(full.as_ref()));
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["x86_64".to_string(), "1".to_string()],
            vec!["a".into(), "22".into()],
        ];
        assert_eq!(
            table(&["arch", "n"], &rows),
            "arch    n\nx86_64  1\na       22\n"
        );
    }
}
