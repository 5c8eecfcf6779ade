//! offsite: a backup agent for the storage hosts of a call-centre SaaS.
//!
//! It snapshots client data and voice recordings to an object store in another
//! region, keeps them under the platform's retention promises, and restores
//! single items on demand. See `README.md` for operators and
//! [`repo`] for the on-storage format and commit order.
//!
//! # Layout
//!
//! * Pure modules, no I/O: [`config`] (validated settings), [`glob`],
//!   [`tree`] and [`snapshot`] (metadata types), [`pack`](repo::pack) (pack format).
//! * Storage: [`repo`] (format and typed access; [`repo::store`] the object
//!   store facade, [`repo::s3`], [`repo::index`], [`repo::lock`],
//!   [`repo::writer`] (dedup, compression, packs)), [`chunking`].
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
pub mod decompress;
pub mod error;
pub mod failpoint;
pub mod glob;
pub mod guard;
pub mod id;
pub mod metrics;
pub mod ops;
pub mod problems;
pub mod repo;
pub mod retention;
pub mod runtime;
pub mod snapshot;
pub mod source_file;
pub mod tree;
pub mod voice;

pub use error::{Error, Result};
