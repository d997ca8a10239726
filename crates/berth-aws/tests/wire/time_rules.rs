//! The 15-minute clock-skew rule for header signatures and X-Amz-Expires for presigned ones.

use berth_aws::sigv4::{SigV4Error, MAX_PRESIGN_SECONDS};
use berth_aws::time::Timestamp;

use crate::support::{
    check, creds, edit_query_param, presigned_request, signed_request, t0, RawRequest, EXAMPLE_ACCESS_KEY_ID,
    EXAMPLE_SECRET,
};

const MIN: i64 = 60;

fn header_signed_at(t: Timestamp) -> RawRequest {
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, None);
    signed_request(
        "POST",
        "/",
        "",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"Action=GetCallerIdentity&Version=2011-06-15",
        &c,
        "us-east-1",
        "sts",
        t,
    )
}

fn presigned_at(t: Timestamp, expires_seconds: i64) -> RawRequest {
    let c = creds(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET, None);
    presigned_request(
        "GET",
        "/",
        "Action=GetCallerIdentity&Version=2011-06-15",
        &c,
        "us-east-1",
        "sts",
        t,
        expires_seconds,
    )
}

fn expired_message(r: Result<impl std::fmt::Debug, SigV4Error>) -> String {
    match r {
        Err(SigV4Error::Expired(m)) => m,
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[test]
fn header_signature_is_accepted_within_fifteen_minutes_either_way() {
    let req = header_signed_at(t0());
    for offset in [-14 * MIN, -MIN, 0, MIN, 14 * MIN, 15 * MIN, -15 * MIN] {
        let now = Timestamp(t0().0 + offset);
        assert!(check(&req, EXAMPLE_SECRET, now).is_ok(), "refused with the server clock {offset}s from the request");
    }
}

#[test]
fn header_signature_older_than_fifteen_minutes_has_expired() {
    let req = header_signed_at(t0());
    let msg = expired_message(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 + 16 * MIN)));
    assert!(msg.starts_with("Signature expired:"), "{msg}");
    assert_eq!(
        msg,
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)"
    );
    // The boundary: 15 minutes and one second.
    let msg = expired_message(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 + 15 * MIN + 1)));
    assert_eq!(
        msg,
        "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)"
    );
}

#[test]
fn header_signature_from_more_than_fifteen_minutes_ahead_is_not_yet_current() {
    let req = header_signed_at(t0());
    let msg = expired_message(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 - 16 * MIN)));
    assert!(msg.starts_with("Signature not yet current"), "{msg}");
    assert_eq!(
        msg,
        "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z (20150830T122000Z + 15 min.)"
    );
    assert!(matches!(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 - 15 * MIN - 1)), Err(SigV4Error::Expired(_))));
}

#[test]
fn skew_is_checked_before_the_signature() {
    // An old request with a wrong secret reports expiry (as AWS does), not a mismatch.
    let req = header_signed_at(t0());
    let msg = expired_message(check(&req, "not-the-secret", Timestamp(t0().0 + 20 * MIN)));
    assert!(msg.starts_with("Signature expired:"), "{msg}");
}

#[test]
fn presigned_request_is_valid_until_x_amz_expires() {
    let req = presigned_at(t0(), 300);
    for offset in [0, 299, 300] {
        assert!(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 + offset)).is_ok(), "refused {offset}s after signing");
    }
    let msg = expired_message(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 + 301)));
    assert_eq!(msg, "Request has expired: signed at 20150830T123600Z for 300 seconds, now 20150830T124101Z");

    // A long-lived URL is not subject to the 15-minute rule once signed...
    let week = presigned_at(t0(), MAX_PRESIGN_SECONDS);
    assert!(check(&week, EXAMPLE_SECRET, Timestamp(t0().0 + 6 * 24 * 3600)).is_ok());
    assert!(matches!(
        check(&week, EXAMPLE_SECRET, Timestamp(t0().0 + MAX_PRESIGN_SECONDS + 1)),
        Err(SigV4Error::Expired(_))
    ));
    // ...but one dated in the future is not yet current.
    let msg = expired_message(check(&req, EXAMPLE_SECRET, Timestamp(t0().0 - 16 * MIN)));
    assert!(msg.starts_with("Signature not yet current"), "{msg}");
}

#[test]
fn x_amz_expires_out_of_range_or_not_a_number_is_incomplete() {
    let expect_incomplete = |req: &RawRequest, what: &str| match check(req, EXAMPLE_SECRET, t0()) {
        Err(SigV4Error::Incomplete(m)) => {
            assert_eq!(m, "X-Amz-Expires must be a number of seconds from 1 to 604800.", "{what}")
        }
        other => panic!("{what}: expected Incomplete, got {other:?}"),
    };
    expect_incomplete(&presigned_at(t0(), 0), "0");
    expect_incomplete(&presigned_at(t0(), MAX_PRESIGN_SECONDS + 1), "604801");
    expect_incomplete(&presigned_at(t0(), -1), "-1");
    let valid = presigned_at(t0(), 60);
    for bad in ["", "abc", "1.5", "60s", "99999999999999999999999"] {
        let mut r = valid.clone();
        r.query = edit_query_param(&valid.query, "X-Amz-Expires", |_| bad.to_string());
        expect_incomplete(&r, bad);
    }
    assert!(check(&presigned_at(t0(), 1), EXAMPLE_SECRET, t0()).is_ok());
    assert!(check(&presigned_at(t0(), MAX_PRESIGN_SECONDS), EXAMPLE_SECRET, t0()).is_ok());
}
