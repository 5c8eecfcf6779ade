//! One semantic error type at the library boundary.
//!
//! Callers decide what to do from the *kind* of failure, not from a message: a
//! `Config` or `Usage` error is the operator's to fix (exit code 2), a `Corrupt`
//! or `NotFound` object in the repository must be reported by name and must
//! never lead to deleting anything, a `Storage` error may be transient. The
//! binary maps the error to one line on stderr (see `main.rs`).
//!
//! A variant built from a lower-level failure (a decode, serde, zstd, object
//! store or SDK error) keeps it as its `source`, so the chain can be walked
//! (`std::error::Error::source`) and logged; its text is also part of the
//! message, so the one line a user sees is unchanged by walking it or not.
//!
//! Names in a message (objects, items, paths) come from the bucket or the
//! source tree: they are written through [`Escaped`], so a name holding a
//! newline or an escape sequence cannot forge a line or drive the terminal.

use std::path::PathBuf;

use crate::escape::Escaped;

/// The lower-level error an [`Error`] was built from.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by meaning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; `key` names the offending setting.
    #[error("config: {key}: {message}")]
    Config { key: String, message: String },
    /// The command line asks for something impossible or unsafe.
    #[error("{0}")]
    Usage(String),
    /// Something the operation needs does not exist (an object, an item, a snapshot).
    #[error("{} not found", Escaped(.what))]
    NotFound { what: String },
    /// Something the operation would create exists already (`what` says so in full).
    #[error("{}", Escaped(.what))]
    AlreadyExists { what: String },
    /// An object in the repository does not hold what it should.
    #[error("corrupt object {}: {}", Escaped(.object), Escaped(.detail))]
    Corrupt {
        object: String,
        detail: String,
        #[source]
        source: Option<Cause>,
    },
    /// The object store failed; `transient` says whether a retry may help.
    #[error("storage error on {}: {source}", Escaped(.object))]
    Storage {
        object: String,
        transient: bool,
        #[source]
        source: object_store::Error,
    },
    /// The store refused our credentials or permissions.
    #[error("access denied to {}: {detail}", Escaped(.object))]
    Denied {
        object: String,
        detail: String,
        #[source]
        source: Option<Cause>,
    },
    /// The store could not be reached or answered nonsense.
    #[error("cannot reach {}: {detail}", Escaped(.what))]
    Unreachable {
        what: String,
        detail: String,
        #[source]
        source: Option<Cause>,
    },
    /// A local file operation failed.
    #[error("{}: {source}", Escaped(.path.display()))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another operation holds the repository (a lock), or two writers raced.
    #[error("{0}")]
    Conflict(String),
    /// The operation was stopped on request (SIGTERM) at a safe point.
    #[error("stopped on request before completion; nothing partial was committed")]
    Cancelled,
    /// A snapshot stopped on request after indexing the packs it had
    /// uploaded (a checkpoint): the next run of the source resumes from them.
    #[error("snapshot of {name} interrupted; {:.1} MiB kept, the next run resumes", *.kept as f64 / 1048576.0)]
    Interrupted { name: String, kept: u64 },
    /// The operation is refused by a policy (retention) unless forced.
    #[error("{0}")]
    Refused(String),
    /// A snapshot named on the command line does not exist; the message
    /// says which one is the newest instead.
    #[error("{0}")]
    NoSuchSnapshot(String),
    /// An operation over many items finished but left some undone (kept,
    /// refused or failed); the message counts them. Its report was printed.
    #[error("{0}")]
    Incomplete(String),
    /// A verification (`check`) found problems; each was reported already.
    #[error("{0}")]
    CheckFailed(String),
    /// The repository's key is missing, wrong, or of another repository
    /// (never a reason to change anything); the message says which.
    #[error("{0}")]
    Key(String),
    /// An item belongs to a tenant whose key was destroyed (`offsite erase
    /// --tenant`): it can never be read again, by design.
    #[error("tenant {} was erased at {}: {}", Escaped(.tenant), .at.format("%Y-%m-%d %H:%M:%S UTC"), Escaped(.reason))]
    Erased {
        tenant: String,
        at: chrono::DateTime<chrono::Utc>,
        reason: String,
    },
    /// Standard output cannot be written: usually its reader went away
    /// (`offsite log | head`), see [`Error::is_closed_pipe`].
    #[error("cannot write to standard output: {source}")]
    Stdout {
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Shorthand for a configuration error.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Shorthand for a corrupt-object error found by a check (no cause).
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            detail: detail.into(),
            source: None,
        }
    }

    /// A corrupt-object error caused by `cause` (a decode error): the detail
    /// reads `{context}: {cause}` and `cause` is kept as the source.
    pub fn corrupt_by(object: impl Into<String>, context: &str, cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        Error::Corrupt {
            object: object.into(),
            detail: format!("{context}: {cause}"),
            source: Some(cause),
        }
    }

    /// Access to `object` refused; `detail` says what to check, `cause` is
    /// the store's or SDK's error, kept as the source.
    pub fn denied(
        object: impl Into<String>,
        detail: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Denied {
            object: object.into(),
            detail: detail.into(),
            source: Some(cause.into()),
        }
    }

    /// `what` cannot be reached; `detail` is one line (an SDK's nested
    /// context runs long), `cause` is kept whole as the source.
    pub fn unreachable(
        what: impl Into<String>,
        detail: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> Self {
        Error::Unreachable {
            what: what.into(),
            detail: detail.into(),
            source: Some(cause.into()),
        }
    }

    /// Shorthand for a local I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for what the operator must fix in
    /// the command line or config, 141 for a closed stdout pipe, 1 for
    /// operational failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } | Error::Usage(_) => 2,
            _ if self.is_closed_pipe() => 141,
            _ => 1,
        }
    }

    /// Stopped on request ([`Error::Cancelled`] or [`Error::Interrupted`]).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled | Error::Interrupted { .. })
    }

    /// Stdout's reader went away: not worth a message; the exit code is 141
    /// (128 + SIGPIPE), as a shell reports a process killed by SIGPIPE.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Error::Stdout { source } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_decode_error_is_kept_as_the_source_and_the_message_is_unchanged() {
        let cause = serde_json::from_slice::<u32>(b"{").unwrap_err();
        let text = cause.to_string();
        let err = Error::corrupt_by("an-object", "index does not parse", cause);
        assert_eq!(
            err.to_string(),
            format!("corrupt object an-object: index does not parse: {text}")
        );
        let source = err.source().expect("the cause is kept");
        assert!(source.downcast_ref::<serde_json::Error>().is_some());
        assert!(Error::corrupt("an-object", "short").source().is_none());
    }

    #[test]
    fn denied_and_unreachable_keep_their_cause_and_print_one_line() {
        let io = || std::io::Error::other("refused\nsecond line of context");
        let denied = Error::denied("bucket b", "AccessDenied: check the AWS credentials", io());
        assert_eq!(
            denied.to_string(),
            "access denied to bucket b: AccessDenied: check the AWS credentials"
        );
        assert!(denied
            .source()
            .unwrap()
            .downcast_ref::<std::io::Error>()
            .is_some());
        let unreachable = Error::unreachable("bucket b", "refused", io());
        assert_eq!(unreachable.to_string(), "cannot reach bucket b: refused");
        assert!(unreachable
            .source()
            .unwrap()
            .to_string()
            .contains("second line"));
    }
}
