//! Restoring: `restore` (on demand, logged with its reason) and
//! `restore-test` (one random item, verified, removed).

use super::Invocation;
use crate::cli::args::{RestoreArgs, RestoreTestArgs};
use crate::cli::output;
use crate::error::Result;
use crate::jobs::{self, RestoreRequest};
use crate::ops::restore::RestoreOptions;
use crate::ops::restore_test::Rng;

pub(in crate::cli) fn restore(inv: &Invocation, args: &RestoreArgs) -> Result<i32> {
    let sources: Vec<&str> = inv
        .config
        .selected_sources(args.source.as_deref())?
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let repo = inv.open()?;
    let host = args.host.clone().unwrap_or_else(|| inv.config.host.clone());
    let request = RestoreRequest {
        item: &args.item,
        sources,
        snapshot: args.snapshot.as_deref(),
        host: &host,
        to: args.to.clone(),
        options: RestoreOptions {
            overwrite: args.overwrite,
            keep_special_bits: args.keep_special_bits,
            ..RestoreOptions::default()
        },
        force: args.force,
        reason: args.reason.clone(),
    };
    let report = jobs::restore(
        &inv.context_showing(&repo, args.at.now, "restore"),
        &request,
    )?;
    if inv.json {
        inv.print_json(&report)?;
    } else {
        output::restore(&report)?;
    }
    Ok(0)
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
