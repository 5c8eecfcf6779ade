//! Restoring: `restore` (on demand, logged with its reason) and
//! `restore-test` (one random item, verified, removed).

use super::Invocation;
use crate::cli::args::{RestoreArgs, RestoreTestArgs};
use crate::cli::output;
use crate::error::{Error, Result};
use crate::jobs::{self, RestoreOutcome, RestoreRequest};
use crate::ops::restore::RestoreOptions;
use crate::ops::restore_test::Rng;
use crate::progress::Progress;

pub(in crate::cli) fn restore(inv: &Invocation, args: &RestoreArgs) -> Result<i32> {
    let named = [&args.item, &args.glob, &args.tenant, &args.source];
    if named.iter().all(|a| a.is_none()) {
        return Err(Error::Usage(
            "name what to restore: --item PATH, --glob PATTERN, --tenant T, or --source NAME alone for a whole source".into(),
        ));
    }
    let sources: Vec<&str> = inv
        .config
        .selected_sources(args.source.as_deref())?
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let repo = inv.open()?;
    let host = args.host.clone().unwrap_or_else(|| inv.config.host.clone());
    let progress = Progress::on_stderr("restore", inv.quiet);
    let request = RestoreRequest {
        item: args.item.as_deref(),
        glob: args.glob.as_deref(),
        tenant: args.tenant.as_deref(),
        sources,
        snapshot: args.snapshot.as_deref(),
        host: &host,
        to: args.to.clone(),
        options: RestoreOptions {
            overwrite: args.overwrite,
            keep_special_bits: args.keep_special_bits,
        },
        force: args.force,
        reason: args.reason.clone(),
        progress: &progress,
    };
    let outcome = jobs::restore(&inv.context(&repo, args.at.now), &request);
    progress.clear();
    let outcome = outcome?;
    if inv.json {
        inv.print_json(&outcome)?;
    } else {
        output::restore(&outcome)?;
    }
    match outcome {
        RestoreOutcome::Tree(summary) => summary.incomplete().map_or(Ok(0), Err),
        RestoreOutcome::Item(_) => Ok(0),
    }
}

pub(in crate::cli) fn restore_test(inv: &Invocation, args: &RestoreTestArgs) -> Result<i32> {
    let repo = inv.open()?;
    let sources = inv.config.selected_sources(args.source.as_deref())?;
    let mut rng = args.seed.map_or_else(Rng::from_entropy, Rng::seeded);
    let report = jobs::restore_test(&inv.context(&repo, None), &sources, &mut rng);
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::restore_test(&report)?;
    }
    report.failure().map_or(Ok(0), Err)
}
