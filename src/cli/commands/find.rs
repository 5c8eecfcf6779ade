//! Finding: `ls` (one snapshot's tree), `find` (items by glob across
//! snapshots, or one item's history) and `stats` (what the bucket holds per
//! source and tenant). All three only read the repository, so they take no
//! lock: a pack a concurrent prune removes shows up as a problem, skipped.

use super::Invocation;
use crate::cli::args::{FindArgs, LsArgs};
use crate::cli::output_find as output;
use crate::error::{Error, Result};
use crate::glob::Pattern;
use crate::ops::find::history::history;
use crate::ops::find::ls::{ls as list, LsRequest};
use crate::ops::find::{find as search, FindQuery, Scope};

/// `--host`: this host by default, `all` for every host.
fn host_scope<'a>(inv: &'a Invocation, host: &'a Option<String>) -> Option<&'a str> {
    match host.as_deref() {
        Some("all") => None,
        Some(h) => Some(h),
        None => Some(inv.config.host.as_str()),
    }
}

pub(in crate::cli) fn ls(inv: &Invocation, args: &LsArgs) -> Result<i32> {
    let repo = inv.open()?;
    let request = LsRequest {
        scope: Scope {
            host: host_scope(inv, &args.host),
            source: args.source.as_deref(),
        },
        args: (args.snapshot.as_deref(), args.path.as_deref()),
        recursive: args.recursive,
    };
    let report = list(&repo, &request)?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::ls(&report)?;
    }
    Ok(0)
}

pub(in crate::cli) fn find(inv: &Invocation, args: &FindArgs) -> Result<i32> {
    let repo = inv.open()?;
    let scope = Scope {
        host: host_scope(inv, &args.host),
        source: args.source.as_deref(),
    };
    if let Some(path) = &args.history {
        let report = history(&repo, scope, path)?;
        crate::problems::warn(&report.problems);
        if inv.json {
            inv.print_json(&report)?;
        } else {
            output::history(&report, &inv.config.host)?;
        }
        return Ok(0);
    }
    let text = args.pattern.as_deref().unwrap_or_default();
    let query = FindQuery {
        pattern: Pattern::parse(text).map_err(Error::Usage)?,
        tenant: args.tenant.clone(),
        newer: args.newer,
        older: args.older,
        deleted: args.deleted,
    };
    let report = search(&repo, scope, &query)?;
    crate::problems::warn(&report.problems);
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::find(&report, &inv.config.host)?;
    }
    Ok(0)
}

pub(in crate::cli) fn stats(inv: &Invocation) -> Result<i32> {
    let repo = inv.open()?;
    let report = crate::ops::stats::stats(&repo)?;
    crate::problems::warn(&report.problems);
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::stats(&report)?;
    }
    Ok(0)
}
