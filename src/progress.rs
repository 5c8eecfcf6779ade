//! Progress of a long operation, on the operator's terminal only.
//!
//! A [`Progress`] is a cheap, thread-safe handle the operations take in
//! their options (snapshot: files and bytes read; restore of many files:
//! files and bytes written, through [`crate::ops::restore_run::RestoreProgress`];
//! check: files and bytes verified; prune: its steps). The command line makes
//! a visible one ([`Progress::on_stderr`]) only when stderr is a terminal and
//! `--quiet` is not given; everywhere else (the agent, tests, stderr to a
//! file or the journal) it is [`Progress::hidden`], a no-op, so nothing extra
//! and no escape codes are written. It never writes to stdout, which carries
//! reports and JSON.
//!
//! The line is hand-written rather than drawn by a crate: one line on
//! stderr, redrawn in place with `\r` at most ten times a second (with
//! auto-wrap off while it is written, so a narrow terminal cuts it rather
//! than wrapping it), erased when the last handle is dropped, so the report
//! that follows starts on a clean line, and before each log line (the log
//! writes through [`stderr_for_logs`]), which the next redraw follows:
//!
//! ```text
//! snapshot: voice: reading 1204/5000 files, 1.17 GiB/2.00 GiB, 84.22 MiB/s, ETA 10 s
//! ```

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::cli::human_bytes;
use crate::escape::Escaped;

/// The shortest time between two redraws (ten a second at most).
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// Drawn around the line: auto-wrap off, so a line wider than the terminal
/// is cut at its edge instead of wrapping (`\r` would then redraw only the
/// last row), then erase to the end of the line and auto-wrap on again.
const WRAP_OFF: &str = "\x1b[?7l";
const ERASE_AND_WRAP_ON: &str = "\x1b[K\x1b[?7h";
/// Back to the margin and erase the line.
const CLEAR: &str = "\r\x1b[K";

/// The line shown on stderr now, if any, for log lines to clear.
static ON_STDERR: Mutex<Option<Weak<Line>>> = Mutex::new(None);

/// Stderr for a log line: the progress line, if one is shown, is cleared
/// first so the log line starts at the left margin (the logging's writer).
pub fn stderr_for_logs() -> std::io::Stderr {
    let shown = ON_STDERR
        .lock()
        .ok()
        .and_then(|on| on.as_ref().and_then(Weak::upgrade));
    if let Some(line) = shown {
        if let Ok(mut drawn) = line.drawn.lock() {
            drawn.clear();
        }
    }
    std::io::stderr()
}

/// A progress line, or nothing (see the module docs). Clones share the line.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Line>>);

struct Line {
    /// What runs: `snapshot voice`, `check`, …
    what: String,
    items_done: AtomicU64,
    items_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    /// When the line was made: the origin of `working_since`.
    made: Instant,
    /// Nanoseconds after `made` of the step's first progress (0: none yet):
    /// rate and ETA count from there, not from the step's setup.
    working_since: AtomicU64,
    drawn: Mutex<Drawn>,
}

struct Drawn {
    out: Box<dyn Write + Send>,
    /// The current step, and what its items are (`files`, `packs`, …).
    phase: String,
    unit: &'static str,
    last: Option<Instant>,
    /// Whether the line is on the screen (to be erased).
    shown: bool,
}

impl Progress {
    /// Nothing is ever shown.
    pub fn hidden() -> Progress {
        Progress(None)
    }

    /// A line on stderr for `what`, shown only when stderr is a terminal and
    /// `quiet` is false; otherwise [`Progress::hidden`].
    pub fn on_stderr(what: &str, quiet: bool) -> Progress {
        if quiet || !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let progress = Progress::to(what, Box::new(std::io::stderr()));
        if let (Ok(mut on), Some(line)) = (ON_STDERR.lock(), &progress.0) {
            *on = Some(Arc::downgrade(line));
        }
        progress
    }

