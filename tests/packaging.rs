//! Packaging: the shell completions and the man page are generated from the
//! clap definitions and need no config; every option and positional has a
//! help line.

use std::process::Command;

use clap::CommandFactory;
use offsite::cli::Cli;

/// Run the binary without any config (from an empty directory).
fn offsite(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_offsite"))
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn visible_subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

#[test]
fn bash_completions_offer_every_subcommand() {
    let script = offsite(&["completions", "bash"]);
    assert!(
        script.contains("complete -F _offsite"),
        "a bash completion script"
    );
    let names = visible_subcommands();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            script.contains(&format!(" {name} ")) || script.contains(&format!(" {name}\"")),
            "{name} is completed"
        );
    }
    assert!(script.contains("--dry-run"), "options too");
    assert!(!offsite(&["completions", "zsh"]).is_empty());
}

#[test]
fn the_man_page_is_roff() {
    let page = offsite(&["man"]);
    assert!(
        page.starts_with('.'),
        "roff requests: {}",
        &page[..80.min(page.len())]
    );
    assert!(page.contains(".TH offsite 1"), "a title header");
    for name in visible_subcommands() {
        // roff spells a hyphen `\-`.
        let roff = name.replace('-', "\\-");
        assert!(page.contains(&roff), "{name} in the man page");
    }
}

#[test]
fn the_hidden_commands_stay_out_of_the_help() {
    let help = offsite(&["--help"]);
    assert!(help.contains("snapshots"));
    assert!(
        !help.contains("completions") && !help.contains("\n  man "),
        "{help}"
    );
}

#[test]
fn every_option_and_positional_has_a_help_line() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                missing.push(format!("{path} {} (the command)", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "offsite", &mut missing);
    assert!(missing.is_empty(), "without help: {missing:?}");
}
