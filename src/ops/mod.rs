//! Operations on a repository: each one file, each usable from the CLI and the agent.

pub mod check;
pub mod restore;
pub mod snapshot;
