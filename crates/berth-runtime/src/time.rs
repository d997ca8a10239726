//! Docker's times: RFC 3339 with nanoseconds (`2024-05-01T12:00:00.123456789Z`), and the Go
//! zero time (`0001-01-01T00:00:00Z`) for "never".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_aws::time::Timestamp;

/// Parses an engine time; the zero time and anything unreadable are `None`.
pub(crate) fn parse(s: &str) -> Option<SystemTime> {
    if s.is_empty() || s.starts_with("0001-01-01") {
        return None;
    }
    let seconds = Timestamp::parse_iso8601(s)?;
    let nanos = s
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|frac| {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).take(9).collect::<Vec<_>>();
            let value = digits.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            value * 10u32.pow(9 - digits.len() as u32)
        })
        .unwrap_or(0);
    Some(seconds.to_system() + Duration::from_nanos(u64::from(nanos)))
}

/// `seconds.nanoseconds` since the epoch: the form the engine's `since` parameters take.
pub(crate) fn unix_arg(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// An event's time from its `timeNano` (or `time`) field.
pub(crate) fn from_unix_nanos(nanos: Option<i64>, secs: Option<i64>) -> SystemTime {
    match (nanos, secs) {
        (Some(n), _) if n > 0 => UNIX_EPOCH + Duration::from_nanos(n as u64),
        (_, Some(s)) if s > 0 => UNIX_EPOCH + Duration::from_secs(s as u64),
        _ => UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_times_parse_with_nanoseconds() {
        let t = parse("2024-05-01T12:00:00.123456789Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::new(1_714_564_800, 123_456_789));
        let t = parse("2024-05-01T12:00:00.5Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::new(1_714_564_800, 500_000_000));
        assert_eq!(parse("2024-05-01T12:00:00Z").unwrap(), UNIX_EPOCH + Duration::from_secs(1_714_564_800));
        assert_eq!(parse("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse(""), None);
        assert_eq!(unix_arg(UNIX_EPOCH + Duration::new(5, 7)), "5.000000007");
    }
}
