//! The process's one Tokio runtime: a sync core with one runtime handle.
//!
//! Backup work is CPU-bound and runs on plain threads; only storage requests,
//! the `/metrics` server and the signal watcher are asynchronous. They all
//! share this one multi-thread runtime, built on first use and kept for the
//! life of the process: synchronous code waits on a future with [`block_on`]
//! (never from inside a task), long-lived services are tasks on it
//! ([`spawn`]). No runtime is ever built per call or per component.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle, Runtime};

/// Worker threads: the async work is I/O waiting, not computing.
const WORKER_THREADS: usize = 2;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .enable_all()
            .thread_name("offsite-rt")
            .build()
            // Without a runtime (no threads, no epoll) nothing offsite does can work.
            .expect("the Tokio runtime starts")
    })
}

/// The handle of the process's runtime.
pub fn handle() -> &'static Handle {
    runtime().handle()
}

/// Run `future` to completion on the runtime, blocking this (non-runtime) thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    handle().block_on(future)
}

/// Run `future` as a task on the runtime, in the background.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(future)
}
