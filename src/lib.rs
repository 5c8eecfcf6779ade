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
//!   the domain types of [`retention`], [`voice`] and [`days`]; never the
//!   reverse), [`glob`], [`tree`] and [`snapshot`] (metadata types), [`pack`]
//!   (pack format).
//! * Storage: [`store`] (the object store facade), [`repo`] (format and typed
//!   access), [`index`], [`writer`] (dedup, compression, packs), [`chunking`].
//! * Operations over a repository: [`ops`] (snapshot, restore, check).
//! * Glue: [`cli`] (the `offsite` command line); `main.rs` only maps errors to
//!   exit codes.

pub mod activity;
pub mod agent;
pub mod cancel;
pub mod chunking;
pub mod cli;
pub mod clock;
pub mod config;
pub mod days;
pub mod decompress;
pub mod error;
pub mod failpoint;
pub mod glob;
pub mod guard;
pub mod id;
pub mod index;
pub mod lock;
pub mod metrics;
pub mod ops;
pub mod pack;
pub mod problems;
pub mod repo;
pub mod retention;
pub mod s3;
pub mod snapshot;
pub mod source_file;
pub mod store;
pub mod tree;
pub mod voice;
pub mod writer;

pub use error::{Error, Result};
