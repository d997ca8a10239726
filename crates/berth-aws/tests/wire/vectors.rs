//! The official SigV4 test suite (from the `aws-sigv4` crate, itself from aws-c-auth), in both the
//! `Authorization` header form and the presigned query form.
//!
//! Every vector in the directory is either verified here or listed in [`SKIPPED`] with the reason,
//! so a new vector cannot be ignored silently.

use std::path::{Path, PathBuf};

use berth_aws::sigv4::{self, SigV4Error, SignatureClaim, SignatureLocation};
use berth_aws::time::Timestamp;

use crate::support::{
    bump_char, edit_query_param, flip_hex_digit, remove_query_param, ts, RawRequest, EXAMPLE_ACCESS_KEY_ID,
    EXAMPLE_SECRET,
};

const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/aws-signing-test-suite-v4");

const S3_STYLE: &str = "\"normalize\": false: S3-style signing (path neither normalized nor double-encoded); \
                        berth's non-S3 services always normalize, as botocore does for them";

/// Vectors out of berth's scope, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    ("get-relative-relative-unnormalized", S3_STYLE),
    ("get-relative-unnormalized", S3_STYLE),
    ("get-slash-dot-slash-unnormalized", S3_STYLE),
    ("get-slash-pointless-dot-unnormalized", S3_STYLE),
    ("get-slash-unnormalized", S3_STYLE),
    ("get-slashes-unnormalized", S3_STYLE),
    ("get-space-unnormalized", S3_STYLE),
];

/// What a vector is signed with.
#[derive(Clone, Debug)]
struct Vector {
    name: String,
    dir: PathBuf,
    access_key_id: String,
    secret: String,
    now: Timestamp,
    region: String,
    service: String,
    token: Option<String>,
    /// The query form appends the session token after signing (`omit_session_token`).
    omit_session_token: bool,
    expires_seconds: Option<i64>,
    /// `header-canonical-request.txt` was written at another `x-amz-date` than the signed request
    /// carries: (date in the file, date of the signed request).
    canonical_request_date: Option<(&'static str, &'static str)>,
}

impl Vector {
    fn read(&self, file: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(file)).ok()
    }
}

/// Every vector directory, sorted.
fn all_vector_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(SUITE)
        .expect("test suite directory")
        .map(|e| e.expect("dir entry"))
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn context(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("context.json")).ok()?;
    Some(serde_json::from_str(&text).expect("context.json is JSON"))
}

fn normalizes(dir: &Path) -> bool {
    context(dir).is_none_or(|c| c["normalize"].as_bool().expect("normalize is a bool"))
}

/// The vectors berth verifies, with their signing context.
fn in_scope_vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    for name in all_vector_names() {
        let dir = Path::new(SUITE).join(&name);
        if !normalizes(&dir) {
            continue;
        }
        let v = match context(&dir) {
            Some(c) => {
                let creds = &c["credentials"];
                let timestamp = c["timestamp"].as_str().expect("timestamp").replace(['-', ':'], "");
                Vector {
                    access_key_id: creds["access_key_id"].as_str().expect("access key").into(),
                    secret: creds["secret_access_key"].as_str().expect("secret").into(),
                    token: creds["token"].as_str().map(str::to_string),
                    now: ts(&timestamp),
                    region: c["region"].as_str().expect("region").into(),
                    service: c["service"].as_str().expect("service").into(),
                    omit_session_token: c["omit_session_token"].as_bool().unwrap_or(false),
                    expires_seconds: c["expiration_in_seconds"].as_i64(),
                    canonical_request_date: None,
                    name: name.clone(),
                    dir,
                }
            }
            // The two legacy vectors without a context.json; their signing parameters are those of
            // the aws-sigv4 tests that use them.
            None => match name.as_str() {
                // `test_sign_url_escape`: Credentials::for_tests(), 20150830T123600Z, us-east-1,
                // "service". Its canonical-request file comes from `test_double_url_encode_path`,
                // which signs at 20210511T154045Z.
                "double-encode-path" => Vector {
                    access_key_id: "ANOTREAL".into(),
                    secret: "notrealrnrELgWzOk3IfjzDKtFBhDby".into(),
                    token: None,
                    now: ts("20150830T123600Z"),
                    region: "us-east-1".into(),
                    service: "service".into(),
                    omit_session_token: false,
                    expires_seconds: None,
                    canonical_request_date: Some(("20210511T154045Z", "20150830T123600Z")),
                    name: name.clone(),
                    dir,
                },
                // The suite's standard secret, at the date and scope in the signed request.
                "double-url-encode" => Vector {
                    access_key_id: EXAMPLE_ACCESS_KEY_ID.into(),
                    secret: EXAMPLE_SECRET.into(),
                    token: None,
                    now: ts("20210511T154045Z"),
                    region: "us-east-2".into(),
                    service: "lambda".into(),
                    omit_session_token: false,
                    expires_seconds: None,
                    canonical_request_date: None,
                    name: name.clone(),
                    dir,
                },
                other => panic!("vector {other} has no context.json and no known signing context: add one here"),
            },
        };
        out.push(v);
    }
    out
}

