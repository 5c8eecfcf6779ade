//! Walking a directory's pages: one name in O(levels) pages, every entry
//! lazily, page by page; a file's chunks piece by piece.
//!
//! Readers get pages from a [`PageSource`] (the repository directly, or
//! [`crate::repo::TreeCache`] for walks over whole snapshots), so the same
//! checks apply however pages are fetched: a child page must be exactly one
//! level below its parent, and entries must increase across pages too, so a
//! hostile directory can neither loop nor repeat a name.

use crate::error::{Error, Result};
use crate::repo::layout::pack_key;
use crate::repo::pack::BlobRef;
use crate::tree::page::{Child, Page, PieceRef};
use crate::tree::{shown, ChunkList, Entry, Tree};

/// Reads and checks pages and pieces (see [`crate::tree::page`]).
pub trait PageSource {
    /// The directory page `blob`, verified and decoded.
    fn page(&mut self, blob: &BlobRef) -> Result<Page>;
    /// The chunk-list piece `blob`.
    fn piece(&mut self, blob: &BlobRef) -> Result<Vec<BlobRef>>;
    /// The piece list `blob` of a file of `chunks` chunks.
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> Result<Vec<PieceRef>>;
}

impl<S: PageSource + ?Sized> PageSource for &mut S {
    fn page(&mut self, blob: &BlobRef) -> Result<Page> {
        (**self).page(blob)
    }
    fn piece(&mut self, blob: &BlobRef) -> Result<Vec<BlobRef>> {
        (**self).piece(blob)
    }
    fn piece_list(&mut self, blob: &BlobRef, chunks: u64) -> Result<Vec<PieceRef>> {
        (**self).piece_list(blob, chunks)
    }
}

fn corrupt(blob: &BlobRef, detail: String) -> Error {
    Error::corrupt(
        pack_key(&blob.pack),
        format!("tree blob {}: {detail}", blob.id),
    )
}

/// `child`, read as a page of `level` below a page of `level + 1`.
fn child_page<S: PageSource>(source: &mut S, child: &Child, level: u8) -> Result<Page> {
    let page = source.page(&child.page)?;
    let got = match &page {
        Page::Leaf(entries) => {
            if entries.first().map(|e| e.name()) != Some(child.first.as_str()) {
                return Err(corrupt(
                    &child.page,
                    format!(
                        "its first name is not {} as its parent page says",
                        shown(&child.first)
                    ),
                ));
            }
            0
        }
        Page::Internal { level, children } => {
            if children.first().map(|c| &c.first) != Some(&child.first) {
                return Err(corrupt(
                    &child.page,
                    format!(
                        "its first name is not {} as its parent page says",
                        shown(&child.first)
                    ),
                ));
            }
            *level
        }
    };
    if got != level {
        return Err(corrupt(
            &child.page,
            format!("a page of level {got} where level {level} belongs"),
        ));
    }
    Ok(page)
}

/// The entry called `name` in the directory whose root page is `root`,
/// reading one page per level.
pub fn lookup<S: PageSource>(source: &mut S, root: &BlobRef, name: &str) -> Result<Option<Entry>> {
    let mut page = source.page(root)?;
    loop {
        match page {
            Page::Leaf(mut entries) => {
                return Ok(entries
                    .binary_search_by(|e| e.name().cmp(name))
                    .ok()
                    .map(|i| entries.swap_remove(i)));
            }
            Page::Internal { level, children } => {
                let at = children.partition_point(|c| c.first.as_str() <= name);
                let Some(child) = at.checked_sub(1).map(|i| &children[i]) else {
                    return Ok(None);
                };
                page = child_page(source, child, level - 1)?;
            }
        }
    }
}

/// Every entry of one directory in name order, reading a page only when
/// the entries before it are used up.
pub struct DirIter<S: PageSource> {
    source: S,
    /// Internal pages being walked: their level and children still to read.
    stack: Vec<(u8, std::vec::IntoIter<Child>)>,
    leaf: std::vec::IntoIter<Entry>,
    /// The last name returned, and the page the current leaf came from.
    previous: String,
    from: BlobRef,
    /// Every page read, root first (prune keeps them all).
    pages: Vec<BlobRef>,
    failed: bool,
}

impl<S: PageSource> DirIter<S> {
    /// Start at the root page `root` (read now).
    pub fn new(mut source: S, root: &BlobRef) -> Result<Self> {
        let page = source.page(root)?;
        let mut iter = DirIter {
            source,
            stack: Vec::new(),
            leaf: Vec::new().into_iter(),
            previous: String::new(),
            from: root.clone(),
            pages: vec![root.clone()],
            failed: false,
        };
        iter.enter(page, root);
        Ok(iter)
    }

