//! berth-registry's integration tests: the blob store on real files in a temporary directory.

use std::path::{Path, PathBuf};

use berth_registry::{BlobError, BlobStore, Digest, UploadId};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt;

#[path = "registry/gc.rs"]
mod gc;
#[path = "registry/lifecycle.rs"]
mod lifecycle;

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs/sha256").join(&digest.hex()[..2]).join(digest.hex())
}

fn upload_files(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("uploads"))
        .expect("read uploads/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn read_all(store: &BlobStore, digest: &Digest, range: Option<(u64, u64)>) -> Vec<u8> {
    let read = store.open_read(digest, range).await.expect("open_read");
    let mut out = Vec::new();
    read.file.take(read.len).read_to_end(&mut out).await.expect("read");
    assert_eq!(out.len() as u64, read.len);
    out
}

async fn open_store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = BlobStore::open(dir.path().join("registry")).await.expect("open");
    (dir, store)
}

#[tokio::test]
async fn monolithic_upload_becomes_visible_with_its_size_and_bytes() {
    let (_dir, store) = open_store().await;
    let data = pattern(100_000, 1);
    let digest = Digest::of(&data);
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(matches!(store.open_read(&digest, None).await, Err(BlobError::BlobUnknown { .. })));

    let id = store.start_upload().await.unwrap();
    assert_eq!(store.append(&id, &data, Some(0)).await.unwrap(), 100_000);
    assert_eq!(store.upload_size(&id).await.unwrap(), 100_000);
    assert_eq!(store.stat(&digest).await.unwrap(), None, "not visible before complete");
    assert_eq!(store.complete(&id, &digest).await.unwrap(), 100_000);

    assert_eq!(store.stat(&digest).await.unwrap(), Some(100_000));
    assert_eq!(read_all(&store, &digest, None).await, data);
    assert_eq!(std::fs::read(blob_path(store.root(), &digest)).unwrap(), data, "layout blobs/sha256/xx/<hex>");
    assert!(upload_files(store.root()).is_empty());
    assert!(matches!(store.upload_size(&id).await, Err(BlobError::UnknownUpload { .. })));
    assert!(matches!(store.append(&id, b"more", None).await, Err(BlobError::UnknownUpload { .. })));
}

#[tokio::test]
async fn chunked_upload_becomes_visible() {
    let (_dir, store) = open_store().await;
    let data = pattern(10_000, 2);
    let digest = Digest::of(&data);
    let id = store.start_upload().await.unwrap();
    let mut offset = 0u64;
    for chunk in data.chunks(3_333) {
        offset = store.append(&id, chunk, Some(offset)).await.unwrap();
    }
    store.append(&id, b"", None).await.unwrap();
    assert_eq!(store.complete(&id, &digest).await.unwrap(), 10_000);
    assert_eq!(read_all(&store, &digest, None).await, data);
}

