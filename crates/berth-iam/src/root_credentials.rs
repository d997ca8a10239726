//! The account's root access key: created on first start, kept in the data dir with mode 0600,
//! or supplied through `BERTH_ROOT_ACCESS_KEY_ID` / `BERTH_ROOT_SECRET_ACCESS_KEY`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_aws::{ids, Secret};
use serde::{Deserialize, Serialize};

pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials.json";
pub const ENV_ACCESS_KEY_ID: &str = "BERTH_ROOT_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "BERTH_ROOT_SECRET_ACCESS_KEY";

/// The root access key pair.
#[derive(Clone, Debug)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Where it came from, for the banner.
    pub source: RootCredentialSource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCredentialSource {
    File(PathBuf),
    Environment,
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    access_key_id: String,
    secret_access_key: String,
    created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RootCredentialsError {
    #[error("cannot read or write the root credentials file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the root credentials file {path} is damaged ({reason}); restore it, or remove it to create a new root key"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("{ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY} must be set together")]
    HalfSet,
    #[error("{ENV_ACCESS_KEY_ID} must be 16 to 128 letters and digits")]
    BadKeyId,
    #[error("{ENV_SECRET_ACCESS_KEY} must be at least 16 characters")]
    BadSecret,
}

impl RootCredentials {
    /// The environment override if set, else the key in `data_dir` (created if missing).
    pub fn load_or_create(data_dir: &Path) -> Result<RootCredentials, RootCredentialsError> {
        if let Some(creds) = Self::from_env()? {
            return Ok(creds);
        }
        let path = data_dir.join(ROOT_CREDENTIALS_FILE);
        match Self::read_file(&path)? {
            Some(creds) => Ok(creds),
            None => Self::create_file(&path),
        }
    }

    /// The environment override if set, else the key already in `data_dir` (never creates one).
    pub fn load(data_dir: &Path) -> Result<Option<RootCredentials>, RootCredentialsError> {
        if let Some(creds) = Self::from_env()? {
            return Ok(Some(creds));
        }
        Self::read_file(&data_dir.join(ROOT_CREDENTIALS_FILE))
    }

    fn from_env() -> Result<Option<RootCredentials>, RootCredentialsError> {
        let id = std::env::var(ENV_ACCESS_KEY_ID).ok().filter(|v| !v.is_empty());
        let secret = std::env::var(ENV_SECRET_ACCESS_KEY).ok().filter(|v| !v.is_empty());
        match (id, secret) {
            (None, None) => Ok(None),
            (Some(id), Some(secret)) => {
                if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(RootCredentialsError::BadKeyId);
                }
                if secret.len() < 16 {
                    return Err(RootCredentialsError::BadSecret);
                }
                Ok(Some(RootCredentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    source: RootCredentialSource::Environment,
                }))
            }
            _ => Err(RootCredentialsError::HalfSet),
        }
    }

    fn read_file(path: &Path) -> Result<Option<RootCredentials>, RootCredentialsError> {
        let io = |source| RootCredentialsError::Io { path: path.to_path_buf(), source };
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let stored: StoredKey = serde_json::from_str(&text).map_err(|e| RootCredentialsError::Corrupt {
            path: path.to_path_buf(),
            // serde_json's message names the position, never the content.
            reason: format!("not the expected JSON: line {} column {}", e.line(), e.column()),
        })?;
        // Keep the file private even if someone loosened it.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(io)?;
        Ok(Some(RootCredentials {
            access_key_id: stored.access_key_id,
            secret_access_key: Secret::new(stored.secret_access_key),
            source: RootCredentialSource::File(path.to_path_buf()),
        }))
    }

    fn create_file(path: &Path) -> Result<RootCredentials, RootCredentialsError> {
        let io = |source| RootCredentialsError::Io { path: path.to_path_buf(), source };
        let stored = StoredKey {
            access_key_id: ids::access_key_id("AKIA"),
            secret_access_key: ids::secret_access_key(),
            created_at: berth_aws::time::Timestamp::from_system(std::time::SystemTime::now()).iso8601(),
        };
        let text = serde_json::to_string_pretty(&stored).map_err(|e| io(std::io::Error::other(e)))?;
        // Write to a temporary file and rename, so a crash never leaves half a key behind.
        let tmp = path.with_extension("json.tmp");
        let mut f =
            fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        tracing::info!(path = %path.display(), "created the root access key");
        Ok(RootCredentials {
            access_key_id: stored.access_key_id,
            secret_access_key: Secret::new(stored.secret_access_key),
            source: RootCredentialSource::File(path.to_path_buf()),
        })
    }
}
