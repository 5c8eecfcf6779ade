//! Where log lines go and how they look, decided once from the environment.
//!
//! * **Under systemd** (`JOURNAL_STREAM` names our stderr, as systemd sets it
//!   for a service whose output goes to the journal): plain lines with a
//!   syslog priority prefix (`<3>` error, `<4>` warn, `<6>` info, `<7>` debug
//!   and trace; sd-daemon(3)), which journald turns into the entry's
//!   priority, and no timestamp or level word (journald records both). Plain
//!   lines rather than `tracing-journald`: no extra dependency, and the
//!   fields stay readable in `journalctl` as `key=value`.
//! * **On a terminal**: the usual lines with ANSI colour, unless `NO_COLOR`
//!   is set and not empty (no-color.org).
//! * **Anywhere else** (a file, a pipe): the usual lines, never colour.
//!
//! A log line first clears the progress line, if one is shown
//! ([`crate::progress::stderr_for_logs`]).
//!
//! The level is `OFFSITE_LOG` (`error`, `warn`, `info`, `debug`, `trace`);
//! without it, `warn`, except for the agent (`offsite run`) on a terminal,
//! which logs at `info` so the operator watching it sees each job start and
//! end (the journal keeps `warn`: set `OFFSITE_LOG=info` for job lines there).

use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Install the global subscriber (once; a second call changes nothing).
/// `agent`: this process is `offsite run`.
pub(super) fn init(agent: bool) {
    let terminal = std::io::stderr().is_terminal();
    let level = std::env::var("OFFSITE_LOG")
        .ok()
        .and_then(|s| s.parse::<Level>().ok())
        .unwrap_or(if agent && terminal {
            Level::INFO
        } else {
            Level::WARN
        });
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(crate::progress::stderr_for_logs)
        .with_target(false);
    let _ = if journal_is_stderr() {
        let plain = Format::default()
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false);
        builder
            .with_ansi(false)
            .event_format(Priority(plain))
            .try_init()
    } else {
        builder.with_ansi(terminal && !no_color()).try_init()
    };
}

/// `NO_COLOR` set to anything but the empty string.
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`) is our stderr: a child whose
/// stderr was redirected elsewhere inherits the variable, so it is checked
/// against the descriptor, as systemd.exec(5) asks.
fn journal_is_stderr() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    stderr_identity().is_some_and(|(d, i)| d == dev && i == ino)
}

/// The device and inode of the file or socket behind stderr.
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The syslog priority of a level, as journald reads it from a line's start.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// A line format with the event's priority in front: `<4>message key=value`.
struct Priority(Format<Full, ()>);

impl<S, N> FormatEvent<S, N> for Priority
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_sd_daemon_priorities() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }
}