    /// A line drawn on `out` whatever it is (tests; [`Progress::on_stderr`]).
    pub fn to(what: &str, out: Box<dyn Write + Send>) -> Progress {
        Progress(Some(Arc::new(Line {
            what: Escaped(what).to_string(),
            items_done: AtomicU64::new(0),
            items_total: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            made: Instant::now(),
            working_since: AtomicU64::new(0),
            drawn: Mutex::new(Drawn {
                out,
                phase: String::new(),
                unit: "files",
                last: None,
                shown: false,
            }),
        })))
    }

    /// Whether anything is shown.
    pub fn is_shown(&self) -> bool {
        self.0.is_some()
    }

    /// Start a step named `phase` counting `unit` (`files`, `packs`,
    /// `snapshots`), with `items` and `bytes` to do (0: not known yet): the
    /// counts start again from zero, and it is drawn now.
    pub fn phase(&self, phase: &str, unit: &'static str, items: u64, bytes: u64) {
        let Some(line) = &self.0 else { return };
        line.items_done.store(0, Ordering::Relaxed);
        line.bytes_done.store(0, Ordering::Relaxed);
        line.items_total.store(items, Ordering::Relaxed);
        line.bytes_total.store(bytes, Ordering::Relaxed);
        line.working_since.store(0, Ordering::Relaxed);
        if let Ok(mut drawn) = line.drawn.lock() {
            drawn.phase = Escaped(phase).to_string();
            drawn.unit = unit;
            line.draw(&mut drawn);
        }
    }

    /// More work is known: `items` and `bytes` (0 when not counted).
    pub fn add_total(&self, items: u64, bytes: u64) {
        let Some(line) = &self.0 else { return };
        line.items_total.fetch_add(items, Ordering::Relaxed);
        line.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Take the line off the screen, so a report can be printed; the next
    /// step or advance draws it again.
    pub fn clear(&self) {
        let Some(line) = &self.0 else { return };
        if let Ok(mut drawn) = line.drawn.lock() {
            drawn.clear();
        }
    }

    /// Work done: `items` and `bytes`; redrawn if the last draw is older
    /// than a tenth of a second.
    pub fn advance(&self, items: u64, bytes: u64) {
        let Some(line) = &self.0 else { return };
        let now = (line.made.elapsed().as_nanos() as u64).max(1);
        let _ = line
            .working_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        line.items_done.fetch_add(items, Ordering::Relaxed);
        line.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        // Never wait for the line: a thread that finds it busy goes on.
        if let Ok(mut drawn) = line.drawn.try_lock() {
            if drawn.last.is_none_or(|t| t.elapsed() >= REDRAW_EVERY) {
                line.draw(&mut drawn);
            }
        }
    }
}

/// A restore: the files and bytes planned, then bytes as they are written
/// and each file as it is done.
impl crate::ops::restore_run::RestoreProgress for Progress {
    fn planned(&self, files: u64, bytes: u64) {
        self.phase("writing", "files", files, bytes);
    }

    fn bytes_written(&self, bytes: u64) {
        self.advance(0, bytes);
    }

    fn file_done(&self) {
        self.advance(1, 0);
    }
}

/// All progress handles compare equal: a display concern never changes
/// what an operation does (so options holding one keep their `Eq`).
impl PartialEq for Progress {
    fn eq(&self, _: &Progress) -> bool {
        true
    }
}

impl Eq for Progress {}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_shown() {
            "Progress(shown)"
        } else {
            "Progress(hidden)"
        })
    }
}

impl Line {
    fn draw(&self, drawn: &mut Drawn) {
        let text = self.text(drawn);
        let _ = write!(drawn.out, "\r{WRAP_OFF}{text}{ERASE_AND_WRAP_ON}");
        let _ = drawn.out.flush();
        drawn.shown = true;
        drawn.last = Some(Instant::now());
    }

