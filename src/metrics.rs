//! Prometheus metrics: what the agent did, and what the repository holds.
//!
//! Kept in a `prometheus-client` registry, served at `/metrics` in the
//! OpenMetrics text format (which Prometheus scrapes natively) and optionally
//! written to a node_exporter textfile (atomically: temp file, then rename).
//! The HTTP server and its limits live in [`crate::agent::http`].
//! Values that describe the repository are read back from it at start (last
//! snapshots from their manifests, last prune and restore tests from the
//! activity log), so a restart does not reset "last success" to nothing.
//! Objects that cannot be read are skipped there, not fatal: they are counted
//! in `offsite_repository_problems` (see [`Metrics::record_problems`]).
//!
//! # Telling the truth to the alert rules (`systemd/offsite-alerts.yml`)
//!
//! * Nothing is reported that did not happen: the gauges about *the last*
//!   restore test (`offsite_restore_test_success`, its time, duration and
//!   bytes) are absent until a test ran (or the activity log has one), so a
//!   fresh agent never looks like a failed test.
//! * Everything that can happen is there from the start: every counter
//!   (`offsite_job_failures_total` for every scheduled job,
//!   `offsite_restore_test_runs_total` for both results,
//!   `offsite_erasures_total` for both kinds,
//!   `offsite_snapshot_stored_bytes_total` for every configured source,
//!   `offsite_s3_requests_total` for every kind) starts at 0, so `increase()`
//!   sees the first failure; `offsite_snapshot_last_success_timestamp_seconds`
//!   is 0 for a configured source that never succeeded, so the stale rule can
//!   fire for it; `offsite_job_scheduled_since_timestamp_seconds` (kept in
//!   the state file, so a restart does not reset it) gives the rules their
//!   day-one grace, for a fresh install as for a source added later.
//! * Erasures are operator commands, never agent jobs: the agent counts
//!   the successful `erase` entries of the activity log (every host's) when
//!   it starts, so `offsite_erasures_total{kind="tenant"|"item"}` says how
//!   many the repository has seen; one made while the agent runs shows after
//!   its next start.
//! * No label is called `job` or `instance`: Prometheus' own target labels
//!   would rename (`exported_job`) or hide them. A job is named by
//!   `operation` (the [`Operation`] spelling) and, for a snapshot, `source`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::activity;
use crate::agent::schedule::{Job, JobKind, JobState};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::operation::{Operation, Outcome};
use crate::ops::restore_test::RestoreTestReport;
use crate::problems::Problem;
use crate::repo::layout::{self, ObjectKind};
use crate::repo::Repository;
use crate::snapshot::Summary;

mod classic;
pub use classic::to_classic_text;

type Labels = Vec<(String, String)>;

/// The `kind` label of `offsite_erasures_total`.
const ERASURE_KINDS: [&str; 2] = ["tenant", "item"];
type FloatGauge = Gauge<f64, AtomicU64>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_string(), value.to_string())]
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The labels that name a scheduled job: its `operation`, and the `source`
/// of a snapshot.
fn job_labels(job: &Job) -> Labels {
    let mut labels = label("operation", job.operation().as_str());
    if let JobKind::Snapshot(source) = &job.kind {
        labels.push(("source".to_string(), source.clone()));
    }
    labels
}

/// A gauge without labels that is absent until it is first set: a
/// family whose only member is created by [`set_once`].
type Optional = Family<Labels, FloatGauge>;

fn set_once(gauge: &Optional, value: f64) {
    gauge.get_or_create(&Vec::new()).set(value);
}

