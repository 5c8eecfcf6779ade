//! The names of what offsite does and how it ended, as types.
//!
//! These spellings are a public interface: they are the `operation` and
//! `outcome` of every activity-log entry (JSON in the repository, read back
//! by other hosts and by older and newer versions), the `result` of a
//! restore-test report, the `operation` and `result` labels of the Prometheus
//! metrics, and the `last_outcome` of the agent's state file. They must never
//! change; the tests in this module pin them. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An operation, as the activity log, the locks and the metrics name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operation {
    Snapshot,
    Prune,
    RestoreTest,
    Restore,
    Check,
    Repair,
    RebuildIndex,
    Unlock,
    /// `offsite erase`: a tenant's key destroyed, or items removed.
    Erase,
    /// A change to the key's copies (`offsite key add|remove|export|recover`).
    Key,
    /// A name this version does not know: an entry written by a newer
    /// version (the log is shared by every host) reads back as it was.
    Other(String),
}

impl Operation {
    /// Every operation this version knows.
    pub const KNOWN: [Operation; 10] = [
        Operation::Snapshot,
        Operation::Prune,
        Operation::RestoreTest,
        Operation::Restore,
        Operation::Check,
        Operation::Repair,
        Operation::RebuildIndex,
        Operation::Unlock,
        Operation::Erase,
        Operation::Key,
    ];

    /// The spelling in logs, lock objects and metric labels.
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Snapshot => "snapshot",
            Operation::Prune => "prune",
            Operation::RestoreTest => "restore-test",
            Operation::Restore => "restore",
            Operation::Check => "check",
            Operation::Repair => "repair",
            Operation::RebuildIndex => "rebuild-index",
            Operation::Unlock => "unlock",
            Operation::Erase => "erase",
            Operation::Key => "key",
            Operation::Other(name) => name,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = std::convert::Infallible;

    /// Never fails: a name this version does not know is [`Operation::Other`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::KNOWN
            .into_iter()
            .find(|op| op.as_str() == s)
            .unwrap_or_else(|| Operation::Other(s.to_string())))
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(name.parse().unwrap_or_else(|never| match never {}))
    }
}

/// How an operation ended: `ok` or `failed` (the activity log's `outcome`,
/// a restore test's `result`, the `result` label of its metric).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    /// Both outcomes, for metrics that show a zero for each.
    pub const ALL: [Outcome; 2] = [Outcome::Ok, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        }
    }

    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_those_of_existing_logs_and_labels() {
        let expected = [
            "snapshot",
            "prune",
            "restore-test",
            "restore",
            "check",
            "repair",
            "rebuild-index",
            "unlock",
            "erase",
            "key",
        ];
        assert_eq!(Operation::KNOWN.len(), expected.len());
        for (op, name) in Operation::KNOWN.iter().zip(expected) {
            assert_eq!(op.as_str(), name);
            assert_eq!(serde_json::to_value(op).unwrap(), name);
            assert_eq!(&name.parse::<Operation>().unwrap(), op);
        }
        assert_eq!(serde_json::to_value(Outcome::Ok).unwrap(), "ok");
        assert_eq!(serde_json::to_value(Outcome::Failed).unwrap(), "failed");
        assert_eq!(Outcome::Failed.to_string(), "failed");
        assert_eq!(
            format!("{:<7}|{:<8}|", Outcome::Ok, Operation::Prune),
            "ok     |prune   |"
        );
    }

    #[test]
    fn an_unknown_operation_reads_back_unchanged() {
        let op: Operation = serde_json::from_str("\"compact\"").unwrap();
        assert_eq!(op, Operation::Other("compact".into()));
        assert_eq!(serde_json::to_string(&op).unwrap(), "\"compact\"");
        assert!(serde_json::from_str::<Outcome>("\"maybe\"").is_err());
    }
}