    fn enter(&mut self, page: Page, blob: &BlobRef) {
        match page {
            Page::Leaf(entries) => {
                self.leaf = entries.into_iter();
                self.from.clone_from(blob);
            }
            Page::Internal { level, children } => self.stack.push((level, children.into_iter())),
        }
    }

    /// The pages read so far, root first.
    pub fn pages(&self) -> &[BlobRef] {
        &self.pages
    }

    /// The source, to read other blobs (chunk lists) between entries.
    pub fn source(&mut self) -> &mut S {
        &mut self.source
    }

    /// Give the source back.
    pub fn into_source(self) -> S {
        self.source
    }

    fn step(&mut self) -> Result<Option<Entry>> {
        loop {
            if let Some(entry) = self.leaf.next() {
                if !self.previous.is_empty() && entry.name() <= self.previous.as_str() {
                    return Err(corrupt(
                        &self.from,
                        format!("entry {} is out of order across pages", shown(entry.name())),
                    ));
                }
                self.previous.clear();
                self.previous.push_str(entry.name());
                return Ok(Some(entry));
            }
            let Some((level, children)) = self.stack.last_mut() else {
                return Ok(None);
            };
            let level = *level;
            let Some(child) = children.next() else {
                self.stack.pop();
                continue;
            };
            let page = child_page(&mut self.source, &child, level - 1)?;
            self.pages.push(child.page.clone());
            self.enter(page, &child.page);
        }
    }
}

impl<S: PageSource> Iterator for DirIter<S> {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.step();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// A whole directory in memory, and every page it was read from (root
/// first). For directories a caller needs whole; walks over big ones use
/// [`DirIter`].
pub fn read_dir<S: PageSource>(source: S, root: &BlobRef) -> Result<(Tree, Vec<BlobRef>)> {
    let mut iter = DirIter::new(source, root)?;
    let mut entries = Vec::new();
    for entry in &mut iter {
        entries.push(entry?);
    }
    Ok((Tree { entries }, iter.pages))
}

/// A file's chunks in order, reading one piece at a time.
pub struct ChunkIter<S: PageSource> {
    source: S,
    pieces: std::vec::IntoIter<PieceRef>,
    current: std::vec::IntoIter<BlobRef>,
    failed: bool,
}

impl<S: PageSource> ChunkIter<S> {
    /// The chunks of `list` (reads the piece list now).
    pub fn new(mut source: S, list: &ChunkList) -> Result<Self> {
        let (pieces, current) = match list {
            ChunkList::Inline(chunks) => (Vec::new(), chunks.clone()),
            ChunkList::Pieces { list, chunks } => (source.piece_list(list, *chunks)?, Vec::new()),
        };
        Ok(ChunkIter {
            source,
            pieces: pieces.into_iter(),
            current: current.into_iter(),
            failed: false,
        })
    }
}

impl<S: PageSource> Iterator for ChunkIter<S> {
    type Item = Result<BlobRef>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(chunk) = self.current.next() {
                return Some(Ok(chunk));
            }
            let piece = self.pieces.next()?;
            match self.source.piece(&piece.piece) {
                Ok(chunks) if chunks.len() as u64 == piece.chunks => {
                    self.current = chunks.into_iter()
                }
                Ok(chunks) => {
                    self.failed = true;
                    return Some(Err(Error::corrupt(
                        pack_key(&piece.piece.pack),
                        format!(
                            "chunk-list piece {} holds {} chunks, its list says {}",
                            piece.piece.id,
                            chunks.len(),
                            piece.chunks
                        ),
                    )));
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Every chunk of `list`, in memory (for callers that need them at once).
pub fn all_chunks<S: PageSource>(source: S, list: &ChunkList) -> Result<Vec<BlobRef>> {
    ChunkIter::new(source, list)?.collect()
}

/// The blobs that hold `list` itself (the piece list, then every piece);
/// none when the chunks are inline. Reads only the piece list.
pub fn list_blobs<S: PageSource>(mut source: S, list: &ChunkList) -> Result<Vec<BlobRef>> {
    match list {
        ChunkList::Inline(_) => Ok(Vec::new()),
        ChunkList::Pieces { list, chunks } => {
            let mut out = vec![list.clone()];
            out.extend(
                source
                    .piece_list(list, *chunks)?
                    .into_iter()
                    .map(|p| p.piece),
            );
            Ok(out)
        }
    }
}

/// Every blob a file's content needs: the blobs of its list
/// ([`list_blobs`]), then its chunks.
pub fn file_blobs<S: PageSource>(mut source: S, list: &ChunkList) -> Result<Vec<BlobRef>> {
    let mut out = list_blobs(&mut source, list)?;
    out.extend(all_chunks(&mut source, list)?);
    Ok(out)
}
