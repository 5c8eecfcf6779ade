//! Reading the activity log: `log`.

use super::Invocation;
use crate::cli::args::LogArgs;
use crate::cli::output;
use crate::error::Result;

pub(in crate::cli) fn log(inv: &Invocation, args: &LogArgs) -> Result<i32> {
    let repo = inv.open()?;
    let (entries, problems) = repo.read_activity_tolerant(args.since, None)?;
    crate::problems::warn(&problems);
    if inv.json {
        inv.print_json(&entries)?;
    } else {
        output::log(&entries)?;
    }
    Ok(0)
}
