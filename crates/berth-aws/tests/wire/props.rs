//! Property tests: the SigV4 parsers and the form decoder never panic on any input, signing and
//! verifying agree on every request, and path canonicalization is a normalization.

use std::collections::BTreeMap;

use berth_aws::query::{form_decode, QueryInput};
use berth_aws::sigv4::{self, SigV4Error};
use berth_aws::time::Timestamp;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use crate::support::{check, creds, flip_hex_digit, presigned_request, signed_request};

const CASES: u32 = 256;

/// Arbitrary bytes made acceptable to `HeaderValue` (control characters become spaces; bytes
/// above 0x7f stay, so values need not be UTF-8).
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
        .prop_map(|v| v.into_iter().map(|b| if (b < 0x20 && b != b'\t') || b == 0x7f { b' ' } else { b }).collect())
}

/// Authorization headers that are near misses of valid ones.
fn authorization_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![Just(String::new()), "[A-Za-z0-9_-]{1,12}", "\\PC{0,6}"];
    let date = prop_oneof![Just("20150830".to_string()), "[0-9]{0,9}", "\\PC{0,8}"];
    let terminator = prop_oneof![Just("aws4_request".to_string()), "[a-z0-9_]{0,13}"];
    let credential = (piece.clone(), date, piece.clone(), piece, terminator, any::<bool>()).prop_map(
        |(key, date, region, service, term, extra)| {
            let mut c = format!("{key}/{date}/{region}/{service}/{term}");
            if extra {
                c.push_str("/more");
            }
            c
        },
    );
    let signed_headers = prop_oneof![
        Just("host;x-amz-date".to_string()),
        Just("content-type;host;x-amz-date".to_string()),
        "[a-zA-Z;:-]{0,30}",
        "\\PC{0,12}",
    ];
    let signature = prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{60,68}", "\\PC{0,70}"];
    let component = prop_oneof![
        credential.prop_map(|c| format!("Credential={c}")),
        signed_headers.prop_map(|s| format!("SignedHeaders={s}")),
        signature.prop_map(|s| format!("Signature={s}")),
        "[A-Za-z= ]{0,12}",
        "\\PC{0,20}",
    ];
    let prefix = prop_oneof![
        Just("AWS4-HMAC-SHA256 ".to_string()),
        Just("AWS4-HMAC-SHA256".to_string()),
        Just("  AWS4-HMAC-SHA256  ".to_string()),
        Just(String::new()),
        "\\PC{0,8}",
    ];
    let separator = prop_oneof![Just(", "), Just(","), Just(" , "), Just(" ")];
    (prefix, proptest::collection::vec(component, 0..6), separator)
        .prop_map(|(p, components, sep)| format!("{p}{}", components.join(sep)))
}

/// Query strings that are near misses of presigned ones.
fn presigned_query_like() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("X-Amz-Algorithm"),
        Just("X-Amz-Credential"),
        Just("X-Amz-Date"),
        Just("X-Amz-Expires"),
        Just("X-Amz-SignedHeaders"),
        Just("X-Amz-Signature"),
        Just("X-Amz-Security-Token"),
        Just("Action"),
    ];
    let value = prop_oneof![
        Just("AWS4-HMAC-SHA256".to_string()),
        Just("AKID%2F20150830%2Fus-east-1%2Fsts%2Faws4_request".to_string()),
        Just("20150830T123600Z".to_string()),
        Just("host".to_string()),
        "[0-9-]{0,21}",
        "[0-9a-f]{64}",
        "[%A-Za-z0-9/;=+._~-]{0,30}",
        "\\PC{0,12}",
    ];
    proptest::collection::vec((name, value), 0..9)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
}