fn expected_file(v: &Vector, file: &str) -> Option<String> {
    v.read(file).map(|s| s.trim_end_matches('\n').to_string())
}

fn parse_claim(req: &RawRequest) -> Result<SignatureClaim, String> {
    match sigv4::parse(&req.parts()) {
        Ok(Some(claim)) => Ok(claim),
        Ok(None) => Err("parse found no signature".into()),
        Err(e) => Err(format!("parse failed: {e:?}")),
    }
}

fn verify(req: &RawRequest, secret: &str, now: Timestamp) -> Result<(), SigV4Error> {
    let claim = match sigv4::parse(&req.parts()) {
        Ok(Some(c)) => c,
        Ok(None) => return Err(SigV4Error::Missing),
        Err(e) => return Err(e),
    };
    sigv4::verify(&req.parts(), &claim, secret, now)
}

/// Checks that `req` (a copy of a vector's request with one change) is refused with `want`.
fn expect_refused(errors: &mut Vec<String>, what: &str, req: &RawRequest, v: &Vector, want: SigV4Error) {
    let got = verify(req, &v.secret, v.now);
    if got != Err(want.clone()) {
        errors.push(format!("{}: {what}: expected {want:?}, got {got:?}", v.name));
    }
}

/// Mutations shared by both forms: each must make verification fail.
fn check_tampering(errors: &mut Vec<String>, v: &Vector, req: &RawRequest, claim: &SignatureClaim) {
    let wrong_secret = bump_char(&v.secret);
    let got = verify(req, &wrong_secret, v.now);
    if got != Err(SigV4Error::Mismatch) {
        errors.push(format!("{}: wrong secret: expected Mismatch, got {got:?}", v.name));
    }
    let mut r = req.clone();
    r.path = format!("/x{}", r.path);
    expect_refused(errors, "path changed", &r, v, SigV4Error::Mismatch);
    if !req.body.is_empty() {
        let mut r = req.clone();
        let last = r.body.len() - 1;
        r.body[last] = if r.body[last] == b'1' { b'2' } else { b'1' };
        let want = if req.headers.contains_key("x-amz-content-sha256") {
            SigV4Error::ContentSha256Mismatch
        } else {
            SigV4Error::Mismatch
        };
        expect_refused(errors, "body changed", &r, v, want);
    }
    for name in &claim.signed_headers {
        if name == "x-amz-date" {
            continue; // changes the claim's date: refused as Incomplete or Expired instead
        }
        let Some(value) = req.header(name) else {
            errors.push(format!("{}: signed header {name} is missing from the request", v.name));
            continue;
        };
        let mut r = req.clone();
        r.set_header(name, &bump_char(&value));
        let want =
            if name == "x-amz-content-sha256" { SigV4Error::ContentSha256Mismatch } else { SigV4Error::Mismatch };
        expect_refused(errors, &format!("signed header {name} changed"), &r, v, want);
    }
    // A query parameter's value (not one of the signature's own).
    if let Some(param) =
        req.query.split('&').filter_map(|p| p.split_once('=').map(|(k, _)| k)).find(|k| !k.starts_with("X-Amz-"))
    {
        let mut r = req.clone();
        r.query = edit_query_param(&req.query, param, |value| format!("{value}x"));
        expect_refused(errors, &format!("query parameter {param} changed"), &r, v, SigV4Error::Mismatch);
    }
}

