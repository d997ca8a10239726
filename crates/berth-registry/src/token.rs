//! Registry credentials: the password `GetAuthorizationToken` hands out (`docker login -u AWS -p …`)
//! and the short-lived URLs `GetDownloadUrlForLayer` returns.
//!
//! Both are HMAC-SHA256 over their claims with a key kept in `<data dir>/registry/token.key` (0600,
//! created on first start), so they survive a restart and cannot be forged without the file.
//! A password names the access key it was issued to: the data path looks the key up again on every
//! request, so deleting or deactivating the key (or the end of a role session) ends the password too,
//! and permissions are those of that identity now, not when the token was issued.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use berth_aws::time::Timestamp;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// ECR's token lifetime.
pub const TOKEN_LIFETIME_SECS: i64 = 12 * 3600;
/// How long a `GetDownloadUrlForLayer` URL works.
pub const DOWNLOAD_URL_LIFETIME_SECS: i64 = 3600;

const PASSWORD_PREFIX: &str = "berth1";

/// The signing key. Never printed.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// What a verified password says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordClaims {
    pub access_key_id: String,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the registry password is not one berth issued")]
    Invalid,
    #[error("the registry password has expired; get a new one with `aws ecr get-login-password`")]
    Expired,
}

impl TokenKey {
    /// Reads the key, or creates it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> std::io::Result<TokenKey> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(TokenKey(key));
            }
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a 32-byte key; remove it to make a new one", path.display()),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; 32];
        berth_aws::ids::random_bytes(&mut key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write as _;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(&key)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(TokenKey(key))
    }

    /// A key for tests.
    pub fn from_bytes(key: [u8; 32]) -> TokenKey {
        TokenKey(key)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// The registry password for `access_key_id`, valid until `expires_at`.
    pub fn mint_password(&self, access_key_id: &str, expires_at: Timestamp) -> String {
        let claims = format!("{access_key_id}.{}", expires_at.0);
        let sig = self.mac(&[b"password", claims.as_bytes()]);
        format!("{PASSWORD_PREFIX}.{claims}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks a password's signature and expiry.
    pub fn verify_password(&self, password: &str, now: Timestamp) -> Result<PasswordClaims, TokenError> {
        let mut parts = password.split('.');
        let (Some(PASSWORD_PREFIX), Some(key_id), Some(expires), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let expires_at = expires.parse::<i64>().map(Timestamp).map_err(|_| TokenError::Invalid)?;
        let claims = format!("{key_id}.{expires}");
        let expected = self.mac(&[b"password", claims.as_bytes()]);
        let given = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Invalid)?;
        if !bool::from(given.as_slice().ct_eq(&expected)) {
            return Err(TokenError::Invalid);
        }
        if now >= expires_at {
            return Err(TokenError::Expired);
        }
        Ok(PasswordClaims { access_key_id: key_id.to_string(), expires_at })
    }

    /// `authorizationToken`: `base64("AWS:<password>")`, as ECR returns it.
    pub fn authorization_token(password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"))
    }

    /// The query string (`expires=…&signature=…`) that lets anyone holding the URL read one blob of
    /// one repository until `expires_at`.
    pub fn sign_download(&self, repository: &str, digest: &str, expires_at: Timestamp) -> String {
        let exp = expires_at.0.to_string();
        let sig = self.mac(&[b"download", repository.as_bytes(), digest.as_bytes(), exp.as_bytes()]);
        format!("X-Berth-Expires={exp}&X-Berth-Signature={}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks a download URL's `X-Berth-Expires` and `X-Berth-Signature` for this blob.
    pub fn verify_download(
        &self,
        repository: &str,
        digest: &str,
        expires: &str,
        signature: &str,
        now: Timestamp,
    ) -> Result<(), TokenError> {
        let expires_at = expires.parse::<i64>().map(Timestamp).map_err(|_| TokenError::Invalid)?;
        let expected = self.mac(&[b"download", repository.as_bytes(), digest.as_bytes(), expires.as_bytes()]);
        let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
        if !bool::from(given.as_slice().ct_eq(&expected)) {
            return Err(TokenError::Invalid);
        }
        if now >= expires_at {
            return Err(TokenError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trips_and_rejects_tampering_and_expiry() {
        let key = TokenKey::from_bytes([7; 32]);
        let pw = key.mint_password("AKIAEXAMPLE", Timestamp(1000));
        let claims = key.verify_password(&pw, Timestamp(999)).unwrap();
        assert_eq!(claims.access_key_id, "AKIAEXAMPLE");
        assert_eq!(key.verify_password(&pw, Timestamp(1000)), Err(TokenError::Expired));
        let forged = pw.replace("AKIAEXAMPLE", "AKIAOTHERKEY");
        assert_eq!(key.verify_password(&forged, Timestamp(0)), Err(TokenError::Invalid));
        let longer = pw.replace(".1000.", ".9999.");
        assert_eq!(key.verify_password(&longer, Timestamp(0)), Err(TokenError::Invalid));
        let other = TokenKey::from_bytes([8; 32]);
        assert_eq!(other.verify_password(&pw, Timestamp(0)), Err(TokenError::Invalid));
        assert_eq!(key.verify_password("garbage", Timestamp(0)), Err(TokenError::Invalid));
    }

    #[test]
    fn authorization_token_is_base64_of_aws_colon_password() {
        let t = TokenKey::authorization_token("pw");
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(t).unwrap(), b"AWS:pw");
    }

    #[test]
    fn download_signature_is_bound_to_repository_digest_and_expiry() {
        let key = TokenKey::from_bytes([1; 32]);
        let q = key.sign_download("app", "sha256:ab", Timestamp(50));
        let (exp, sig) = q.split_once('&').unwrap();
        let exp = exp.trim_start_matches("X-Berth-Expires=");
        let sig = sig.trim_start_matches("X-Berth-Signature=");
        assert!(key.verify_download("app", "sha256:ab", exp, sig, Timestamp(49)).is_ok());
        assert_eq!(key.verify_download("app", "sha256:ab", exp, sig, Timestamp(50)), Err(TokenError::Expired));
        assert_eq!(key.verify_download("other", "sha256:ab", exp, sig, Timestamp(0)), Err(TokenError::Invalid));
        assert_eq!(key.verify_download("app", "sha256:cd", exp, sig, Timestamp(0)), Err(TokenError::Invalid));
        assert_eq!(key.verify_download("app", "sha256:ab", "51", sig, Timestamp(0)), Err(TokenError::Invalid));
    }
}
