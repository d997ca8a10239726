//! Images: references, registry credentials and what a pull produced.

use std::fmt;

use berth_aws::Secret;

use crate::error::RuntimeError;

/// Credentials for one registry (for ECR: user `AWS`, the password from
/// `GetAuthorizationToken`, the registry's host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: Secret,
    /// The registry's host (`localhost:4566`), as in the image reference.
    pub server_address: String,
}

/// The result of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulledImage {
    /// The local image id (`sha256:…` of its config): what containers created from it report.
    pub image_id: String,
    /// The manifest digest the registry served (`sha256:…`): what ECS records on the task.
    pub digest: Option<String>,
    /// `repository@digest`, pinning exactly this image.
    pub repo_digest: Option<String>,
}

/// An image reference split into repository, tag and digest:
/// `[host[:port]/]path[:tag][@algorithm:hex]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// The repository, with its registry host if there is one (`localhost:4566/team/web`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageReference {
    /// Parses and checks a reference with the rules of Docker's reference grammar (lowercase
    /// path components, tags of at most 128 word characters, `algorithm:hex` digests).
    pub fn parse(reference: &str) -> Result<ImageReference, RuntimeError> {
        let invalid = |reason| RuntimeError::InvalidReference { reference: reference.to_string(), reason };
        if reference.is_empty() || reference.len() > 4096 {
            return Err(invalid("empty or too long"));
        }
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        if let Some(d) = digest {
            let (algorithm, hex) = d.split_once(':').ok_or_else(|| invalid("a digest is algorithm:hex"))?;
            let algorithm_ok = !algorithm.is_empty()
                && algorithm.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c));
            let hex_ok = hex.len() >= 32 && hex.bytes().all(|c| c.is_ascii_alphanumeric() || b"=_-".contains(&c));
            if !algorithm_ok || !hex_ok {
                return Err(invalid("a digest is algorithm:hex"));
            }
            if algorithm == "sha256"
                && (hex.len() != 64 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
            {
                return Err(invalid("a sha256 digest has 64 lowercase hex digits"));
            }
        }
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (&name_tag[..last_slash + i], Some(&name_tag[last_slash + i + 1..])),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                && t.bytes().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
            if !ok {
                return Err(invalid("a tag is at most 128 of [A-Za-z0-9_.-], not starting with . or -"));
            }
        }
        let mut components = repository.split('/').collect::<Vec<_>>();
        let has_host = components.len() > 1
            && (components[0].contains(['.', ':'])
                || components[0] == "localhost"
                || components[0].bytes().any(|c| c.is_ascii_uppercase()));
        if has_host {
            let host = components.remove(0);
            let ok = host.bytes().all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
            if !ok || host.starts_with(['-', '.', ':']) {
                return Err(invalid("a registry host is host[:port]"));
            }
        }
        let component_ok = |c: &str| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
        };
        if components.is_empty() || !components.iter().all(|c| component_ok(c)) {
            return Err(invalid("a repository path is lowercase [a-z0-9._-] components separated by /"));
        }
        Ok(ImageReference {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The reference to pull: with neither tag nor digest Docker would pull every tag of the
    /// repository, so a bare name means `:latest`, as the docker CLI has it; with a digest, the
    /// digest alone decides (a tag beside it is dropped, as the docker CLI does).
    pub fn to_pull(&self) -> String {
        match (&self.tag, &self.digest) {
            (_, Some(d)) => format!("{}@{d}", self.repository),
            (Some(t), None) => format!("{}:{t}", self.repository),
            (None, None) => format!("{}:latest", self.repository),
        }
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_split_into_repository_tag_digest() {
        let r = ImageReference::parse("localhost:4566/team/web:v1").unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref(), r.digest), ("localhost:4566/team/web", Some("v1"), None));
        let r = ImageReference::parse(&format!("localhost:4566/web@{D}")).unwrap();
        assert_eq!((r.repository.as_str(), r.tag, r.digest.as_deref()), ("localhost:4566/web", None, Some(D)));
        let r = ImageReference::parse(&format!("host.example/web:v2@{D}")).unwrap();
        assert_eq!(r.to_string(), format!("host.example/web:v2@{D}"));
        assert_eq!(r.to_pull(), format!("host.example/web@{D}"));
        let r = ImageReference::parse("localhost:4566/web").unwrap();
        assert_eq!((r.tag.clone(), r.to_pull()), (None, "localhost:4566/web:latest".to_string()));
        assert_eq!(ImageReference::parse("busybox").unwrap().to_pull(), "busybox:latest");
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "",
            "upper/Case",
            "Upper",
            "web:",
            "web:-tag",
            "web@sha256:abc",
            "localhost:4566/",
            "a//b",
            "web:v1 ",
            &format!("web@sha256:{}", "A".repeat(64)),
        ] {
            assert!(
                matches!(ImageReference::parse(bad), Err(RuntimeError::InvalidReference { .. })),
                "{bad:?} was accepted"
            );
        }
    }
}
