//! Keeping the repository: `prune`, `check`, `repair`, `rebuild-index`,
//! `unlock`.

use super::Invocation;
use crate::cli::args::{CheckArgs, PruneArgs, UnlockArgs};
use crate::cli::output;
use crate::error::{Error, Result};
use crate::jobs;
use crate::ops::check_data::Subset;

/// A real prune at `--now` deletes what that time would expire (a future
/// `--now` once deleted a recording before its expiry), so it is refused
/// unless `--dry-run` or `--really-at-now` says what is meant.
pub(in crate::cli) fn prune(inv: &Invocation, args: &PruneArgs) -> Result<i32> {
    if let Some(now) = args.at.now.filter(|_| !args.dry_run && !args.really_at_now) {
        return Err(Error::Usage(format!(
            "prune --now {} would really delete what expires by then; nothing changed: add --dry-run to see the plan, or --really-at-now to apply it",
            now.to_rfc3339()
        )));
    }
    let repo = inv.open()?;
    let report = jobs::prune(
        &inv.context_showing(&repo, args.at.now, "prune"),
        args.dry_run,
    )?;
    crate::problems::warn(&report.problems);
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::prune(&report)?;
    }
    Ok(0)
}

pub(in crate::cli) fn unlock(inv: &Invocation, args: &UnlockArgs) -> Result<i32> {
    let repo = inv.open()?;
    let report = jobs::unlock(&inv.context(&repo, None), args.force)?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::unlock(&report)?;
    }
    Ok(0)
}

/// Fails (after printing the report) when a pack could not be read: the old
/// index files are then kept.
pub(in crate::cli) fn rebuild_index(inv: &Invocation) -> Result<i32> {
    let repo = inv.open()?;
    let report = jobs::rebuild_index(&inv.context(&repo, None))?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::rebuild(&report)?;
    }
    if report.unreadable_packs.is_empty() {
        Ok(0)
    } else {
        Err(Error::CheckFailed(format!(
            "{} pack(s) unreadable; old index files kept",
            report.unreadable_packs.len()
        )))
    }
}

pub(in crate::cli) fn repair(inv: &Invocation) -> Result<i32> {
    let repo = inv.open()?;
    let report = jobs::repair(&inv.context(&repo, None))?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::repair(&report)?;
    }
    Ok(0)
}

/// Fails (after printing the report) when check found any problem.
pub(in crate::cli) fn check(inv: &Invocation, args: &CheckArgs) -> Result<i32> {
    let subset = match &args.read_data_subset {
        Some(s) => Some(s.parse::<Subset>()?),
        None => args.read_data.then_some(Subset::All),
    };
    let repo = inv.open()?;
    let ctx = inv.context_showing(&repo, args.at.now, "check");
    let report = jobs::check(&ctx, subset)?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::check(&report, subset.is_some())?;
    }
    if report.problems.is_empty() {
        Ok(0)
    } else {
        Err(Error::CheckFailed(format!(
            "check found {} problem(s); first: {}",
            report.problems.len(),
            report.problems[0]
        )))
    }
}
