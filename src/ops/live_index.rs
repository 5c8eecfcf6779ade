//! The index a snapshot may trust: only blobs in packs that exist.
//!
//! Index files say which blobs exist, but a pack can be lost (deleted by
//! hand, quarantined by `repair`, truncated) without the index knowing. A
//! snapshot that deduplicated against such an index, or reused a parent's
//! chunk list unchecked, would reference blobs that are gone, and every later
//! snapshot of an unchanged file would inherit the hole. So a snapshot starts
//! with one listing of the packs and builds its index from the index files,
//! keeping only packs that are present with their indexed size:
//!
//! * a pack listed in the index but missing (or of another size) is left
//!   out, so its blobs count as absent: dedup stores them anew, and reused
//!   entries that name them are read again from the source;
//! * a pack present but in no index file (the index was lost and not rebuilt,
//!   or a snapshot crashed after its packs) is *adopted*: its header is read
//!   (two ranged reads) and the snapshot's own index file lists it too, so a
//!   blob in it is never referenced without an index entry. A pack whose
//!   header cannot be read is not adopted (a warning).
//!
//! Damaged packs that are present are not detected here (that needs reading
//! every byte): `check --read-data` finds them and `repair` quarantines them,
//! after which they are simply missing and this module does the rest.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::problems::Problem;
use crate::repo::index::IndexedPack;
use crate::repo::layout::pack_key;
use crate::repo::lookup::{BlobLookup, LookupBuilder};
use crate::repo::pack::BlobRef;
use crate::repo::writer::BlobWriter;
use crate::repo::Repository;

/// The trusted index with what building it found.
pub struct LiveIndex {
    /// Where the trusted packs hold each blob (see [`crate::repo::lookup`]).
    pub lookup: BlobLookup,
    /// Packs this snapshot's index file must list (adopted, unindexed ones).
    pub adopted: Vec<IndexedPack>,
    /// Indexed packs that are missing or of the wrong size, by key.
    pub missing: Vec<String>,
    /// Problems worth a warning (unreadable headers of unindexed packs).
    pub warnings: Vec<String>,
    /// Index files that cannot be read (skipped; see [`crate::problems`]).
    pub problems: Vec<Problem>,
}

/// Build the trusted index of `repo`, streaming its index files one at a
/// time into a [`BlobLookup`] spilled under the temporary directory.
pub fn load(repo: &Repository) -> Result<LiveIndex> {
    let present: HashMap<ObjectId, u64> = repo.list_packs()?.into_iter().collect();
    let dir = std::env::temp_dir();
    let mut builder = LookupBuilder::new(&dir);
    let mut missing: HashSet<ObjectId> = HashSet::new();
    let problems = repo.each_index_file_tolerant(|_, file| {
        for pack in &file.packs {
            if present.get(&pack.id) == Some(&pack.size) {
                builder.add_pack(pack)?;
            } else {
                missing.insert(pack.id);
            }
        }
        Ok(())
    })?;
    // A pack listed twice, once with a wrong size, is still trusted.
    missing.retain(|id| !builder.has_pack(id));
    let mut missing: Vec<String> = missing.iter().map(pack_key).collect();
    missing.sort();
    if !missing.is_empty() {
        tracing::warn!(
            packs = missing.len(),
            "indexed packs are missing; their blobs are stored again"
        );
    }
    let mut adopted = Vec::new();
    let mut warnings = Vec::new();
    for (id, size) in &present {
        if builder.has_pack(id) {
            continue;
        }
        match repo.read_pack_header(id, *size) {
            Ok(pack) => {
                builder.add_pack(&pack)?;
                adopted.push(pack);
            }
            Err(e @ (Error::Corrupt { .. } | Error::NotFound { .. })) => {
                warnings.push(format!("unindexed {} not used: {e}", pack_key(id)))
            }
            Err(e) => return Err(e),
        }
    }
    if !adopted.is_empty() {
        tracing::info!(packs = adopted.len(), "unindexed packs adopted");
    }
    let lookup = builder.finish()?;
    tracing::debug!(
        blobs = lookup.blobs(),
        ram_bytes = lookup.ram_bytes(),
        "blob lookup built"
    );
    Ok(LiveIndex {
        lookup,
        adopted,
        missing,
        warnings,
        problems,
    })
}

/// `chunks` checked against the trusted packs, or `None` when any of them is
/// not held in an existing pack. A chunk whose pack is trusted is kept as
/// it is (a per-pack check, no per-blob lookup: an unchanged file costs no
/// read of the blob table); another is re-pointed at wherever the
/// repository holds the same id (a blob is named by its content, so any
/// indexed copy is the same blob).
pub fn relocate(chunks: &[BlobRef], writer: &BlobWriter<'_>) -> Option<Vec<BlobRef>> {
    chunks
        .iter()
        .map(|c| {
            if writer.trusts(c) {
                Some(c.clone())
            } else {
                writer.locate(&c.id)
            }
        })
        .collect()
}
