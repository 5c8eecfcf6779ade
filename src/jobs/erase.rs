//! The erase jobs: a tenant's key destroyed, or items removed from every
//! snapshot; each under the exclusive lock, logged as `erase` (kept for the
//! audit, [`crate::activity::AUDIT_OPERATIONS`]). A dry run takes no lock
//! and writes no entry.

use crate::activity::Operation;
use crate::error::Result;
use crate::ops::erase::{self, ItemErasure, ItemQuery, TenantErasure};

use super::JobContext;

/// Erase `tenant` for `reason` (see [`crate::ops::erase`]); this host's
/// key file gets the new master key.
pub fn erase_tenant(ctx: &JobContext<'_>, tenant: &str, reason: &str) -> Result<TenantErasure> {
    let lock = ctx.exclusive(Operation::Erase)?;
    let key_file = crate::keyfile::path(ctx.config);
    let result = erase::erase_tenant(&lock, &key_file, tenant, reason, ctx.clock.now());
    drop(lock);
    ctx.record(Operation::Erase, &result, |r| {
        serde_json::json!({
            "kind": "tenant", "tenant": r.tenant, "erased_at": r.erased_at, "reason": r.reason,
            "rotated": r.rotated, "epoch": r.epoch, "envelopes_deleted": r.envelopes_deleted,
        })
    });
    result
}

/// Remove the items `query` selects from every snapshot in its scope, or
/// with `dry_run` only plan it.
pub fn erase_items(
    ctx: &JobContext<'_>,
    query: &ItemQuery,
    reason: &str,
    dry_run: bool,
) -> Result<ItemErasure> {
    if dry_run {
        let plan = erase::plan_items(ctx.repo, query)?;
        return Ok(ItemErasure::new(plan, reason, true));
    }
    let lock = ctx.exclusive(Operation::Erase)?;
    let result = erase::plan_items(ctx.repo, query).and_then(|plan| {
        erase::erase_items(&lock, query, &plan, ctx.clock.now())?;
        Ok(ItemErasure::new(plan, reason, false))
    });
    drop(lock);
    ctx.record(Operation::Erase, &result, |r| {
        serde_json::json!({
            "kind": "item", "selection": r.plan.selection, "host": query.host,
            "source": query.source, "reason": r.reason, "items": r.plan.items,
            "snapshots": r.plan.snapshots, "bytes": r.bytes,
        })
    });
    result
}
