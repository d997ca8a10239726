//! ECR for berth: so far the content-addressed blob store the registry data path will stand on.
//!
//! - [`blob_store`]: [`BlobStore`], blobs on disk under `<data dir>/registry`, addressed by their
//!   [`Digest`], written through uploads that are verified before they become visible.
//!
//! The ECR API, the OCI distribution data path (`/v2/`), its auth and the garbage collector come
//! with the rest of issue 4 (see this crate's README).
#![forbid(unsafe_code)]

pub mod blob_store;

pub use blob_store::{BlobError, BlobRead, BlobStore, Digest, UploadId};