#[tokio::test]
async fn wrong_digest_leaves_nothing_visible_and_removes_the_upload() {
    let (_dir, store) = open_store().await;
    let data = pattern(5_000, 3);
    let claimed = Digest::of(b"something else");
    let id = store.start_upload().await.unwrap();
    store.append(&id, &data, None).await.unwrap();
    match store.complete(&id, &claimed).await {
        Err(BlobError::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, claimed);
            assert_eq!(actual, Digest::of(&data));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(store.stat(&claimed).await.unwrap(), None);
    assert_eq!(store.stat(&Digest::of(&data)).await.unwrap(), None);
    assert!(upload_files(store.root()).is_empty());
    assert!(matches!(store.upload_size(&id).await, Err(BlobError::UnknownUpload { .. })));
    assert!(matches!(store.complete(&id, &Digest::of(&data)).await, Err(BlobError::UnknownUpload { .. })));
    let shards = std::fs::read_dir(store.root().join("blobs/sha256")).unwrap().count();
    assert_eq!(shards, 0);
}

#[tokio::test]
async fn offset_mismatch_is_refused_and_the_upload_continues_from_the_right_offset() {
    let (_dir, store) = open_store().await;
    let id = store.start_upload().await.unwrap();
    assert_eq!(store.append(&id, b"hello ", Some(0)).await.unwrap(), 6);
    match store.append(&id, b"world", Some(3)).await {
        Err(BlobError::OffsetMismatch { expected: 3, actual: 6 }) => {}
        other => panic!("expected OffsetMismatch, got {other:?}"),
    }
    assert!(matches!(store.append(&id, b"world", Some(0)).await, Err(BlobError::OffsetMismatch { actual: 6, .. })));
    assert_eq!(store.upload_size(&id).await.unwrap(), 6, "a refused chunk adds nothing");
    assert_eq!(store.append(&id, b"world", Some(6)).await.unwrap(), 11);
    let digest = Digest::of(b"hello world");
    assert_eq!(store.complete(&id, &digest).await.unwrap(), 11);
    assert_eq!(read_all(&store, &digest, None).await, b"hello world");
}

#[tokio::test]
async fn ranges_start_middle_end_and_out_of_range() {
    let (_dir, store) = open_store().await;
    let data = pattern(1_000, 4);
    let digest = store.put(&data).await.unwrap();

    assert_eq!(read_all(&store, &digest, Some((0, 9))).await, &data[0..10]);
    assert_eq!(read_all(&store, &digest, Some((400, 599))).await, &data[400..600]);
    assert_eq!(read_all(&store, &digest, Some((990, 999))).await, &data[990..]);
    assert_eq!(read_all(&store, &digest, Some((999, 999))).await, &data[999..]);
    // A last byte past the end is clamped.
    assert_eq!(read_all(&store, &digest, Some((900, 5_000))).await, &data[900..]);
    assert_eq!(read_all(&store, &digest, Some((0, u64::MAX))).await, data);

    let read = store.open_read(&digest, Some((400, 599))).await.unwrap();
    assert_eq!((read.start, read.len, read.size), (400, 200, 1_000));

    for range in [(1_000, 1_000), (1_000, 2_000), (500, 499), (u64::MAX, u64::MAX)] {
        match store.open_read(&digest, Some(range)).await {
            Err(BlobError::RangeNotSatisfiable { size: 1_000 }) => {}
            other => panic!("range {range:?}: expected RangeNotSatisfiable, got {other:?}"),
        }
    }

    let empty = store.put(b"").await.unwrap();
    assert_eq!(store.stat(&empty).await.unwrap(), Some(0));
    assert_eq!(read_all(&store, &empty, None).await, b"");
    assert!(matches!(store.open_read(&empty, Some((0, 0))).await, Err(BlobError::RangeNotSatisfiable { size: 0 })));
}

#[tokio::test]
async fn two_uploads_of_the_same_content() {
    let (_dir, store) = open_store().await;
    let data = pattern(50_000, 5);
    let digest = Digest::of(&data);
    let a = store.start_upload().await.unwrap();
    let b = store.start_upload().await.unwrap();
    assert_ne!(a, b);
    store.append(&a, &data[..20_000], Some(0)).await.unwrap();
    store.append(&b, &data, Some(0)).await.unwrap();
    store.append(&a, &data[20_000..], Some(20_000)).await.unwrap();
    assert_eq!(store.complete(&b, &digest).await.unwrap(), 50_000);
    assert_eq!(store.complete(&a, &digest).await.unwrap(), 50_000);
    assert_eq!(store.put(&data).await.unwrap(), digest);

    assert_eq!(read_all(&store, &digest, None).await, data);
    assert!(upload_files(store.root()).is_empty());
    let shard = blob_path(store.root(), &digest).parent().unwrap().to_path_buf();
    assert_eq!(std::fs::read_dir(shard).unwrap().count(), 1);

    assert!(store.delete(&digest).await.unwrap());
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(!store.delete(&digest).await.unwrap());
}

#[tokio::test]
async fn cancel_removes_the_upload() {
    let (_dir, store) = open_store().await;
    let id = store.start_upload().await.unwrap();
    store.append(&id, b"abandoned", None).await.unwrap();
    assert_eq!(upload_files(store.root()), vec![id.to_string()]);
    store.cancel(&id).await.unwrap();
    assert!(upload_files(store.root()).is_empty());
    assert!(matches!(store.upload_size(&id).await, Err(BlobError::UnknownUpload { .. })));
    assert!(matches!(store.append(&id, b"x", None).await, Err(BlobError::UnknownUpload { .. })));
    assert!(matches!(store.cancel(&id).await, Err(BlobError::UnknownUpload { .. })));
    assert!(matches!(store.complete(&id, &Digest::of(b"abandoned")).await, Err(BlobError::UnknownUpload { .. })));
    assert_eq!(store.stat(&Digest::of(b"abandoned")).await.unwrap(), None);
}

#[tokio::test]
async fn leftover_uploads_are_removed_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let kept = {
        let store = BlobStore::open(&root).await.unwrap();
        let kept = store.put(b"a complete blob").await.unwrap();
        let id = store.start_upload().await.unwrap();
        store.append(&id, b"half an upload", None).await.unwrap();
        assert_eq!(upload_files(&root).len(), 1);
        kept
    };
    // A leftover of some other shape, as a crash could leave.
    std::fs::create_dir(root.join("uploads/stray-dir")).unwrap();
    std::fs::write(root.join("uploads/stray-dir/part"), b"x").unwrap();

    let store = BlobStore::open(&root).await.unwrap();
    assert!(upload_files(&root).is_empty());
    assert_eq!(store.stat(&kept).await.unwrap(), Some(15));
    assert_eq!(store.stat(&Digest::of(b"half an upload")).await.unwrap(), None);
}

