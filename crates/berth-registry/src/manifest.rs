//! Image manifests and indexes: which kind a pushed document is, and what it refers to.
//!
//! The bytes are never rewritten: the digest is that of the exact bytes pushed, and they are served
//! back byte for byte with the media type they were pushed with.

use serde_json::Value;

use crate::blob_store::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The manifest media types berth stores.
pub const SUPPORTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// Most manifests are a few KiB; this bounds what a PUT may send (ECR's limit is 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A descriptor in a manifest: what it points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// A parsed manifest or index.
#[derive(Clone, Debug)]
pub struct Manifest {
    /// The media type it is stored and served with.
    pub media_type: String,
    pub digest: Digest,
    /// Config and layers (image manifests): blobs that must exist in the repository.
    pub blobs: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// `subject`: the manifest this one refers to (referrers API).
    pub subject: Option<Descriptor>,
    /// `artifactType`, or the config's media type for an OCI image manifest that has none set.
    pub artifact_type: Option<String>,
    /// What ECR reports as `imageSizeInBytes`: config plus layers, or the document itself for an index.
    pub size: u64,
    /// OCI indexes/manifests may carry annotations; kept for the referrers API.
    pub annotations: Option<Value>,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }
}

/// Why a manifest was refused; the data path answers `MANIFEST_INVALID`, the API `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest media type {0} is not supported (supported: OCI image manifest and index, Docker schema 2 manifest and manifest list)")]
    UnsupportedMediaType(String),
    #[error("manifest declares media type {body} but was sent as {header}")]
    MediaTypeMismatch { header: String, body: String },
    #[error("manifest is invalid: {0}")]
    Invalid(String),
    #[error("manifest is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
}

/// Parses the exact `bytes` of a manifest. `declared` is the media type the client sent it with
/// (`Content-Type`, or `imageManifestMediaType` through the API), if any.
pub fn parse(bytes: &[u8], declared: Option<&str>) -> Result<Manifest, ManifestError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge);
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
    let obj = doc.as_object().ok_or_else(|| ManifestError::Invalid("a manifest is a JSON object".into()))?;
    // Content-Type may carry parameters; a generic JSON type says nothing about the kind.
    let declared = declared
        .map(|d| d.split(';').next().unwrap_or("").trim())
        .filter(|d| !d.is_empty() && *d != "application/json" && *d != "application/octet-stream");
    let in_body = obj.get("mediaType").and_then(Value::as_str);
    if let Some(v) = obj.get("schemaVersion") {
        if v.as_u64() == Some(1) {
            return Err(ManifestError::UnsupportedMediaType(DOCKER_SCHEMA1.into()));
        }
        if v.as_u64() != Some(2) {
            return Err(ManifestError::Invalid("schemaVersion must be 2".into()));
        }
    } else {
        return Err(ManifestError::Invalid("schemaVersion is missing".into()));
    }
    let media_type = match (declared, in_body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ManifestError::MediaTypeMismatch { header: h.into(), body: b.into() });
        }
        (Some(h), _) => h.to_string(),
        (None, Some(b)) => b.to_string(),
        // OCI allows omitting mediaType: tell the kinds apart by their fields.
        (None, None) if obj.contains_key("manifests") => OCI_INDEX.to_string(),
        (None, None) if obj.contains_key("config") => OCI_MANIFEST.to_string(),
        (None, None) => return Err(ManifestError::Invalid("cannot tell the manifest's media type".into())),
    };
    if media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED {
        return Err(ManifestError::UnsupportedMediaType(media_type));
    }
    if !SUPPORTED.contains(&media_type.as_str()) {
        return Err(ManifestError::UnsupportedMediaType(media_type));
    }
    let subject = match obj.get("subject") {
        None | Some(Value::Null) => None,
        Some(v) => Some(descriptor(v, "subject")?),
    };
    let annotations = obj.get("annotations").filter(|v| v.is_object()).cloned();
    let digest = Digest::of(bytes);
    let mut manifest = Manifest {
        media_type: media_type.clone(),
        digest,
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject,
        artifact_type: obj.get("artifactType").and_then(Value::as_str).map(str::to_string),
        size: bytes.len() as u64,
        annotations,
    };
    if manifest.is_index() {
        let list = obj
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| ManifestError::Invalid("an index needs a `manifests` array".into()))?;
        for (i, m) in list.iter().enumerate() {
            manifest.manifests.push(descriptor(m, &format!("manifests[{i}]"))?);
        }
    } else {
        let config =
            obj.get("config").ok_or_else(|| ManifestError::Invalid("an image manifest needs a `config`".into()))?;
        let config = descriptor(config, "config")?;
        if manifest.artifact_type.is_none()
            && media_type == OCI_MANIFEST
            && config.media_type != "application/vnd.oci.image.config.v1+json"
        {
            manifest.artifact_type = Some(config.media_type.clone());
        }
        let layers = obj
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| ManifestError::Invalid("an image manifest needs a `layers` array".into()))?;
        let mut size = config.size;
        manifest.blobs.push(config);
        for (i, l) in layers.iter().enumerate() {
            let d = descriptor(l, &format!("layers[{i}]"))?;
            size = size.saturating_add(d.size);
            // Foreign (non-distributable) layers are fetched from their URLs, not from the registry.
            let foreign = d.media_type.contains("foreign") || d.media_type.contains("nondistributable");
            if !foreign {
                manifest.blobs.push(d);
            }
        }
        manifest.size = size;
    }
    Ok(manifest)
}

