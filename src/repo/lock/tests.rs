//! Judging and sealing locks.

use super::*;

/// A fixed time: judging locks depends only on the times given.
fn at() -> DateTime<Utc> {
    "2026-11-27T02:00:00Z".parse().unwrap()
}

fn info(host: &str, pid: u32, space: &ProcessSpace) -> LockInfo {
    LockInfo {
        host: host.into(),
        pid,
        boot_id: space.boot_id.clone(),
        pid_namespace: space.pid_namespace.clone(),
        kind: LockKind::Exclusive,
        operation: "prune".into(),
        time: at(),
    }
}

#[test]
fn a_lock_opens_only_under_its_own_key_and_name() {
    let meta = DataKey::from_secret(&crate::crypto::Secret::random());
    let sealed = lock_bytes(&meta, "locks/a", &info("h1", 7, own_space()));
    let opened = open_lock(&meta, "locks/a", &sealed).unwrap();
    assert_eq!((opened.host.as_str(), opened.pid), ("h1", 7));
    assert!(open_lock(&meta, "locks/b", &sealed).is_err(), "moved");
    let other = DataKey::from_secret(&crate::crypto::Secret::random());
    let err = open_lock(&other, "locks/a", &sealed).unwrap_err();
    assert!(err.to_string().contains("locks/a"), "{err}");
    assert!(!sealed.windows(5).any(|w| w == b"prune"), "sealed");
}

#[test]
fn a_dead_pid_counts_only_in_the_same_host_boot_and_pid_namespace() {
    let here = ProcessSpace {
        boot_id: Some("boot-a".into()),
        pid_namespace: Some("pid:[1]".into()),
    };
    let now = at();
    let gone = 4_000_000;
    let same = info("h", gone, &here);
    assert_eq!(
        judge(Some(&same), now, "h", &here, now),
        Staleness::ProcessGone
    );
    for other in [
        ProcessSpace {
            boot_id: Some("boot-b".into()),
            ..here.clone()
        },
        ProcessSpace {
            pid_namespace: Some("pid:[2]".into()),
            ..here.clone()
        },
        ProcessSpace {
            boot_id: None,
            pid_namespace: None,
        },
    ] {
        let lock = info("h", gone, &other);
        assert_eq!(
            judge(Some(&lock), now, "h", &here, now),
            Staleness::Live,
            "{other:?}"
        );
    }
    assert_eq!(
        judge(Some(&same), now, "other-host", &here, now),
        Staleness::Live
    );
}

#[test]
fn age_is_measured_from_the_refresh_and_the_future_is_flagged() {
    let here = own_space();
    let now = at();
    let lock = info("elsewhere", 1, here);
    let minute = chrono::Duration::minutes(1);
    assert_eq!(
        judge(Some(&lock), now - STALE_AFTER + minute, "h", here, now),
        Staleness::Live
    );
    assert_eq!(
        judge(Some(&lock), now - STALE_AFTER - minute, "h", here, now),
        Staleness::Expired
    );
    assert_eq!(
        judge(None, now - STALE_AFTER - minute, "h", here, now),
        Staleness::Expired
    );
    assert_eq!(
        judge(Some(&lock), now + STALE_AFTER + minute, "h", here, now),
        Staleness::Future
    );
    assert!(!Staleness::Future.is_stale());
}
