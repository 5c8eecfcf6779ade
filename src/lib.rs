//! offsite: a backup agent for the storage hosts of a call-centre SaaS.
//!
//! It snapshots client data and voice recordings to an object store in another
//! region, keeps them under the platform's retention promises, and restores
//! single items on demand. See `README.md` for operators and
//! [`repo`] for the on-storage format and commit order.
//!
//! # Layout
//!
//! * Pure modules, no I/O: [`config`] (validated settings, converted into
//!   the domain types of the next three; they never import config),
//!   [`retention`] (which snapshots a policy keeps), [`voice`]
//!   (per-recording expiry), [`days`] (a bounded number of days),
//!   [`glob`], [`tree`] and [`snapshot`] (metadata types), [`activity`]
//!   (activity-log entries), [`operation`] (operation and outcome names),
//!   [`id`] (SHA-256 ids), [`crypto`] (AES-GCM, HKDF, HMAC from aws-lc-rs), [`decompress`] (bounded zstd), [`problems`]
//!   (damaged objects skipped and reported), [`escape`] (names from outside
//!   made safe to print), [`error`], [`allocator`] (glibc's allocator
//!   tuned for a bounded peak).
//! * Storage: [`repo`], the one door to it: typed access by id
//!   ([`repo::layout`] spells every key; [`repo::pack`], [`repo::index`],
//!   [`repo::lock`] with the guards of [`repo::locked`], [`repo::writer`]
//!   (dedup, compression, packs), [`repo::store`] and [`repo::s3`] beneath).
//!   [`chunking`] and [`source_file`] read the sources into it.
//! * Operations over a repository: [`ops`] (snapshot, restore, restore-test,
//!   check, prune, repair, rebuild-index, and the read-only find, ls, stats).
//! * Inputs and plumbing: [`clock`], [`cancel`], [`runtime`] (the one Tokio
//!   runtime), [`failpoint`] (crash tests), [`guard`] (the second-region
//!   check), [`metrics`], [`progress`] (the operator's progress line).
//! * Jobs: [`jobs`], an operation with its lock, activity entry and metrics,
//!   shared by the command line and the agent.
//! * Glue: [`cli`] (the `offsite` command line) and [`agent`] (`offsite run`);
//!   `main.rs` only maps errors to exit codes.

pub mod activity;
pub mod agent;
pub mod allocator;
pub mod budget;
pub mod cancel;
pub mod chunking;
pub mod cli;
pub mod clock;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod days;
pub mod decompress;
pub mod error;
pub mod escape;
pub mod failpoint;
pub mod glob;
pub mod guard;
pub mod id;
pub mod jobs;
pub mod keyfile;
pub mod metrics;
pub mod object_lock;
pub mod operation;
pub mod ops;
pub mod problems;
pub mod progress;
pub mod repo;
pub mod retention;
pub mod runtime;
pub mod snapshot;
pub mod source_file;
pub mod sparse;
pub mod tree;
pub mod voice;

pub use error::{Error, Result};