fn descriptor(v: &Value, at: &str) -> Result<Descriptor, ManifestError> {
    let invalid = |what: &str| ManifestError::Invalid(format!("{at}: {what}"));
    let obj = v.as_object().ok_or_else(|| invalid("a descriptor is an object"))?;
    let media_type = obj.get("mediaType").and_then(Value::as_str).ok_or_else(|| invalid("mediaType is missing"))?;
    let digest = obj.get("digest").and_then(Value::as_str).ok_or_else(|| invalid("digest is missing"))?;
    let digest = Digest::parse(digest).map_err(|e| invalid(&e.to_string()))?;
    let size = obj.get("size").and_then(Value::as_u64).ok_or_else(|| invalid("size is missing or negative"))?;
    Ok(Descriptor { media_type: media_type.to_string(), digest, size })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    #[test]
    fn docker_manifest_lists_config_and_layers_and_sums_sizes() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":10}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":100}}]}}"#,
            d(1),
            d(2)
        );
        let m = parse(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.size, 110);
        assert_eq!(m.digest, Digest::of(body.as_bytes()));
        assert!(!m.is_index());
    }

    #[test]
    fn oci_index_without_media_type_is_recognised() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}}]}}"#,
            d(3)
        );
        let m = parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.media_type, OCI_INDEX);
        assert_eq!(m.manifests.len(), 1);
        assert!(m.is_index());
    }

    #[test]
    fn mismatched_media_type_schema1_and_garbage_are_refused() {
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[]}}"#);
        assert!(matches!(parse(body.as_bytes(), Some(OCI_MANIFEST)), Err(ManifestError::MediaTypeMismatch { .. })));
        assert!(matches!(parse(br#"{"schemaVersion":1}"#, None), Err(ManifestError::UnsupportedMediaType(_))));
        assert!(matches!(parse(b"not json", None), Err(ManifestError::Json(_))));
        let bad_digest = r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#;
        assert!(matches!(parse(bad_digest.as_bytes(), None), Err(ManifestError::Invalid(_))));
    }

    #[test]
    fn artifact_type_comes_from_the_config_media_type_when_unset() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.example.sbom","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}}}}"#,
            d(4),
            d(5)
        );
        let m = parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/vnd.example.sbom"));
        assert_eq!(m.subject.unwrap().digest.to_string(), d(5));
    }
}