fn parse_and_verify_never_panic(headers: &HeaderMap, query: &str) -> Result<(), TestCaseError> {
    let parts = sigv4::RequestParts { method: "POST", path: "/", query, headers, body: b"x" };
    if let Ok(Some(claim)) = sigv4::parse(&parts) {
        // Whatever was accepted is well formed...
        prop_assert_eq!(claim.signature.len(), 64);
        prop_assert!(claim.signature.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        prop_assert!(claim.signed_headers.iter().any(|h| h == "host"));
        prop_assert_eq!(claim.scope().split('/').count(), 5);
        prop_assert!(claim.amz_date.starts_with(&claim.scope_date));
        // ...and verifying it neither panics nor, with a made-up signature, succeeds.
        let result = sigv4::verify(&parts, &claim, "secret", Timestamp(claim.timestamp.0));
        prop_assert!(result.is_err(), "a random signature verified");
    }
    Ok(())
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    // 2000-01-01 to 2099-12-31.
    (946_684_800i64..4_102_358_400).prop_map(Timestamp)
}

/// Path segments that need no encoding and are not dot segments.
fn plain_segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,7}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn authorization_parser_never_panics_on_arbitrary_bytes(auth in header_bytes(300), date in header_bytes(24), query in any::<String>()) {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_bytes(&auth).expect("sanitized"));
        headers.insert("x-amz-date", HeaderValue::from_bytes(&date).expect("sanitized"));
        parse_and_verify_never_panic(&headers, &query)?;
    }

    #[test]
    fn authorization_parser_never_panics_on_near_misses(
        auth in authorization_like(),
        date in prop_oneof![Just("20150830T123600Z".to_string()), "[0-9TZ]{0,18}", "\\PC{0,18}"],
        token in proptest::option::of("[ -~]{0,20}"),
    ) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        if let Ok(v) = HeaderValue::from_str(&auth) {
            headers.insert("authorization", v);
        }
        if let Ok(v) = HeaderValue::from_str(&date) {
            headers.insert("x-amz-date", v);
        }
        if let Some(t) = token {
            headers.insert("x-amz-security-token", HeaderValue::from_str(&t).expect("printable"));
        }
        parse_and_verify_never_panic(&headers, "")?;
    }

    #[test]
    fn presigned_query_parser_never_panics(query in prop_oneof![presigned_query_like(), any::<String>()]) {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        parse_and_verify_never_panic(&headers, &query)?;
        // query_pairs is total too.
        let _ = sigv4::query_pairs(&query);
    }

    #[test]
    fn signing_then_verifying_always_succeeds_and_any_flipped_digit_fails(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        path in any::<String>(),
        query in any::<String>(),
        value in "[ -~]{0,40}",
        region in "[a-z0-9-]{1,14}",
        service in "[a-z0-9-]{1,14}",
        token in proptest::option::of("[!-~]{1,40}"),
        at in timestamp(),
        digit in 0usize..64,
    ) {
        let c = creds("AKIAPROPTEST", "prop/secret+KEY", token.as_deref());
        let path = format!("/{path}");
        let req = signed_request("PUT", &path, &query, &[("x-amz-meta-value", &value), ("content-type", "application/octet-stream")], &body, &c, &region, &service, at);
        let claim = check(&req, "prop/secret+KEY", at);
        prop_assert!(claim.is_ok(), "refused: {:?}", claim);
        let claim = claim.expect("checked");
        prop_assert_eq!(claim.security_token, token);
        prop_assert_eq!((claim.region.as_str(), claim.service.as_str()), (region.as_str(), service.as_str()));

        let auth = req.header("authorization").expect("authorization");
        let start = auth.len() - 64;
        let mut tampered = req.clone();
        tampered.set_header("authorization", &format!("{}{}", &auth[..start], flip_hex_digit(&auth[start..], digit)));
        prop_assert_eq!(check(&tampered, "prop/secret+KEY", at).err(), Some(SigV4Error::Mismatch));
    }

    #[test]
    fn presigning_then_verifying_always_succeeds_and_any_flipped_digit_fails(
        path in any::<String>(),
        query in any::<String>().prop_filter("no signature parameters of its own", |q| {
            !q.contains("X-Amz-") && !sigv4::query_pairs(q).iter().any(|(k, _)| k.starts_with("X-Amz-"))
        }),
        token in proptest::option::of("\\PC{1,20}"),
        expires in 1i64..=604_800,
        at in timestamp(),
        digit in 0usize..64,
    ) {
        let c = creds("AKIAPROPTEST", "prop/secret+KEY", token.as_deref());
        let req = presigned_request("GET", &format!("/{path}"), &query, &c, "eu-west-3", "iam", at, expires);
        let claim = check(&req, "prop/secret+KEY", at);
        prop_assert!(claim.is_ok(), "refused {}: {:?}", req.query, claim);
        prop_assert_eq!(claim.expect("checked").security_token, token);
        prop_assert!(check(&req, "prop/secret+KEY", Timestamp(at.0 + expires)).is_ok());

        let start = req.query.len() - 64;
        let mut tampered = req.clone();
        tampered.query = format!("{}{}", &req.query[..start], flip_hex_digit(&req.query[start..], digit));
        prop_assert_eq!(check(&tampered, "prop/secret+KEY", at).err(), Some(SigV4Error::Mismatch));
    }

    #[test]
    fn form_decoding_never_panics(s in prop_oneof![any::<String>(), "[%+=&a-fA-F0-9zZ\u{e9}]{0,40}"]) {
        let _ = form_decode(&s);
        if let Ok(q) = QueryInput::parse(&s) {
            // Whatever parsed has no empty names.
            prop_assert!(q.iter().all(|(k, _)| !k.is_empty()));
        }
    }

    #[test]
    fn form_encoding_round_trips(map in proptest::collection::btree_map(any::<String>().prop_filter("non-empty", |k| !k.is_empty()), any::<String>(), 0..8)) {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &map {
            ser.append_pair(k, v);
        }
        let encoded = ser.finish();
        let parsed = QueryInput::parse(&encoded);
        prop_assert!(parsed.is_ok(), "{:?} from {}", parsed, encoded);
        let parsed: BTreeMap<String, String> =
            parsed.expect("checked").iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        prop_assert_eq!(parsed, map);
    }

    #[test]
    fn form_decode_inverts_form_encoding(s in any::<String>()) {
        let encoded: String = form_urlencoded::byte_serialize(s.as_bytes()).collect();
        prop_assert_eq!(form_decode(&encoded), Ok(s));
    }

    #[test]
    fn canonical_uri_keeps_normalized_paths(segments in proptest::collection::vec(plain_segment(), 0..6), trailing in any::<bool>()) {
        let mut path = format!("/{}", segments.join("/"));
        if trailing && !segments.is_empty() {
            path.push('/');
        }
        let canonical = sigv4::canonical_uri(&path);
        prop_assert_eq!(&canonical, &path);
        prop_assert_eq!(sigv4::canonical_uri(&canonical), canonical);
    }

    #[test]
    fn canonical_uri_is_idempotent_on_unreserved_paths(path in "[a-z./~_-]{0,30}") {
        let once = sigv4::canonical_uri(&path);
        prop_assert_eq!(sigv4::canonical_uri(&once), once);
    }

    #[test]
    fn canonical_uri_has_no_empty_or_dot_segments(path in prop_oneof![any::<String>(), "[/.a%]{0,30}"]) {
        let c = sigv4::canonical_uri(&path);
        prop_assert!(c.starts_with('/'), "{}", c);
        prop_assert!(!c.contains("//") && !c.contains("/./") && !c.contains("/../"), "{} from {:?}", c, path);
        prop_assert!(!c.ends_with("/.") && !c.ends_with("/.."), "{} from {:?}", c, path);
        prop_assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)), "{}", c);
    }
}

#[test]
fn canonical_uri_examples() {
    for (path, want) in [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("/a//b/", "/a/b/"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/../a", "/a"),
        ("/a b", "/a%20b"),
        ("/a%3Db", "/a%253Db"),
        ("/ሴ", "/%E1%88%B4"),
        ("/-._~", "/-._~"),
    ] {
        assert_eq!(sigv4::canonical_uri(path), want, "{path:?}");
    }
}