#[test]
fn every_vector_is_verified_or_explicitly_skipped() {
    let names = all_vector_names();
    let in_scope: Vec<String> = in_scope_vectors().into_iter().map(|v| v.name).collect();
    for name in &names {
        let dir = Path::new(SUITE).join(name);
        let skipped = SKIPPED.iter().any(|(n, _)| n == name);
        if normalizes(&dir) {
            assert!(!skipped, "{name} normalizes and must be verified, not skipped");
            assert!(in_scope.contains(name), "{name} is not verified");
        } else {
            assert!(skipped, "{name} is S3-style (\"normalize\": false) but not listed in SKIPPED with a reason");
        }
    }
    for (name, reason) in SKIPPED {
        assert!(names.iter().any(|n| n == name), "SKIPPED lists {name}, which is not in the suite");
        assert!(!reason.is_empty());
    }
    // Concrete numbers, so that a change to the suite is looked at.
    assert_eq!(names.len(), 40, "vectors in the suite: {names:?}");
    assert_eq!(in_scope.len(), 33);
    assert_eq!(SKIPPED.len(), 7);
}

#[test]
fn header_form_vectors_verify_canonicalize_and_refuse_tampering() {
    let mut errors = Vec::new();
    let mut verified = 0;
    for v in in_scope_vectors() {
        let text = v.read("header-signed-request.txt").expect("header-signed-request.txt");
        let req = RawRequest::parse(&text);
        let claim = match parse_claim(&req) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        // The claim is what the vector was signed with.
        let scope = (claim.access_key_id.as_str(), claim.region.as_str(), claim.service.as_str());
        if scope != (v.access_key_id.as_str(), v.region.as_str(), v.service.as_str()) {
            errors.push(format!("{}: claim scope {scope:?}", v.name));
        }
        if claim.timestamp != v.now || claim.location != SignatureLocation::Header {
            errors.push(format!("{}: claim time {:?} location {:?}", v.name, claim.timestamp, claim.location));
        }
        // (e) A session token header is carried, signed or not.
        let token_header = req.header("x-amz-security-token");
        if claim.security_token != token_header {
            errors.push(format!("{}: security_token {:?}, header {:?}", v.name, claim.security_token, token_header));
        }
        if v.token.is_some() && claim.security_token != v.token {
            errors.push(format!("{}: session token in context but claim carries {:?}", v.name, claim.security_token));
        }

        // (b) The canonical request.
        let payload_hash = req.header("x-amz-content-sha256").unwrap_or_else(|| sigv4::hex_sha256(&req.body));
        let creq = sigv4::canonical_request(&req.parts(), &claim.signed_headers, &payload_hash, claim.location);
        let mut expected = expected_file(&v, "header-canonical-request.txt").expect("header-canonical-request.txt");
        if let Some((file_date, signed_date)) = v.canonical_request_date {
            assert!(expected.contains(file_date), "{}: canonical request no longer dated {file_date}", v.name);
            expected = expected.replace(file_date, signed_date);
        }
        if creq != expected {
            errors.push(format!("{}: canonical request\n--- got\n{creq}\n--- expected\n{expected}", v.name));
        }
        if let Some(sts) = expected_file(&v, "header-string-to-sign.txt") {
            let got = sigv4::string_to_sign(&claim.amz_date, claim.scope(), &creq);
            if got != sts {
                errors.push(format!("{}: string to sign\n--- got\n{got}\n--- expected\n{sts}", v.name));
            }
        }
        if let Some(sig) = expected_file(&v, "header-signature.txt") {
            if claim.signature != sig {
                errors.push(format!("{}: claim signature {} != header-signature.txt {sig}", v.name, claim.signature));
            }
        }

        // (a) It verifies at the vector's time.
        match sigv4::verify(&req.parts(), &claim, &v.secret, v.now) {
            Ok(()) => verified += 1,
            Err(e) => {
                errors.push(format!("{}: verify: {e:?}", v.name));
                continue;
            }
        }

        // (c) Any change is refused.
        let auth = req.header("authorization").expect("authorization");
        let sig_at = auth.find("Signature=").expect("Signature=") + "Signature=".len();
        for i in [0, 31, 63] {
            let mut r = req.clone();
            let mut a = auth.clone();
            a.replace_range(sig_at + i..sig_at + i + 1, &flip_hex_digit(&claim.signature, i)[i..i + 1]);
            r.set_header("authorization", &a);
            expect_refused(&mut errors, &format!("signature digit {i} changed"), &r, &v, SigV4Error::Mismatch);
        }
        check_tampering(&mut errors, &v, &req, &claim);
    }
    assert!(errors.is_empty(), "{} problems:\n{}", errors.len(), errors.join("\n"));
    assert_eq!(verified, 33);
}

