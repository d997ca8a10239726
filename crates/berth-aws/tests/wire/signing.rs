//! berth's own client signing (`sign`, `presign`) against its verifier, payload hashes, and the
//! parser's refusals of incomplete signatures.

use berth_aws::sigv4::{self, SigV4Error, SignatureLocation, UNSIGNED_PAYLOAD};
use http::HeaderValue;

use crate::support::{
    check, creds, edit_query_param, presigned_request, remove_query_param, signed_request, t0, RawRequest,
    EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET,
};

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/aws-signing-test-suite-v4");

fn form_post(body: &[u8], extra: &[(&str, &str)], token: Option<&str>) -> RawRequest {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded; charset=utf-8")];
    headers.extend_from_slice(extra);
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, token);
    signed_request("POST", "/", "", &headers, body, &c, "us-east-1", "sts", t0())
}

#[test]
fn sign_reproduces_the_suite_signature_for_get_vanilla() {
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, None);
    let req = signed_request("GET", "/", "", &[], b"", &c, "us-east-1", "service", t0());
    let expected =
        std::fs::read_to_string(format!("{SUITE}/get-vanilla/header-signature.txt")).expect("signature file");
    assert_eq!(
        req.header("authorization").as_deref(),
        Some(
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={}",
                expected.trim()
            )
            .as_str()
        )
    );
    assert_eq!(req.header("x-amz-date").as_deref(), Some("20150830T123600Z"));
}

