//! Operations on a repository: each one file, each usable from the CLI and the agent.

pub mod check;
pub mod rebuild_index;
pub mod restore;
pub mod snapshot;
