//! An issuer's JSON Web Key Set and the signature checks made with its keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jws::{printable, Alg};

/// The smallest RSA modulus accepted.
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted.
const MAX_RSA_BITS: usize = 8192;

/// A public key that can check a token's signature.
pub(super) enum PublicKey {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    fn alg(&self) -> Alg {
        match self {
            PublicKey::Rsa(_) => Alg::Rs256,
            PublicKey::P256(_) => Alg::Es256,
        }
    }

    /// Checks `signature` over `input` with this key under `alg`.
    pub(super) fn verify(&self, alg: Alg, input: &[u8], signature: &[u8]) -> Result<(), ()> {
        match (self, alg) {
            (PublicKey::Rsa(key), Alg::Rs256) => {
                if signature.len() != key.size() {
                    return Err(());
                }
                key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(input), signature).map_err(|_| ())
            }
            (PublicKey::P256(key), Alg::Es256) => {
                // JWS carries the raw 64-byte r || s, not DER.
                if signature.len() != 64 {
                    return Err(());
                }
                let signature = p256::ecdsa::Signature::from_slice(signature).map_err(|_| ())?;
                key.verify(input, &signature).map_err(|_| ())
            }
            _ => Err(()),
        }
    }
}

/// One signing key of the set: its id, its declared `alg`, and the key or why it cannot be used.
struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    key: Result<PublicKey, String>,
}

impl Jwk {
    fn usable_for(&self, alg: Alg) -> Result<&PublicKey, String> {
        let key = self.key.as_ref().map_err(Clone::clone)?;
        if key.alg() != alg {
            return Err(format!(
                "The identity provider's key is for {}, but the token is signed with {}",
                key.alg().name(),
                alg.name()
            ));
        }
        match &self.alg {
            Some(declared) if declared != alg.name() => Err(format!(
                "The identity provider's key is declared for {}, but the token is signed with {}",
                printable(declared),
                alg.name()
            )),
            _ => Ok(key),
        }
    }
}

/// The signing keys an issuer publishes at its `jwks_uri`.
pub(super) struct JwkSet {
    keys: Vec<Jwk>,
}

/// What a token's `kid` finds in a key set.
pub(super) enum Selection<'a> {
    Key(&'a PublicKey),
    /// No key with that id (or, without an id, no key of the right type): the set may have rotated.
    Unknown,
    /// A key was found but cannot check this token.
    Unusable(String),
}

impl JwkSet {
    /// Reads `{"keys": [...]}`. Keys of other types or curves, and keys not for signatures, are left out;
    /// keys berth refuses (RSA under 2048 bits, malformed) are kept with the reason, so that a token naming
    /// one gets that reason.
    pub(super) fn from_document(doc: Value) -> Result<JwkSet, String> {
        let Value::Object(mut doc) = doc else {
            return Err("the key set is not a JSON object".into());
        };
        let Some(Value::Array(entries)) = doc.remove("keys") else {
            return Err("the key set has no \"keys\" array".into());
        };
        let keys = entries
            .iter()
            .filter_map(|entry| match entry {
                Value::Object(jwk) => parse_jwk(jwk),
                _ => None,
            })
            .collect();
        Ok(JwkSet { keys })
    }

    pub(super) fn select(&self, kid: Option<&str>, alg: Alg) -> Selection<'_> {
        match kid {
            Some(kid) => {
                let mut reason = None;
                for jwk in self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                    match jwk.usable_for(alg) {
                        Ok(key) => return Selection::Key(key),
                        Err(why) => reason = reason.or(Some(why)),
                    }
                }
                reason.map_or(Selection::Unknown, Selection::Unusable)
            }
            None => {
                let mut usable = self.keys.iter().filter_map(|k| k.usable_for(alg).ok());
                match (usable.next(), usable.next()) {
                    (Some(key), None) => Selection::Key(key),
                    (None, _) => Selection::Unknown,
                    (Some(_), Some(_)) => Selection::Unusable(
                        "The token has no key id (kid) and the identity provider publishes several keys".into(),
                    ),
                }
            }
        }
    }
}

fn parse_jwk(jwk: &Map<String, Value>) -> Option<Jwk> {
    let text = |name: &str| match jwk.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    if jwk.contains_key("kid") && text("kid").is_none() {
        return None;
    }
    let key = match text("kty")? {
        "RSA" => rsa_key(text("n"), text("e")),
        "EC" if text("crv") == Some("P-256") => p256_key(text("x"), text("y")),
        _ => return None,
    };
    Some(Jwk { kid: text("kid").map(str::to_owned), alg: text("alg").map(str::to_owned), key })
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<PublicKey, String> {
    let (Some(n), Some(e)) = (n.and_then(b64), e.and_then(b64)) else {
        return Err("The identity provider's RSA key is malformed".into());
    };
    let n = BigUint::from_bytes_be(&n);
    let bits = n.bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "The identity provider's RSA key has {bits} bits; at least {MIN_RSA_BITS} bits are required"
        ));
    }
    RsaPublicKey::new_with_max_size(n, BigUint::from_bytes_be(&e), MAX_RSA_BITS)
        .map(PublicKey::Rsa)
        .map_err(|_| "The identity provider's RSA key is not a valid key".into())
}

fn p256_key(x: Option<&str>, y: Option<&str>) -> Result<PublicKey, String> {
    let (Some(x), Some(y)) = (x.and_then(b64), y.and_then(b64)) else {
        return Err("The identity provider's EC key is malformed".into());
    };
    if x.len() != 32 || y.len() != 32 {
        return Err("The identity provider's P-256 key has coordinates of the wrong length".into());
    }
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .map(PublicKey::P256)
        .map_err(|_| "The identity provider's P-256 key is not a point on the curve".into())
}

/// base64url, with the padding some issuers add tolerated.
fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}