#[tokio::test]
async fn a_20_mib_upload_in_1_mib_chunks_streams() {
    const MIB: usize = 1 << 20;
    let (_dir, store) = open_store().await;
    let id = store.start_upload().await.unwrap();
    let mut sha = Sha256::new();
    let mut offset = 0u64;
    for i in 0..20 {
        let chunk = pattern(MIB, 100 + i);
        sha.update(&chunk);
        offset = store.append(&id, &chunk, Some(offset)).await.unwrap();
    }
    let digest = Digest::from_sha256(sha.finalize().into());
    assert_eq!(store.complete(&id, &digest).await.unwrap(), 20 * MIB as u64);
    assert_eq!(store.stat(&digest).await.unwrap(), Some(20 * MIB as u64));

    // Read it back in pieces and check the digest of what comes out.
    let read = store.open_read(&digest, None).await.unwrap();
    let mut file = read.file.take(read.len);
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        total += n as u64;
    }
    assert_eq!(total, 20 * MIB as u64);
    assert_eq!(Digest::from_sha256(sha.finalize().into()), digest);

    // A range at the 10 MiB boundary.
    let expected = pattern(MIB, 110);
    let start = 10 * MIB as u64 - 5;
    let got = read_all(&store, &digest, Some((start, start + 9))).await;
    assert_eq!(&got[5..], &expected[..5]);
}

#[test]
fn digests_are_validated() {
    let hex = "a".repeat(64);
    let digest = Digest::parse(&format!("sha256:{hex}")).unwrap();
    assert_eq!(digest.to_string(), format!("sha256:{hex}"));
    assert_eq!(digest.hex(), hex);
    assert_eq!(digest.algorithm(), "sha256");
    assert_eq!(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse::<Digest>().unwrap(),
        Digest::of(b"")
    );

    let long = "f".repeat(10_000);
    let cases = [
        ("sha256:XYZ".to_string(), "64 hex"),
        (format!("sha256:{}", "A".repeat(64)), "lowercase"),
        (format!("sha256:{}", "g".repeat(64)), "lowercase"),
        (format!("sha256:{}", "a".repeat(63)), "not 63"),
        (format!("sha256:{}", "a".repeat(65)), "not 65"),
        ("sha256:".to_string(), "not 0"),
        (format!("md5:{}", "a".repeat(32)), "unsupported digest algorithm `md5`"),
        (format!("sha512:{}", "a".repeat(128)), "sha512"),
        (format!("SHA256:{hex}"), "malformed digest algorithm"),
        (hex.clone(), "no `:`"),
        (String::new(), "no `:`"),
        (format!("{long}:{hex}"), "malformed digest algorithm"),
        (format!("sha256:{long}"), "not 10000"),
    ];
    for (input, reason) in cases {
        match Digest::parse(&input) {
            Err(BlobError::InvalidDigest(message)) => {
                assert!(message.contains(reason), "{input:.40}: {message}");
                assert!(message.len() < 200, "the reason does not echo the input");
            }
            other => panic!("{input:.40}: expected InvalidDigest, got {other:?}"),
        }
    }
}

#[test]
fn upload_ids_are_uuids_only() {
    assert!(UploadId::parse("c6104cbe-af31-41e0-8154-cbc7ccf896c7").is_some());
    for bad in ["", "../../blobs", "C6104CBE-AF31-41E0-8154-CBC7CCF896C7", "c6104cbe/af31-41e0-8154-cbc7ccf896c7"] {
        assert!(UploadId::parse(bad).is_none(), "{bad}");
    }
}

#[tokio::test]
async fn started_upload_ids_round_trip() {
    let (_dir, store) = open_store().await;
    let id = store.start_upload().await.unwrap();
    let parsed = UploadId::parse(id.as_str()).expect("a started upload's id parses");
    assert_eq!(store.append(&parsed, b"abc", Some(0)).await.unwrap(), 3);
    assert_eq!(store.upload_size(&id).await.unwrap(), 3);
}
