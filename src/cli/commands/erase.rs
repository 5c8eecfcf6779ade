//! `offsite erase`: a tenant (`--tenant`, its key destroyed) or items
//! (`--item`, `--glob`) from every snapshot. Nothing is erased without
//! `--yes`; `--dry-run` lists exactly what the real run removes.

use super::Invocation;
use crate::cli::args::EraseArgs;
use crate::cli::output::{human_bytes, time};
use crate::error::{Error, Result};
use crate::escape::escaped;
use crate::jobs;
use crate::ops::erase::{ItemErasure, ItemQuery, Selection, TenantErasure};

pub(in crate::cli) fn erase(inv: &Invocation, args: &EraseArgs) -> Result<i32> {
    if args.reason.trim().is_empty() {
        return Err(Error::Usage(
            "erase: --reason must say why (it is kept in the activity log for the audit)".into(),
        ));
    }
    match &args.tenant {
        Some(tenant) => erase_tenant(inv, args, tenant),
        None => erase_items(inv, args),
    }
}

fn erase_tenant(inv: &Invocation, args: &EraseArgs, tenant: &str) -> Result<i32> {
    if !args.yes {
        return Err(Error::Usage(format!(
            "erase --tenant {} destroys the tenant's key: none of its items in any snapshot of any host can be read again; nothing changed: add --yes to do it",
            escaped(tenant)
        )));
    }
    let repo = inv.open()?;
    let report = jobs::erase_tenant(&inv.context(&repo, None), tenant, &args.reason)?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        tenant_text(&report)?;
    }
    if report.rotated {
        eprintln!(
            "offsite: WARNING: every passphrase envelope was deleted with the old key (they could reopen the erased tenant's key from an old bucket version): add a new recovery passphrase now with `offsite key add`; destroy exported key copies; every other host must open the repository once to drop the old key"
        );
    }
    Ok(0)
}

fn tenant_text(r: &TenantErasure) -> Result<()> {
    if r.rotated {
        say!(
            "tenant {} erased at {}: {}",
            escaped(&r.tenant),
            time(&r.erased_at),
            escaped(&r.reason)
        );
        say!(
            "key epoch {} ({} key(s) carried over); new key in {}",
            r.epoch,
            r.wraps.saturating_sub(1),
            r.key_file.display()
        );
    } else {
        say!(
            "tenant {} was already erased at {}: {}",
            escaped(&r.tenant),
            time(&r.erased_at),
            escaped(&r.reason)
        );
    }
    if r.envelopes_deleted > 0 {
        say!("{} passphrase envelope(s) deleted", r.envelopes_deleted);
    }
    say!("its items can no longer be read; the next prune removes them from every snapshot and frees their space");
    Ok(())
}

fn erase_items(inv: &Invocation, args: &EraseArgs) -> Result<i32> {
    let selection = match (&args.item, &args.glob) {
        (Some(item), None) => Selection::item(item)?,
        (None, Some(glob)) => Selection::glob(glob)?,
        _ => {
            return Err(Error::Usage(
                "erase: give one of --tenant, --item, --glob".into(),
            ))
        }
    };
    let query = ItemQuery {
        selection,
        host: args.host.clone().filter(|h| h != "all"),
        source: args.source.clone(),
    };
    if !args.dry_run && !args.yes {
        return Err(Error::Usage(format!(
            "erase would remove {} from every snapshot{}; nothing changed: see the list with --dry-run, add --yes to do it",
            escaped(&query.selection.describe()),
            query.host.as_deref().map(|h| format!(" of host {}", escaped(h))).unwrap_or_else(|| " of every host".into())
        )));
    }
    let repo = inv.open()?;
    let report = jobs::erase_items(
        &inv.context(&repo, None),
        &query,
        &args.reason,
        args.dry_run,
    )?;
    crate::problems::warn(&report.plan.problems);
    if inv.json {
        inv.print_json(&report)?;
    } else {
        items_text(&report)?;
    }
    Ok(0)
}

fn items_text(r: &ItemErasure) -> Result<()> {
    for i in &r.plan.items {
        say!(
            "{}  {}  {}  {}  {}",
            escaped(&i.host),
            escaped(&i.source),
            i.snapshot.short(),
            time(&i.snapshot_time),
            escaped(&i.path)
        );
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    say!(
        "{verb} {} item(s) ({}) from {} snapshot(s)",
        r.plan.items.len(),
        human_bytes(r.bytes),
        r.plan.snapshots
    );
    if !r.dry_run && !r.plan.items.is_empty() {
        say!("their data no longer referenced goes at the next prune");
    }
    Ok(())
}
