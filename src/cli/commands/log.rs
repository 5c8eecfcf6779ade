//! Reading the activity log: `log`, filtered by day, operation and host.

use super::Invocation;
use crate::cli::args::LogArgs;
use crate::cli::output;
use crate::error::Result;

pub(in crate::cli) fn log(inv: &Invocation, args: &LogArgs) -> Result<i32> {
    let repo = inv.open()?;
    let operation = args.operation.as_ref().map(|op| op.as_str());
    let (mut entries, problems) = repo.read_activity_tolerant(args.since, operation)?;
    if let Some(host) = &args.host {
        entries.retain(|e| &e.host == host);
    }
    crate::problems::warn(&problems);
    if inv.json {
        inv.print_json(&entries)?;
    } else {
        output::log(&entries)?;
    }
    Ok(0)
}
