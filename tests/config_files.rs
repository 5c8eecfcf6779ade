//! Every shipped example config parses and validates.

mod common;

#[test]
fn every_shipped_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = offsite::config::Config::load(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!cfg.sources.is_empty(), "{}", path.display());
            let out = common::offsite_with(&path, &["config", "check"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            seen += 1;
        }
    }
    assert!(seen >= 1, "no example config found in systemd/");
}

#[test]
fn defaults_are_filled_in() {
    let cfg = offsite::config::Config::parse(
        "source_region = \"a\"\n[repository]\nurl = \"file:///r\"\nregion = \"b\"\n[[source]]\nname = \"s\"\npath = \"/srv\"\n",
    )
    .unwrap();
    assert_eq!(cfg.timezone, chrono_tz::UTC);
    assert_eq!(cfg.data_retention_months, 120);
    assert_eq!(cfg.default_voice_retention_days, 365);
    let s = &cfg.sources[0];
    assert_eq!(s.class, offsite::config::SourceClass::ClientData);
    let policy = &s.retention;
    assert_eq!((policy.daily, policy.weekly, policy.monthly), (31, 12, 3));
    assert_eq!((policy.last, policy.hourly, policy.yearly), (0, 0, 0));
    assert_eq!(cfg.activity_log_days, 30);
    assert_eq!(
        s.tenant.tenant_of(&["acme", "db", "dump.sql"]),
        Some("acme".into())
    );
}