#[test]
fn query_form_vectors_verify_canonicalize_and_refuse_tampering() {
    let mut errors = Vec::new();
    let mut verified = 0;
    let mut without_query_form = Vec::new();
    for v in in_scope_vectors() {
        let Some(text) = v.read("query-signed-request.txt") else {
            without_query_form.push(v.name.clone());
            continue;
        };
        let req = RawRequest::parse(&text);
        assert!(!req.headers.contains_key("authorization"), "{}", v.name);
        let claim = match parse_claim(&req) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{}: {e}", v.name));
                continue;
            }
        };
        let expires_seconds = v.expires_seconds.expect("expiration_in_seconds");
        if claim.location != (SignatureLocation::Query { expires_seconds }) {
            errors.push(format!("{}: location {:?}", v.name, claim.location));
        }
        if (claim.access_key_id.as_str(), claim.region.as_str(), claim.service.as_str(), claim.timestamp)
            != (v.access_key_id.as_str(), v.region.as_str(), v.service.as_str(), v.now)
        {
            errors.push(format!("{}: claim {claim:?}", v.name));
        }
        // (e) The token parameter is carried.
        let has_token_param = req.query.contains("X-Amz-Security-Token=");
        let want_token = if has_token_param { v.token.clone() } else { None };
        if claim.security_token != want_token {
            errors.push(format!("{}: security_token {:?}, expected {want_token:?}", v.name, claim.security_token));
        }
        if v.token.is_some() && !has_token_param {
            errors.push(format!("{}: context has a token but the query form carries none", v.name));
        }

        // (b) The canonical request. With `omit_session_token` the client appended the token after
        // signing, so the file's canonical query lacks it.
        let payload_hash = sigv4::hex_sha256(&req.body);
        let canonical_of =
            |r: &RawRequest| sigv4::canonical_request(&r.parts(), &claim.signed_headers, &payload_hash, claim.location);
        let mut as_signed = req.clone();
        if v.omit_session_token {
            as_signed.query = remove_query_param(&req.query, "X-Amz-Security-Token");
        }
        let creq = canonical_of(&as_signed);
        let expected = expected_file(&v, "query-canonical-request.txt").expect("query-canonical-request.txt");
        if creq != expected {
            errors.push(format!("{}: canonical request\n--- got\n{creq}\n--- expected\n{expected}", v.name));
        }
        if let Some(sts) = expected_file(&v, "query-string-to-sign.txt") {
            let got = sigv4::string_to_sign(&claim.amz_date, claim.scope(), &creq);
            if got != sts {
                errors.push(format!("{}: string to sign\n--- got\n{got}\n--- expected\n{sts}", v.name));
            }
        }

        if v.omit_session_token {
            // AWS services canonicalize every query parameter but X-Amz-Signature, so a token added
            // after signing breaks the signature: only AWS IoT's WebSocket endpoint accepts that. berth
            // refuses it, and accepts the same URL without the unsigned token.
            expect_refused(&mut errors, "token appended after signing", &req, &v, SigV4Error::Mismatch);
            match verify(&as_signed, &v.secret, v.now) {
                Ok(()) => verified += 1,
                Err(e) => errors.push(format!("{}: without the appended token: {e:?}", v.name)),
            }
            continue;
        }

        // (a) It verifies at the vector's time, and until it expires.
        match sigv4::verify(&req.parts(), &claim, &v.secret, v.now) {
            Ok(()) => verified += 1,
            Err(e) => {
                errors.push(format!("{}: verify: {e:?}", v.name));
                continue;
            }
        }
        let last_second = Timestamp(v.now.0 + expires_seconds);
        if let Err(e) = sigv4::verify(&req.parts(), &claim, &v.secret, last_second) {
            errors.push(format!("{}: refused at its last valid second: {e:?}", v.name));
        }
        match sigv4::verify(&req.parts(), &claim, &v.secret, Timestamp(last_second.0 + 1)) {
            Err(SigV4Error::Expired(_)) => {}
            other => errors.push(format!("{}: one second after expiry: {other:?}", v.name)),
        }

        // (c) Any change is refused.
        for i in [0, 31, 63] {
            let mut r = req.clone();
            r.query = edit_query_param(&req.query, "X-Amz-Signature", |s| flip_hex_digit(s, i));
            expect_refused(&mut errors, &format!("signature digit {i} changed"), &r, &v, SigV4Error::Mismatch);
        }
        check_tampering(&mut errors, &v, &req, &claim);
    }
    assert!(errors.is_empty(), "{} problems:\n{}", errors.len(), errors.join("\n"));
    // The two legacy vectors come in the header form only.
    assert_eq!(without_query_form, ["double-encode-path", "double-url-encode"]);
    assert_eq!(verified, 31);
}
