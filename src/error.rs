//! One semantic error type at the library boundary.
//!
//! Callers decide what to do from the *kind* of failure, not from a message: a
//! `Config` or `Usage` error is the operator's to fix (exit code 2), a `Corrupt`
//! or `NotFound` object in the repository must be reported by name and must
//! never lead to deleting anything, a `Storage` error may be transient. The
//! binary maps the whole chain to one line on stderr (see `main.rs`).

use std::path::PathBuf;

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
    #[error("{what} not found")]
    NotFound { what: String },
    /// Something the operation would create exists already (`what` says so in full).
    #[error("{what}")]
    AlreadyExists { what: String },
    /// An object in the repository does not hold what it should.
    #[error("corrupt object {object}: {detail}")]
    Corrupt { object: String, detail: String },
    /// The object store failed; `transient` says whether a retry may help.
    #[error("storage error on {object}: {source}")]
    Storage {
        object: String,
        transient: bool,
        #[source]
        source: object_store::Error,
    },
    /// The store refused our credentials or permissions.
    #[error("access denied to {object}: {detail}")]
    Denied { object: String, detail: String },
    /// The store could not be reached or answered nonsense.
    #[error("cannot reach {what}: {detail}")]
    Unreachable { what: String, detail: String },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
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
    /// The operation is refused by a policy (retention) unless forced.
    #[error("{0}")]
    Refused(String),
    /// A verification (`check`) found problems; each was reported already.
    #[error("{0}")]
    CheckFailed(String),
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

    /// Shorthand for a corrupt-object error.
    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            detail: detail.into(),
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

    /// Stdout's reader went away: not worth a message; the exit code is 141
    /// (128 + SIGPIPE), as a shell reports a process killed by SIGPIPE.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(self, Error::Stdout { source } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