    /// `what: phase done/total unit, bytes/total, rate, ETA`, each part only
    /// when it is known.
    fn text(&self, drawn: &Drawn) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (items, items_total) = (load(&self.items_done), load(&self.items_total));
        let (bytes, bytes_total) = (load(&self.bytes_done), load(&self.bytes_total));
        let mut parts = Vec::new();
        if items > 0 || items_total > 0 {
            parts.push(match items_total {
                0 => format!("{items} {}", drawn.unit),
                total => format!("{items}/{total} {}", drawn.unit),
            });
        }
        let seconds = match self.working_since.load(Ordering::Relaxed) {
            0 => 0.0,
            since => {
                let since = self.made + Duration::from_nanos(since);
                since.elapsed().as_secs_f64()
            }
        };
        if bytes > 0 || bytes_total > 0 {
            parts.push(match bytes_total {
                0 => human_bytes(bytes),
                total => format!("{}/{}", human_bytes(bytes), human_bytes(total)),
            });
            if seconds >= 0.5 && bytes > 0 {
                let rate = bytes as f64 / seconds;
                parts.push(format!("{}/s", human_bytes(rate as u64)));
                if bytes_total > bytes {
                    let eta = (bytes_total - bytes) as f64 / rate;
                    parts.push(format!("ETA {}", eta_text(eta)));
                }
            }
        }
        let head = match drawn.phase.as_str() {
            "" => self.what.clone(),
            phase => format!("{}: {phase}", self.what),
        };
        match parts.is_empty() {
            true => head,
            false => format!("{head} {}", parts.join(", ")),
        }
    }
}

impl Drawn {
    /// Erase the line, if it is shown.
    fn clear(&mut self) {
        if self.shown {
            let _ = write!(self.out, "{CLEAR}");
            let _ = self.out.flush();
            self.shown = false;
            self.last = None;
        }
    }
}

/// The line is cleared when the last handle goes, before the report.
impl Drop for Line {
    fn drop(&mut self) {
        if let Ok(drawn) = self.drawn.get_mut() {
            drawn.clear();
        }
    }
}

/// `42 s`, `3 min 5 s`, `2 h 7 min`.
fn eta_text(seconds: f64) -> String {
    let s = seconds.clamp(0.0, 359_999.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn the_line_shows_counts_and_totals_and_is_cleared_at_the_end() {
        let out = Shared::default();
        let progress = Progress::to("check", Box::new(out.clone()));
        progress.phase("verifying", "files", 2, 2048);
        progress.advance(1, 1024);
        let line = progress.0.as_ref().unwrap();
        line.draw(&mut line.drawn.lock().unwrap()); // past the ten-a-second limit
        let text = out.text();
        let shown = text.rsplit('\r').next().unwrap().to_string();
        let expected = format!("{WRAP_OFF}check: verifying 1/2 files, 1.00 KiB/2.00 KiB");
        assert!(shown.starts_with(&expected), "{text:?}");
        assert!(shown.ends_with(ERASE_AND_WRAP_ON), "{text:?}");
        let clone = progress.clone();
        drop(progress);
        assert_eq!(out.text(), text, "a clone keeps the line");
        drop(clone);
        assert_eq!(out.text(), format!("{text}{CLEAR}"), "erased at the end");
    }

    #[test]
    fn a_hidden_progress_writes_nothing_and_names_are_escaped() {
        let hidden = Progress::hidden();
        hidden.phase("x", "files", 0, 0);
        hidden.clear();
        hidden.advance(1, 1);
        assert!(!hidden.is_shown());
        let out = Shared::default();
        let progress = Progress::to("snapshot a\x1b[2Jb", Box::new(out.clone()));
        progress.phase("reading\nx", "files", 0, 0);
        let text = out.text();
        assert_eq!(
            text,
            format!("\r{WRAP_OFF}snapshot a\\x1b[2Jb: reading\\nx{ERASE_AND_WRAP_ON}")
        );
    }

    #[test]
    fn eta_reads_in_units_a_person_uses() {
        assert_eq!(eta_text(4.4), "4 s");
        assert_eq!(eta_text(185.0), "3 min 5 s");
        assert_eq!(eta_text(7620.0), "2 h 7 min");
        assert_eq!(eta_text(f64::INFINITY), "99 h 59 min");
    }
}