#[test]
fn signed_request_round_trips() {
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let req = form_post(body, &[("x-amz-meta-note", "  two   spaces  ")], None);
    let claim = check(&req, EXAMPLE_SECRET, t0()).expect("verifies");
    assert_eq!(claim.access_key_id, EXAMPLE_ACCESS_KEY_ID);
    assert_eq!(claim.scope(), "20150830/us-east-1/sts/aws4_request");
    assert_eq!(claim.signed_headers, ["content-type", "host", "x-amz-date", "x-amz-meta-note"]);
    assert_eq!(claim.location, SignatureLocation::Header);
    assert_eq!(claim.security_token, None);

    // The body is covered even without x-amz-content-sha256.
    let mut tampered = req.clone();
    tampered.body = b"Action=GetCallerIdentity&Version=2011-06-16".to_vec();
    assert_eq!(check(&tampered, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
    assert_eq!(check(&req, "wrong", t0()).err(), Some(SigV4Error::Mismatch));
}

#[test]
fn signed_request_with_session_token_carries_and_signs_it() {
    let req = form_post(b"Action=GetCallerIdentity", &[], Some("FwoGZXIvYXdzEJr//token+/="));
    let claim = check(&req, EXAMPLE_SECRET, t0()).expect("verifies");
    assert_eq!(claim.security_token.as_deref(), Some("FwoGZXIvYXdzEJr//token+/="));
    assert!(claim.signed_headers.iter().any(|h| h == "x-amz-security-token"));
    let mut swapped = req.clone();
    swapped.set_header("x-amz-security-token", "another-token");
    assert_eq!(check(&swapped, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
}

#[test]
fn presigned_request_round_trips() {
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, None);
    let req =
        presigned_request("GET", "/", "Action=GetCallerIdentity&Version=2011-06-15", &c, "us-east-1", "sts", t0(), 900);
    assert!(req.query.starts_with("Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
    assert!(req.query.contains("&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fsts%2Faws4_request&"));
    let claim = check(&req, EXAMPLE_SECRET, t0()).expect("verifies");
    assert_eq!(claim.location, SignatureLocation::Query { expires_seconds: 900 });
    assert_eq!(claim.signed_headers, ["host"]);
    assert_eq!(claim.security_token, None);

    // Presigned URLs sign UNSIGNED-PAYLOAD: a body does not matter.
    let mut with_body = req.clone();
    with_body.body = b"anything".to_vec();
    assert!(check(&with_body, EXAMPLE_SECRET, t0()).is_ok());

    let mut r = req.clone();
    r.query = edit_query_param(&req.query, "Version", |_| "2011-06-16".into());
    assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
    let mut r = req.clone();
    r.set_header("host", "example.amazonaws.org");
    assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
    let mut r = req.clone();
    r.query = format!("{}&Extra=1", req.query);
    assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
    assert_eq!(check(&req, "wrong", t0()).err(), Some(SigV4Error::Mismatch));
}

#[test]
fn presigned_request_with_session_token_carries_and_signs_it() {
    let c = creds("ASIAEXAMPLE", EXAMPLE_SECRET, Some("tok/en+=="));
    let req = presigned_request("GET", "/", "", &c, "us-east-1", "sts", t0(), 60);
    assert!(req.query.contains("X-Amz-Security-Token=tok%2Fen%2B%3D%3D"), "{}", req.query);
    let claim = check(&req, EXAMPLE_SECRET, t0()).expect("verifies");
    assert_eq!(claim.security_token.as_deref(), Some("tok/en+=="));
    let mut r = req.clone();
    r.query = remove_query_param(&req.query, "X-Amz-Security-Token");
    assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
}

#[test]
fn unsigned_payload_verifies_whatever_the_body() {
    let req = form_post(b"Action=GetCallerIdentity", &[("x-amz-content-sha256", UNSIGNED_PAYLOAD)], None);
    assert!(check(&req, EXAMPLE_SECRET, t0()).is_ok());
    for body in [&b""[..], b"Action=Other", &[0xff, 0x00, 0x10]] {
        let mut r = req.clone();
        r.body = body.to_vec();
        assert!(check(&r, EXAMPLE_SECRET, t0()).is_ok(), "body {body:?}");
    }
    // The header itself is signed.
    let mut r = req.clone();
    r.set_header("x-amz-content-sha256", &sigv4::hex_sha256(&req.body));
    assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch));
}

#[test]
fn declared_content_sha256_must_match_the_body() {
    let body = b"Action=GetCallerIdentity";
    let hash = sigv4::hex_sha256(body);
    assert_eq!(hash.len(), 64);
    let req = form_post(body, &[("x-amz-content-sha256", &hash)], None);
    assert!(check(&req, EXAMPLE_SECRET, t0()).is_ok());

    let mut r = req.clone();
    r.body = b"Action=GetCallerIdentitY".to_vec();
    assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::ContentSha256Mismatch));

    // Signed correctly, but over a hash that is not the body's.
    let req = form_post(body, &[("x-amz-content-sha256", &sigv4::hex_sha256(b"other"))], None);
    assert_eq!(check(&req, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::ContentSha256Mismatch));
    // Not a hash at all.
    let req = form_post(body, &[("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")], None);
    assert_eq!(check(&req, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::ContentSha256Mismatch));
}

#[test]
fn presigned_url_over_a_known_body_verifies_either_way() {
    // A presigned URL signed over the body's hash (the suite's POST vectors do that) verifies too.
    let req = RawRequest::parse(
        &std::fs::read_to_string(format!("{SUITE}/post-x-www-form-urlencoded/query-signed-request.txt"))
            .expect("vector"),
    );
    assert!(check(&req, EXAMPLE_SECRET, t0()).is_ok());
}

/// `Authorization` header refusals: each is `Incomplete` with AWS's message.
#[test]
fn incomplete_authorization_headers_are_refused_with_the_reason() {
    let good = form_post(b"Action=GetCallerIdentity", &[], None);
    let auth = good.header("authorization").expect("authorization");
    let sig = auth.rsplit("Signature=").next().expect("signature").to_string();
    let with_auth = |a: &str| {
        let mut r = good.clone();
        r.headers.insert("authorization", HeaderValue::from_str(a).expect("value"));
        r
    };
    let cases: Vec<(String, &str)> = vec![
        (auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"), "Authorization header must use the AWS4-HMAC-SHA256 algorithm."),
        ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date".to_string(),
         "Authorization header requires 'Signature' parameter."),
        (format!("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={sig}"), "Authorization header requires 'Credential' parameter."),
        (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, Signature={sig}"),
         "Authorization header requires 'SignedHeaders' parameter."),
        (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders, Signature={sig}"),
         "Authorization header requires each component to be of the form key=value, got 'SignedHeaders'."),
        (auth.replace("/us-east-1/sts/", "/us-east-1/"),
         "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got 'AKIDEXAMPLE/20150830/us-east-1/aws4_request'"),
        (auth.replace("/aws4_request", "/aws5_request"), "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'."),
        (auth.replace("/20150830/", "/20150831/"),
         "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != '20150830'"),
        (auth.replace("SignedHeaders=content-type;host;x-amz-date", "SignedHeaders=content-type;x-amz-date"),
         "'Host' must be a 'SignedHeader' in the AWS Authorization."),
        (auth.replace(&sig, &sig[..63]), "Signature must be 64 hexadecimal characters."),
        (auth.replace(&sig, &format!("{}g", &sig[..63])), "Signature must be 64 hexadecimal characters."),
    ];
    for (header, message) in cases {
        let r = with_auth(&header);
        assert_eq!(sigv4::parse(&r.parts()).err(), Some(SigV4Error::Incomplete(message.to_string())), "{header}");
    }

    let mut no_date = good.clone();
    no_date.headers.remove("x-amz-date");
    assert_eq!(
        sigv4::parse(&no_date.parts()).err(),
        Some(SigV4Error::Incomplete("Authorization header requires existence of a 'X-Amz-Date' header.".into()))
    );
    let mut bad_date = good.clone();
    bad_date.set_header("x-amz-date", "2015-08-30T12:36:00Z");
    assert_eq!(
        sigv4::parse(&bad_date.parts()).err(),
        Some(SigV4Error::Incomplete(
            "Date must be in ISO-8601 'basic format', e.g. 20150830T123600Z; got '2015-08-30T12:36:00Z'.".into()
        ))
    );

    // Upper-case hex is the same signature.
    let upper = with_auth(&auth.replace(&sig, &sig.to_ascii_uppercase()));
    assert!(check(&upper, EXAMPLE_SECRET, t0()).is_ok());
    // No signature anywhere: not an error, just anonymous.
    let mut anonymous = good.clone();
    anonymous.headers.remove("authorization");
    assert!(matches!(sigv4::parse(&anonymous.parts()), Ok(None)));
}

#[test]
fn incomplete_presigned_queries_are_refused_with_the_reason() {
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, None);
    let good = presigned_request("GET", "/", "Action=GetCallerIdentity", &c, "us-east-1", "sts", t0(), 60);
    for param in
        ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires"]
    {
        let mut r = good.clone();
        r.query = remove_query_param(&good.query, param);
        let want = SigV4Error::Incomplete(format!("Query-string authentication requires the {param} parameter."));
        assert_eq!(sigv4::parse(&r.parts()).err(), Some(want), "without {param}");
    }
    let mut r = good.clone();
    r.query = edit_query_param(&good.query, "X-Amz-Algorithm", |_| "AWS4-ECDSA-P256-SHA256".into());
    assert_eq!(
        sigv4::parse(&r.parts()).err(),
        Some(SigV4Error::Incomplete("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\".".into()))
    );
    // A stray X-Amz-Date without X-Amz-Algorithm, -Credential or -Signature is no signature at all.
    let r = RawRequest { query: "X-Amz-Date=20150830T123600Z".into(), ..good.clone() };
    assert!(matches!(sigv4::parse(&r.parts()), Ok(None)));
}

#[test]
fn header_signatures_cover_every_query_parameter() {
    // Only the presigned form leaves X-Amz-Signature out of the canonical query.
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, None);
    let req = signed_request("GET", "/", "X-Amz-Signature=abc&Action=Echo", &[], b"", &c, "us-east-1", "sts", t0());
    assert!(check(&req, EXAMPLE_SECRET, t0()).is_ok());
    for (param, value) in [("X-Amz-Signature", "abd"), ("Action", "Echp")] {
        let mut r = req.clone();
        r.query = edit_query_param(&req.query, param, |_| value.into());
        assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch), "{param} changed");
        r.query = remove_query_param(&req.query, param);
        assert_eq!(check(&r, EXAMPLE_SECRET, t0()).err(), Some(SigV4Error::Mismatch), "{param} removed");
    }
}
