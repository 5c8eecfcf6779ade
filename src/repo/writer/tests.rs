use super::*;

/// Six tenants' blobs interleaved: never more than [`MAX_OPEN_PACKS`]
/// packs open, every pack holds one tenant's blobs, and each reads back
/// under its tenant's key only.
#[test]
fn packs_hold_one_tenant_each_and_few_are_open() {
    let dir = tempfile::tempdir().unwrap();
    let location = crate::repo::Location::Local(dir.path().join("repo"));
    let now = DateTime::UNIX_EPOCH;
    let repo = Repository::init(&location, now, &crate::repo::MasterKey::generate()).unwrap();
    let writer = BlobWriter::new(&repo, now);
    let tenants = [None, Some("a"), Some("b"), Some("c"), Some("d"), Some("e")];
    let mut stored = Vec::new();
    for round in 0..5u8 {
        for (i, tenant) in tenants.iter().enumerate() {
            let raw = vec![round * 16 + i as u8; 1000 + i];
            let blob = writer
                .store(*tenant, BlobKind::Data, &raw, Compress::Never)
                .unwrap();
            assert_eq!(blob.tenant.as_deref(), *tenant);
            assert!(writer.data_packs.lock().unwrap().len() <= MAX_OPEN_PACKS);
            stored.push((blob, raw));
        }
    }
    let again = writer
        .store(Some("a"), BlobKind::Data, &stored[1].1, Compress::Never)
        .unwrap();
    assert_eq!(again, stored[1].0, "deduplicated within the tenant");
    let packs = writer.finish().unwrap();
    for pack in &packs {
        let of_pack: Vec<_> = stored.iter().filter(|(b, _)| b.pack == pack.id).collect();
        assert_eq!(of_pack.len(), pack.blobs.len());
        assert!(of_pack
            .iter()
            .all(|(b, _)| b.tenant.as_deref() == pack.tenant.as_deref()));
    }
    for (blob, raw) in &stored {
        assert_eq!(&repo.read_blob(blob).unwrap(), raw);
        let foreign = BlobRef {
            tenant: if blob.tenant.is_some() {
                None
            } else {
                Some("a".into())
            },
            ..blob.clone()
        };
        let err = repo.read_blob(&foreign).unwrap_err().to_string();
        assert!(err.contains("does not authenticate"), "{err}");
    }
}

/// A tenant's small documents: the first ones are stored with plain zstd
/// as samples, the later ones with the dictionary trained on them, in
/// a pack that carries it; each reads back, and a copy of a dictionary
/// blob (prune's repack) is compressed again for its new pack.
#[test]
fn later_documents_use_the_dictionary_and_read_back() {
    use crate::repo::compress::tests::{documents, samples_to_train};
    use crate::repo::compress::TRAIN_SAMPLES;
    let dir = tempfile::tempdir().unwrap();
    let location = crate::repo::Location::Local(dir.path().join("repo"));
    let now = DateTime::UNIX_EPOCH;
    let repo = Repository::init(&location, now, &crate::repo::MasterKey::generate()).unwrap();
    let writer = BlobWriter::new(&repo, now);
    let docs = documents(TRAIN_SAMPLES + 50);
    let stored: Vec<BlobRef> = docs
        .iter()
        .map(|d| {
            writer
                .store(Some("acme"), BlobKind::Data, d, Compress::Try)
                .unwrap()
        })
        .collect();
    let samples = samples_to_train(&docs);
    assert!(samples < docs.len());
    assert!(stored[..samples]
        .iter()
        .all(|b| b.compression == Compression::Zstd));
    assert!(stored[samples..]
        .iter()
        .all(|b| b.compression == Compression::ZstdDict));
    let packs = writer.finish().unwrap();
    assert_eq!(packs.len(), 2, "the pack opened before training is closed");
    for (blob, doc) in stored.iter().zip(&docs) {
        assert_eq!(&repo.read_blob(blob).unwrap(), doc);
    }
    let copier = BlobWriter::new(&repo, now);
    let last = stored.last().unwrap();
    let copy = copier
        .store_copy(BlobKind::Data, last, None, docs.last().unwrap(), None)
        .unwrap();
    assert_eq!(
        copy.compression,
        Compression::Zstd,
        "no dictionary in this run yet"
    );
    copier.finish().unwrap();
    assert_eq!(&repo.read_blob(&copy).unwrap(), docs.last().unwrap());
}
