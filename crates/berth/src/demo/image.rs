//! The demo's `docker build` + `docker push`: a one-layer image made in memory (an uncompressed tar
//! holding the site the workflow built) pushed to berth's registry with the same OCI distribution
//! calls docker makes: blob existence check, upload session, upload, manifest PUT by tag, with the
//! Basic credentials from `ecr get-login-password`.

use anyhow::{bail, Context};
use berth_server::client::{ApiClient, ApiResponse};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{header, Method, Request};
use sha2::{Digest as _, Sha256};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image ready to push: its blobs and its manifest.
pub struct Image {
    pub layer: Vec<u8>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", berth_aws::sigv4::hex(&Sha256::digest(data)))
}

impl Image {
    /// `FROM scratch` + one file.
    pub fn build(path: &str, contents: &[u8], revision: &str) -> Image {
        let layer = tar_with_one_file(path, contents);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"org.opencontainers.image.revision":"{revision}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256(&layer)
        )
        .into_bytes();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            sha256(&config),
            config.len(),
            sha256(&layer),
            layer.len()
        )
        .into_bytes();
        Image { layer, config, manifest }
    }

    pub fn digest(&self) -> String {
        sha256(&self.manifest)
    }
}

/// A ustar archive with one regular file.
fn tar_with_one_file(path: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, field: &[u8]| h[at..at + field.len()].copy_from_slice(field);
    put(&mut header, 0, path.as_bytes());
    put(&mut header, 100, b"0000644\0");
    put(&mut header, 108, b"0000000\0");
    put(&mut header, 116, b"0000000\0");
    put(&mut header, 124, format!("{:011o}\0", contents.len()).as_bytes());
    put(&mut header, 136, b"00000000000\0");
    header[156] = b'0';
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    // The checksum is computed with its own field read as spaces.
    put(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|&b| b as u32).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(contents);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A registry client for one repository, with Basic credentials.
pub struct Pusher<'a> {
    pub client: &'a ApiClient,
    pub repository: String,
    pub basic: String,
}

impl Pusher<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<ApiResponse> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.client.host()))
            .header(header::HOST, self.client.host())
            .header(header::AUTHORIZATION, format!("Basic {}", self.basic));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        Ok(self.client.send(req.body(Full::new(Bytes::from(body)))?).await?)
    }

    /// HEAD, then (if missing) POST an upload session and PUT the bytes with their digest.
    /// Returns whether the blob had to be uploaded.
    async fn push_blob(&self, data: &[u8]) -> anyhow::Result<bool> {
        let digest = sha256(data);
        let repo = &self.repository;
        let head = self.call(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"), None, vec![]).await?;
        if head.status == 200 {
            return Ok(false);
        }
        let start = self.call(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), None, vec![]).await?;
        if start.status != 202 {
            bail!("starting an upload answered {}: {}", start.status, start.text());
        }
        let location = start.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).context("no Location")?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let path = format!("{location}{sep}digest={digest}");
        let path = path.strip_prefix(&format!("http://{}", self.client.host())).unwrap_or(&path).to_string();
        let done = self.call(Method::PUT, &path, Some("application/octet-stream"), data.to_vec()).await?;
        if done.status != 201 {
            bail!("completing the upload of {digest} answered {}: {}", done.status, done.text());
        }
        Ok(true)
    }

    /// Pushes the image's blobs, then its manifest under `tag`. Returns the answer to the manifest PUT.
    pub async fn push(&self, image: &Image, tag: &str) -> anyhow::Result<(usize, ApiResponse)> {
        let mut uploaded = 0;
        for blob in [&image.layer, &image.config] {
            if self.push_blob(blob).await? {
                uploaded += 1;
            }
        }
        let path = format!("/v2/{}/manifests/{tag}", self.repository);
        let resp = self.call(Method::PUT, &path, Some(MANIFEST_MEDIA_TYPE), image.manifest.clone()).await?;
        Ok((uploaded, resp))
    }

    /// GET a manifest by digest.
    pub async fn pull_manifest(&self, digest: &str) -> anyhow::Result<ApiResponse> {
        self.call(Method::GET, &format!("/v2/{}/manifests/{digest}", self.repository), None, vec![]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_has_a_valid_header_and_padding() {
        let t = tar_with_one_file("srv/index.html", b"hello");
        assert_eq!(t.len(), 512 + 512 + 1024);
        assert_eq!(&t[257..262], b"ustar");
        let mut h = t[..512].to_vec();
        let stored = u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap(), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|&b| b as u32).sum::<u32>());
        assert_eq!(&t[512..517], b"hello");
    }
}
