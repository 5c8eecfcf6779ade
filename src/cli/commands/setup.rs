//! Setting up: `config check` and `init`.

use super::Invocation;
use crate::cli::args::ConfigAction;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::repo::Repository;

pub(in crate::cli) fn config(inv: &Invocation, action: &ConfigAction) -> Result<i32> {
    match action {
        ConfigAction::Check => config_check(inv),
    }
}

fn config_check(inv: &Invocation) -> Result<i32> {
    let guard = crate::guard::check(&inv.config)?;
    crate::guard::warn(&guard);
    if inv.json {
        inv.print_json(&inv.config.effective)?;
    } else {
        let text = toml::to_string(&inv.config.effective)
            .map_err(|e| Error::config("file", e.to_string()))?;
        let how = if guard.verified {
            "the bucket reports it"
        } else {
            "as configured"
        };
        say!(
            "# {}: valid; repository region {} ({how})\n{text}",
            inv.config_path.display(),
            guard.region
        );
    }
    Ok(0)
}

pub(in crate::cli) fn init(inv: &Invocation) -> Result<i32> {
    let guard = crate::guard::check(&inv.config)?;
    let repo = Repository::init(&inv.config.repository, SystemClock.now())?;
    crate::guard::warn(&guard);
    if inv.json {
        inv.print_json(&serde_json::json!({"repository": repo.describe(), "id": repo.config.id}))?;
    } else {
        say!(
            "created repository {} at {}",
            repo.config.id.short(),
            repo.describe()
        );
    }
    Ok(0)
}
