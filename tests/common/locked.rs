//! Helpers of the Object Lock tests: a world on a fresh Object Lock bucket
//! of the test gateway, with simulated days of a few real seconds.

use chrono::{DateTime, Utc};
use offsite::id::ObjectId;
use offsite::object_lock::{LockMode, ObjectLock, TestClock};
use offsite::repo::s3_lock::{LockedBucket, Version};

use super::*;

pub const SECONDS_PER_DAY: u32 = 2;

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A world on a fresh Object Lock bucket: client data kept 3 daily and 2
/// weekly, voice recordings with a 1-day contract (backed up 2 days).
pub fn locked_world(real_start: DateTime<Utc>) -> (World, String, ObjectLock) {
    let bucket = format!(
        "t-lock-{:08x}",
        Rng::new(std::process::id() as u64).next() as u32 ^ real_start.timestamp() as u32
    );
    let loc = s3_location(&bucket, "");
    offsite::runtime::block_on(offsite::repo::s3::create_bucket_with(&loc, true)).unwrap();
    let w = World::configured(
        "",
        &[
            (
                "data",
                "client-data",
                "include = [\"data/**\"]\nretention = { keep_daily = 3, keep_weekly = 2 }",
            ),
            (
                "voice",
                "voice",
                "include = [\"voice/**\"]\nretention = { keep_daily = 2 }",
            ),
        ],
        "[contracts]\ndefault_voice_retention_days = 1\n",
    );
    let lock = ObjectLock {
        mode: LockMode::Governance,
        test_clock: Some(TestClock {
            simulated: at("2030-01-01T00:00:00Z"),
            real: real_start,
            seconds_per_day: SECONDS_PER_DAY,
        }),
    };
    w.point_at_s3(&bucket, &lock_line(real_start));
    (w, bucket, lock)
}

/// The `object_lock` line of [`locked_world`]'s config.
pub fn lock_line(real_start: DateTime<Utc>) -> String {
    format!(
        "object_lock = {{ mode = \"governance\", test_clock = {{ simulated = \"2030-01-01T00:00:00Z\", real = \"{}\", seconds_per_day = {SECONDS_PER_DAY} }} }}",
        real_start.to_rfc3339()
    )
}

pub fn bucket(name: &str, lock: &ObjectLock) -> LockedBucket {
    let mut loc = s3_location(name, "offsite");
    loc.object_lock = Some(lock.clone());
    offsite::runtime::block_on(LockedBucket::connect(&loc, lock.clone()))
}

/// The store of [`locked_world`]'s repository, as the agent connects to it
/// (to stack versions with the agent's own credentials).
pub fn locked_store(name: &str, lock: &ObjectLock) -> offsite::repo::store::Store {
    let mut loc = s3_location(name, "offsite");
    loc.object_lock = Some(lock.clone());
    offsite::repo::store::Store::connect(&offsite::repo::store::Location::S3(loc), false).unwrap()
}

pub fn versions(b: &LockedBucket) -> Vec<Version> {
    offsite::runtime::block_on(b.versions("")).unwrap().0
}

pub fn retain_until(b: &LockedBucket, key: &str) -> Option<DateTime<Utc>> {
    offsite::runtime::block_on(b.retain_until(key)).unwrap()
}

pub fn pack_key(id: &ObjectId) -> String {
    offsite::repo::layout::pack_key(id)
}

pub fn record(w: &World, rel: &str, bytes: &[u8], recorded: &str) {
    put(&w.src(), rel, bytes);
    let f = std::fs::File::options()
        .write(true)
        .open(w.src().join(rel))
        .unwrap();
    f.set_modified(at(recorded).into()).unwrap();
}
