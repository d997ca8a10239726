//! Identifiers in AWS's formats, from the operating system's random source.

/// Fills `buf` with random bytes. The OS random source failing is unrecoverable for key generation.
pub fn random_bytes(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the operating system's random source failed: {e}");
    }
}

fn random_from_alphabet(len: usize, alphabet: &[u8]) -> String {
    // Rejection sampling keeps the distribution uniform.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf);
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A request id in AWS's format: a v4 UUID, e.g. `c6104cbe-af31-11e0-8154-cbc7ccf896c7`.
///
/// Request ids only need to be unique, not unpredictable, and one is made per request: they come
/// from a per-thread SplitMix64 generator seeded from the OS, not from a system call each.
pub fn request_id() -> String {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0u8; 8];
            random_bytes(&mut seed);
            u64::from_le_bytes(seed)
        });
    }
    let next = || {
        STATE.with(|s| {
            let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            s.set(x);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
    };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&next().to_le_bytes());
    b[8..].copy_from_slice(&next().to_le_bytes());
    format_uuid_v4(b)
}

/// A random v4 UUID from the OS's random source.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    random_bytes(&mut b);
    format_uuid_v4(b)
}

fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::sigv4::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// An access key id: `prefix` (`AKIA` long-term, `ASIA` temporary) and 16 base32 characters.
pub fn access_key_id(prefix: &str) -> String {
    format!("{prefix}{}", random_from_alphabet(16, BASE32))
}

/// A secret access key: 40 characters, as AWS issues them.
pub fn secret_access_key() -> String {
    random_from_alphabet(40, SECRET_ALPHABET)
}

/// A unique id for an IAM entity: `prefix` (`AIDA` user, `AROA` role, `ANPA` policy) and 17 characters.
pub fn unique_id(prefix: &str) -> String {
    format!("{prefix}{}", random_from_alphabet(17, BASE32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let k = access_key_id("AKIA");
        assert_eq!(k.len(), 20);
        assert!(k.starts_with("AKIA") && k.bytes().all(|b| BASE32.contains(&b)));
        let s = secret_access_key();
        assert_eq!(s.len(), 40);
        assert_ne!(s, secret_access_key());
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| request_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|r| r.len() == 36 && &r[14..15] == "4"));
    }
}
