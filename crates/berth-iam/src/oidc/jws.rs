//! The compact JWS serialization of a token: `base64url(header).base64url(claims).base64url(signature)`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::{OidcError, NOT_A_JWT};

/// AWS's limit on `WebIdentityToken`.
pub(super) const MAX_TOKEN_LEN: usize = 20_000;

/// The signature algorithms berth accepts, as AWS does for OIDC providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Alg {
    pub(super) fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// A token split and decoded, nothing verified.
pub(super) struct Jws<'t> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `header.claims` as sent: the bytes the signature covers.
    pub signing_input: &'t str,
    pub signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    pub(super) fn parse(token: &'t str) -> Result<Jws<'t>, OidcError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(OidcError::InvalidToken(format!("The token is longer than {MAX_TOKEN_LEN} characters")));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let signing_input = &token[..header.len() + 1 + claims.len()];
        Ok(Jws {
            header: json_object(header)?,
            claims: json_object(claims)?,
            signing_input,
            signature: URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?,
        })
    }

    /// The `alg` of the header, when berth accepts it. `none`, the HMAC family and everything else are refused.
    pub(super) fn alg(&self) -> Result<Alg, OidcError> {
        if self.header.contains_key("crit") {
            return Err(OidcError::InvalidToken(
                "The token's header has critical extensions (crit), which are not supported".into(),
            ));
        }
        match self.header.get("alg") {
            Some(Value::String(alg)) if alg == "RS256" => Ok(Alg::Rs256),
            Some(Value::String(alg)) if alg == "ES256" => Ok(Alg::Es256),
            Some(Value::String(alg)) => Err(OidcError::InvalidToken(format!(
                "The token's signing algorithm {} is not supported; use RS256 or ES256",
                printable(alg)
            ))),
            _ => Err(OidcError::InvalidToken("The token's header has no signing algorithm (alg)".into())),
        }
    }

    /// The `kid` of the header, if any.
    pub(super) fn kid(&self) -> Result<Option<&str>, OidcError> {
        match self.header.get("kid") {
            None => Ok(None),
            Some(Value::String(kid)) => Ok(Some(kid)),
            Some(_) => Err(OidcError::InvalidToken("The token's key id (kid) is not a string".into())),
        }
    }
}

fn invalid() -> OidcError {
    OidcError::InvalidToken(NOT_A_JWT.into())
}

fn json_object(part: &str) -> Result<Map<String, Value>, OidcError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| invalid())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid()),
    }
}

/// A value from a token, shortened and escaped for an error message.
pub(super) fn printable(s: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}
