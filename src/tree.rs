//! Directory trees: the metadata of one snapshot, one blob per directory.
//!
//! Each directory of a snapshot is a JSON blob listing its entries sorted by
//! name. A file entry carries everything a restore needs: size, times, mode,
//! tenant, whole-content SHA-256 and the location of every chunk. A directory
//! entry points at its own tree blob. Unchanged directories serialize to the
//! same bytes and are stored once; restoring one item reads only the trees on
//! its path, never an index or the other snapshots.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::BlobRef;

/// One directory's entries, sorted by name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

/// A file or a subdirectory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    File(FileEntry),
    Dir(DirEntry),
}

impl Entry {
    /// The entry's name inside its directory.
    pub fn name(&self) -> &str {
        match self {
            Entry::File(f) => &f.name,
            Entry::Dir(d) => &d.name,
        }
    }
}

/// A regular file as backed up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub mode: u32,
    pub inode: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// SHA-256 of the whole content.
    pub sha256: ObjectId,
    pub chunks: Vec<BlobRef>,
    /// A voice recording gone from the source, carried forward from the
    /// previous snapshot until its backup copy expires.
    #[serde(default, skip_serializing_if = "is_false")]
    pub carried: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A subdirectory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub mode: u32,
    pub mtime_ns: i64,
    pub tree: BlobRef,
}

impl Tree {
    /// Serialize (deterministically: entries must already be sorted).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("tree serializes")
    }

    /// Parse a tree blob read from `object`.
    pub fn from_bytes(object: &str, bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(object, format!("tree does not parse: {e}")))
    }

    /// The entry called `name`, by binary search.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Sort entries by name (call before serializing).
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name().cmp(b.name()));
    }
}

/// Split an item path given by a person into safe components: no absolute
/// paths, no `..`, no empty names. `.` and repeated slashes are dropped.
pub fn item_components(path: &str) -> Result<Vec<String>> {
    if path.starts_with('/') {
        return Err(Error::Usage(format!(
            "item path {path:?} must be relative to the source (like tenant/voice/2026/11/01/x.opus)"
        )));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => continue,
            ".." => {
                return Err(Error::Usage(format!(
                    "item path {path:?} contains '..'; items are named relative to the source and cannot leave it"
                )))
            }
            p if p.contains('\0') => {
                return Err(Error::Usage(format!("item path {path:?} contains a NUL byte")))
            }
            p => parts.push(p.to_string()),
        }
    }
    if parts.is_empty() {
        return Err(Error::Usage(format!("item path {path:?} names no file")));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_that_escape_are_refused() {
        assert!(item_components("../../etc/passwd").is_err());
        assert!(item_components("a/../../b").is_err());
        assert!(item_components("/etc/passwd").is_err());
        assert!(item_components("").is_err());
        assert_eq!(
            item_components("./a//b/c.txt").unwrap(),
            vec!["a", "b", "c.txt"]
        );
    }
}
