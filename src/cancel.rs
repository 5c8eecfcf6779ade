//! Cooperative cancellation: how the agent stops a running job safely.
//!
//! SIGTERM sets the flag; long operations check it between safe steps (a
//! snapshot between files and between read windows, a prune between its
//! crash-safe steps) and return [`Error::Cancelled`]. Nothing half-done is
//! ever visible: a cancelled snapshot has no manifest, and a prune is safe to
//! stop between any two of its steps. The flag also wakes a sleeping
//! scheduler at once. The agent and the command line's `snapshot` set it
//! from SIGTERM and SIGINT ([`Cancel::on_signals`]).
//!
//! A second signal quits at once (exit 128 + the signal's number: 130 for a
//! second Ctrl-C), for an operator who will not wait for the clean stop (a
//! pack being uploaded over a slow link, a hung store). That is a crash as
//! far as the repository is concerned, which every commit order allows for:
//! the repository stays readable, the next snapshot adopts the packs
//! already written from their headers, and the lock left behind is stale
//! because its process is gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

/// A shared cancellation flag.
#[derive(Clone, Default)]
pub struct Cancel(Arc<Inner>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the flag and wake every waiter.
    pub fn cancel(&self) {
        let _guard = self.0.lock.lock().unwrap();
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.wake.notify_all();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// `Err(Cancelled)` once the flag is set.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Sleep up to `timeout`; returns true when woken by cancellation.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.0.lock.lock().unwrap();
        if self.is_cancelled() {
            return true;
        }
        let _ = self.0.wake.wait_timeout(guard, timeout).unwrap();
        self.is_cancelled()
    }

    /// Set the flag on SIGTERM or SIGINT: a task on the process's runtime.
    pub fn on_signals(&self) -> Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = {
            let _runtime = crate::runtime::handle().enter();
            (
                signal(SignalKind::terminate()).map_err(|e| Error::io("signal handlers", e))?,
                signal(SignalKind::interrupt()).map_err(|e| Error::io("signal handlers", e))?,
            )
        };
        let cancel = self.clone();
        crate::runtime::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
                _ = int.recv() => tracing::info!("SIGINT: stopping"),
            }
            cancel.cancel();
            let (name, code) = tokio::select! {
                _ = term.recv() => ("SIGTERM", 128 + libc::SIGTERM),
                _ = int.recv() => ("SIGINT", 128 + libc::SIGINT),
            };
            eprintln!("{}", force_quit_line(name));
            std::process::exit(code);
        });
        Ok(())
    }
}

/// What a second signal prints before the process quits at once.
fn force_quit_line(signal: &str) -> String {
    format!(
        "offsite: second {signal}: quitting at once, without a clean stop \
         (the repository stays readable; the next snapshot adopts the packs written so far)"
    )
}