/// Every metric the agent publishes.
pub struct Metrics {
    registry: Registry,
    snapshot_last_success: Family<Labels, FloatGauge>,
    snapshot_duration: Family<Labels, FloatGauge>,
    snapshot_added_bytes: Family<Labels, FloatGauge>,
    snapshot_items: Family<Labels, FloatGauge>,
    snapshot_stored_bytes: Family<Labels, Counter>,
    prune_last_success: FloatGauge,
    restore_test_last_run: Optional,
    restore_test_last_success: FloatGauge,
    restore_test_success: Optional,
    restore_test_duration: Optional,
    restore_test_bytes: Optional,
    restore_test_runs: Family<Labels, Counter>,
    erasures: Family<Labels, Counter>,
    agent_start: Optional,
    job_failures: Family<Labels, Counter>,
    job_consecutive_failures: Family<Labels, Gauge>,
    job_since: Family<Labels, FloatGauge>,
    repository_snapshots: Family<Labels, FloatGauge>,
    repository_stored_bytes: FloatGauge,
    build_info: Family<Labels, FloatGauge>,
    store_requests: Family<Labels, Counter>,
    repository_problems: FloatGauge,
    /// The unreadable objects behind `repository_problems`: key → what.
    problems: Mutex<BTreeMap<String, String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            snapshot_last_success: Family::default(),
            snapshot_duration: Family::default(),
            snapshot_added_bytes: Family::default(),
            snapshot_items: Family::default(),
            snapshot_stored_bytes: Family::default(),
            prune_last_success: FloatGauge::default(),
            restore_test_last_run: Optional::default(),
            restore_test_last_success: FloatGauge::default(),
            restore_test_success: Optional::default(),
            restore_test_duration: Optional::default(),
            restore_test_bytes: Optional::default(),
            restore_test_runs: Family::default(),
            erasures: Family::default(),
            agent_start: Optional::default(),
            job_failures: Family::default(),
            job_consecutive_failures: Family::default(),
            job_since: Family::default(),
            repository_snapshots: Family::default(),
            repository_stored_bytes: FloatGauge::default(),
            build_info: Family::default(),
            store_requests: Family::default(),
            repository_problems: FloatGauge::default(),
            problems: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register(
            "offsite_repository_problems",
            "Objects in the repository that cannot be read and were skipped (manifests, index files, log entries)",
            m.repository_problems.clone(),
        );
        registry.register(
            "offsite_snapshot_last_success_timestamp_seconds",
            "Time of the last successful snapshot of a source (0: none yet)",
            m.snapshot_last_success.clone(),
        );
        registry.register(
            "offsite_snapshot_duration_seconds",
            "Duration of the last successful snapshot of a source",
            m.snapshot_duration.clone(),
        );
        registry.register(
            "offsite_snapshot_added_bytes",
            "Bytes the last snapshot of a source added to the repository",
            m.snapshot_added_bytes.clone(),
        );
        registry.register(
            "offsite_snapshot_items",
            "Files the last successful snapshot of a source found in it (carried voice recordings not counted)",
            m.snapshot_items.clone(),
        );
        registry.register(
            "offsite_snapshot_stored_bytes",
            "Bytes this agent's snapshots stored in the repository (new blobs, as stored), by source",
            m.snapshot_stored_bytes.clone(),
        );
        registry.register(
            "offsite_agent_start_timestamp_seconds",
            "When the running agent started",
            m.agent_start.clone(),
        );
        registry.register(
            "offsite_prune_last_success_timestamp_seconds",
            "Time of the last successful prune",
            m.prune_last_success.clone(),
        );
        registry.register(
            "offsite_restore_test_last_run_timestamp_seconds",
            "Time of the last restore test (absent until one ran)",
            m.restore_test_last_run.clone(),
        );
        registry.register(
            "offsite_restore_test_last_success_timestamp_seconds",
            "Time of the last successful restore test (0: none yet)",
            m.restore_test_last_success.clone(),
        );
        registry.register(
            "offsite_restore_test_success",
            "Result of the last restore test (1 ok, 0 failed; absent until one ran)",
            m.restore_test_success.clone(),
        );
        registry.register(
            "offsite_restore_test_duration_seconds",
            "Duration of the last restore test",
            m.restore_test_duration.clone(),
        );
        registry.register(
            "offsite_restore_test_bytes",
            "Bytes restored by the last restore test",
            m.restore_test_bytes.clone(),
        );
        registry.register(
            "offsite_restore_test_runs",
            "Restore tests by result",
            m.restore_test_runs.clone(),
        );
        registry.register(
            "offsite_erasures",
            "Erasures in the activity log at agent start, by kind (tenant: a key destroyed; item: items removed)",
            m.erasures.clone(),
        );
        registry.register(
            "offsite_job_failures",
            "Failed runs of the agent's scheduled jobs, by operation (and source)",
            m.job_failures.clone(),
        );
        registry.register(
            "offsite_job_consecutive_failures",
            "Failed runs of a scheduled job since its last success (0 after a success)",
            m.job_consecutive_failures.clone(),
        );
        registry.register(
            "offsite_job_scheduled_since_timestamp_seconds",
            "When the agent first scheduled a job (state file): the alert rules' grace for a job that never succeeded",
            m.job_since.clone(),
        );
        registry.register(
            "offsite_repository_snapshots",
            "Snapshots in the repository by source (this host)",
            m.repository_snapshots.clone(),
        );
        registry.register(
            "offsite_repository_stored_bytes",
            "Bytes stored in the repository's packs",
            m.repository_stored_bytes.clone(),
        );
        registry.register(
            "offsite_build_info",
            "The running offsite version",
            m.build_info.clone(),
        );
        registry.register(
            "offsite_s3_requests",
            "Requests sent to the object store by kind (S3 bills per request)",
            m.store_requests.clone(),
        );
        m.build_info
            .get_or_create(&label("version", env!("CARGO_PKG_VERSION")))
            .set(1.0);
        for result in Outcome::ALL {
            let _ = m
                .restore_test_runs
                .get_or_create(&label("result", result.as_str()));
        }
        for kind in ERASURE_KINDS {
            let _ = m.erasures.get_or_create(&label("kind", kind));
        }
        for (op, _) in crate::repo::store::Requests::default().by_op() {
            let _ = m.store_requests.get_or_create(&label("op", op));
        }
        Metrics { registry, ..m }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("metrics encode into a string");
        out
    }

    /// The metrics in Prometheus' classic text format (node_exporter's
    /// textfile collector, `promtool check metrics`, scrapers that do not ask
    /// for OpenMetrics); see [`to_classic_text`].
    pub fn encode_classic(&self) -> String {
        to_classic_text(&self.encode())
    }

    /// A successful snapshot of `source` taken at `time` by this agent: the
    /// last snapshot's gauges and the bytes it added to the total.
    pub fn record_snapshot(&self, source: &str, time: DateTime<Utc>, summary: &Summary) {
        self.show_snapshot(source, time, summary);
        self.snapshot_stored_bytes
            .get_or_create(&label("source", source))
            .inc_by(summary.bytes_added);
    }

    /// The gauges of the last snapshot of `source` (this agent's, or one the
    /// repository holds).
    fn show_snapshot(&self, source: &str, time: DateTime<Utc>, summary: &Summary) {
        let l = label("source", source);
        self.snapshot_last_success
            .get_or_create(&l)
            .set(seconds(time));
        self.snapshot_duration
            .get_or_create(&l)
            .set(summary.duration_seconds);
        self.snapshot_added_bytes
            .get_or_create(&l)
            .set(summary.bytes_added as f64);
        self.snapshot_items
            .get_or_create(&l)
            .set(summary.items_from_source() as f64);
    }

    /// The agent started at `time`.
    pub fn record_agent_start(&self, time: DateTime<Utc>) {
        set_once(&self.agent_start, seconds(time));
    }

    /// The jobs the agent schedules: their failure counters and failing
    /// streaks start at 0 (a streak the state file knows is set after).
    pub fn expect_jobs(&self, jobs: &[Job]) {
        for job in jobs {
            let labels = job_labels(job);
            let _ = self.job_failures.get_or_create(&labels);
            let _ = self.job_consecutive_failures.get_or_create(&labels);
        }
    }

    /// A successful prune that finished at `finished`.
    pub fn record_prune(&self, finished: DateTime<Utc>) {
        self.prune_last_success.set(seconds(finished));
    }

    /// A restore test this agent ran: the last test's gauges and the count.
    pub fn record_restore_test(&self, r: &RestoreTestReport) {
        self.show_restore_test(r);
        self.restore_test_runs
            .get_or_create(&label("result", r.result.as_str()))
            .inc();
    }

    /// The gauges of the last restore test (this agent's, or one the
    /// activity log remembers); counters count only what this agent did.
    fn show_restore_test(&self, r: &RestoreTestReport) {
        set_once(&self.restore_test_last_run, seconds(r.time));
        set_once(&self.restore_test_duration, r.duration_seconds);
        set_once(&self.restore_test_bytes, r.bytes as f64);
        set_once(&self.restore_test_success, if r.ok() { 1.0 } else { 0.0 });
        if r.ok() {
            self.restore_test_last_success.set(seconds(r.time));
        }
    }

    /// Count the successful erasures among activity-log `entries` (a
    /// repeated tenant erase that changed nothing is not one).
    fn count_erasures(&self, entries: &[activity::Activity]) {
        for e in entries.iter().filter(|e| e.outcome.is_ok()) {
            let kind = e.details.get("kind").and_then(|k| k.as_str());
            let repeat = e.details.get("rotated") == Some(&serde_json::Value::Bool(false));
            if let Some(kind) = kind.filter(|k| ERASURE_KINDS.contains(k) && !repeat) {
                self.erasures.get_or_create(&label("kind", kind)).inc();
            }
        }
    }

    /// Add the requests a job sent.
    pub fn record_requests(&self, requests: &crate::repo::store::Requests) {
        for (op, n) in requests.by_op() {
            self.store_requests
                .get_or_create(&label("op", op))
                .inc_by(n);
        }
    }

    /// A failed run of a scheduled job, labelled by what it does
    /// (`operation`: `snapshot`, `prune`, `restore-test`; `source` for a
    /// snapshot).
    pub fn record_job_failure(&self, job: &Job) {
        self.job_failures.get_or_create(&job_labels(job)).inc();
    }

    /// What the agent's state file records of the scheduled job `job`: its
    /// failing streak, and since when it is scheduled.
    pub fn record_job_state(&self, job: &Job, state: &JobState) {
        let labels = job_labels(job);
        self.job_consecutive_failures
            .get_or_create(&labels)
            .set(i64::from(state.consecutive_failures));
        if let Some(since) = state.since {
            self.job_since.get_or_create(&labels).set(seconds(since));
        }
    }

    /// Snapshot counts and stored bytes, from the repository as it is now.
    pub fn refresh_repository(&self, repo: &Repository, config: &Config) -> Result<()> {
        for source in &config.sources {
            let n = repo
                .list_snapshots(Some(&config.host), Some(&source.name))?
                .len();
            self.repository_snapshots
                .get_or_create(&label("source", &source.name))
                .set(n as f64);
        }
        let bytes: u64 = repo.list_packs()?.iter().map(|(_, n)| n).sum();
        self.repository_stored_bytes.set(bytes as f64);
        Ok(())
    }

    /// Read back what the repository remembers: last snapshots (0 for a
    /// configured source without one), last prune, restore tests of the
    /// activity log's window.
    /// Objects that cannot be read are skipped and counted in
    /// `offsite_repository_problems` (every manifest of this host and every
    /// index file is read for that), so one damaged object never keeps the
    /// agent from starting.
    pub fn load_from_repository(&self, repo: &Repository, config: &Config) -> Result<()> {
        let mut problems = Vec::new();
        for source in &config.sources {
            let listing = repo.load_snapshots_tolerant(Some(&config.host), Some(&source.name))?;
            problems.extend(listing.problems());
            let l = label("source", &source.name);
            let _ = self.snapshot_stored_bytes.get_or_create(&l);
            match listing.readable.first() {
                Some((_, snap)) => self.show_snapshot(&source.name, snap.time, &snap.summary),
                // Never succeeded: 0, so the stale rule fires once the grace is over.
                None => {
                    let _ = self.snapshot_last_success.get_or_create(&l);
                }
            }
        }
        problems.extend(repo.unreadable_index_files()?);
        // One read of the log (the operation is inside each sealed entry).
        let (entries, unreadable) = repo.read_activity_tolerant(None, None)?;
        problems.extend(unreadable);
        let of = |op: Operation| -> Vec<activity::Activity> {
            let name = op.as_str();
            entries
                .iter()
                .filter(|e| e.operation.as_str() == name)
                .cloned()
                .collect()
        };
        let (prunes, restore_tests) = (of(Operation::Prune), of(Operation::RestoreTest));
        self.count_erasures(&of(Operation::Erase));
        let own_tag = crate::snapshot::host_tag(repo.keys().meta(), &config.host);
        self.record_problems(
            &[
                Rechecked::SnapshotsOf(&own_tag),
                Rechecked::All(ObjectKind::Index),
                Rechecked::All(ObjectKind::Log),
            ],
            &problems,
        );
        let own = |e: &activity::Activity| e.host == config.host && e.outcome.is_ok();
        if let Some(p) = prunes.into_iter().rfind(own) {
            self.prune_last_success.set(seconds(p.time));
        }
        for entry in restore_tests {
            if entry.host != config.host {
                continue;
            }
            if let Ok(report) = serde_json::from_value::<RestoreTestReport>(entry.details) {
                self.show_restore_test(&report);
            }
        }
        self.refresh_repository(repo, config)
    }

    /// Unreadable objects an operation found. `rechecked` are the objects
    /// it examined in full: problems among them that it no longer found are
    /// cleared (a repaired or removed object); the others stay.
    pub fn record_problems(&self, rechecked: &[Rechecked], found: &[Problem]) {
        let mut known = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|object, _| !rechecked.iter().any(|r| r.covers(object)));
        for p in found {
            if known.insert(p.object.clone(), p.what.clone()).is_none() {
                tracing::warn!(object = %p.object, "{p}");
            }
        }
        self.repository_problems.set(known.len() as f64);
    }

    /// Write the node_exporter textfile atomically.
    pub fn write_textfile(&self, path: &std::path::Path) -> Result<()> {
        let tmp = path.with_extension("prom.tmp");
        std::fs::write(&tmp, self.encode_classic()).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }
}

/// Objects an operation examined in full (see [`Metrics::record_problems`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rechecked<'a> {
    /// Every object of a kind.
    All(ObjectKind),
    /// The snapshot manifests of one host, by its tag
    /// ([`crate::snapshot::host_tag`]).
    SnapshotsOf(&'a str),
}

impl Rechecked<'_> {
    /// Whether the object `key` is among these.
    fn covers(&self, key: &str) -> bool {
        match self {
            Rechecked::All(kind) => ObjectKind::of(key) == Some(*kind),
            Rechecked::SnapshotsOf(host) => layout::is_snapshot_of_host(key, host),
        }
    }
}

#[cfg(test)]
mod tests;
