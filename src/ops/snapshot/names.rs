//! One source directory's names, sorted, compactly.
//!
//! Pages need a directory's entries in name order, and `readdir` gives them
//! in no order, so each directory's names are read and sorted in memory
//! before its walk starts: one buffer of the names' bytes plus 16 bytes a
//! name (no per-name allocation, no open handle), ~30 MB for a directory of
//! a million 14-byte names. Only the directories open on the walk's path
//! hold their names; a spill to disk for directories of tens of millions of
//! entries is not built (the host has directories of a million).

use std::path::Path;

/// The names of one directory, sorted bytewise (as pages order them).
#[derive(Default)]
pub(super) struct Names {
    bytes: String,
    spans: Vec<(usize, usize)>,
    next: usize,
}

impl Names {
    /// Read `dir`'s names: those that are not UTF-8, and entries that
    /// cannot be read, are reported through `warn` and left out.
    pub(super) fn read(dir: &Path, warn: &mut dyn FnMut(String)) -> std::io::Result<Self> {
        let mut names = Names::default();
        for item in std::fs::read_dir(dir)? {
            match item {
                Ok(entry) => match entry.file_name().into_string() {
                    Ok(name) => {
                        let start = names.bytes.len();
                        names.bytes.push_str(&name);
                        names.spans.push((start, name.len()));
                    }
                    Err(raw) => warn(format!(
                        "{}: name {raw:?} is not UTF-8, skipped",
                        dir.display()
                    )),
                },
                Err(e) => warn(format!("{}: {e}", dir.display())),
            }
        }
        let bytes = &names.bytes;
        names
            .spans
            .sort_unstable_by(|a, b| bytes[a.0..a.0 + a.1].cmp(&bytes[b.0..b.0 + b.1]));
        names.bytes.shrink_to_fit();
        names.spans.shrink_to_fit();
        Ok(names)
    }

    /// The next name in order, without taking it.
    pub(super) fn peek(&self) -> Option<&str> {
        let &(start, len) = self.spans.get(self.next)?;
        self.bytes.get(start..start + len)
    }

    /// Take the name [`Self::peek`] gave.
    pub(super) fn advance(&mut self) {
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_sorted_bytewise_and_bad_ones_are_warned() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b", "a", "Z", "é", "a.b", "aa"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let mut warned = Vec::new();
        let mut names = Names::read(dir.path(), &mut |w| warned.push(w)).unwrap();
        let mut got = Vec::new();
        while let Some(name) = names.peek() {
            got.push(name.to_string());
            names.advance();
        }
        assert_eq!(got, ["Z", "a", "a.b", "aa", "b", "é"]);
        assert!(warned.is_empty(), "{warned:?}");
    }
}
