//! Operations on a repository, each usable from the CLI and the agent: one module per
//! operation. Snapshot's walk beside its parent is a file of its own
//! ([`snapshot`]'s `walk`); prune's plan ([`prune_plan`]), reference model
//! ([`references`]) and sweep ([`sweep`]) are modules of their own beside it,
//! as are restore's choice of snapshot ([`restore_find`]), plan of many files
//! ([`restore_plan`]), their writer ([`restore_run`]) and the open target
//! directories everything is written through ([`restore_dir`]).
//! [`find`] holds the read-only views (`find`, `find --history`, `ls`);
//! [`stats`] counts what the bucket holds per source and tenant.

pub mod check;
pub mod check_data;
pub mod damage;
pub mod erase;
pub mod find;
pub mod live_index;
pub mod lock_extend;
pub mod pack_presence;
pub mod prune;
pub mod prune_plan;
pub mod rebuild_index;
pub mod references;
pub mod repair;
pub mod restore;
pub mod restore_dir;
pub mod restore_find;
pub mod restore_plan;
pub mod restore_run;
pub mod restore_test;
pub mod rewrite;
pub mod snapshot;
pub mod stats;
pub mod sweep;
