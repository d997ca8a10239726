//! UTC timestamps without a calendar dependency: the formats the AWS wire uses.
//!
//! Time reaches berth through one [`Clock`] so that tests and controllers agree on "now".

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// The one source of "now" in berth.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to: for tests of expiry and timing, instead of sleeping.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<SystemTime>);

impl ManualClock {
    pub fn new(start: SystemTime) -> ManualClock {
        ManualClock(std::sync::Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A shareable clock handle.
pub type SharedClock = Arc<dyn Clock>;

impl Timestamp {
    pub fn from_system(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_secs() as i64),
            Err(e) => Timestamp(-(e.duration().as_secs() as i64)),
        }
    }

    pub fn to_system(self) -> SystemTime {
        if self.0 >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.0 as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.0.unsigned_abs())
        }
    }

    fn parts(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, secs / 3600, (secs / 60) % 60, secs % 60)
    }

    /// `20150830T123600Z`, the SigV4 `X-Amz-Date` format.
    pub fn amz_date(self) -> String {
        let (y, mo, d, h, mi, s) = self.parts();
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
    }

    /// `2015-08-30T12:36:00Z`, the ISO 8601 form used in XML responses.
    pub fn iso8601(self) -> String {
        let (y, mo, d, h, mi, s) = self.parts();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    pub fn parse_amz_date(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
        let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y as i64, mo) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let days = days_from_civil(y as i64, mo, d);
        Some(Timestamp(days * 86_400 + (h * 3600 + mi * 60 + se) as i64))
    }

    /// Parses the ISO 8601 forms AWS accepts in policies and APIs: `2026-01-02T03:04:05Z`, with
    /// optional fractional seconds (`…05.123Z`, truncated to the second), a `+01:00`/`-0530`-style
    /// offset instead of `Z` (no zone at all is read as UTC), and plain dates `2026-01-02` (midnight UTC).
    pub fn parse_iso8601(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(r)?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            part.iter().try_fold(0u32, |acc, &c| acc.checked_mul(10)?.checked_add(u32::from(c - b'0')))
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y as i64, mo) {
            return None;
        }
        let days = days_from_civil(y as i64, mo, d);
        if b.len() == 10 {
            return Some(Timestamp(days * 86_400));
        }
        if !matches!(b[10], b'T' | b't') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (h, mi, se) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut rest = &b[19..];
        if let Some((b'.', frac)) = rest.split_first() {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            rest = &frac[n..];
        }
        let offset = match rest {
            [] | [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), zone @ ..] => {
                let (oh, om) = match zone {
                    [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => ([*h1, *h2], [*m1, *m2]),
                    [h1, h2] => ([*h1, *h2], [b'0', b'0']),
                    _ => return None,
                };
                if !oh.iter().chain(om.iter()).all(u8::is_ascii_digit) {
                    return None;
                }
                let oh = i64::from((oh[0] - b'0') * 10 + (oh[1] - b'0'));
                let om = i64::from((om[0] - b'0') * 10 + (om[1] - b'0'));
                if oh > 23 || om > 59 {
                    return None;
                }
                let secs = oh * 3600 + om * 60;
                if *sign == b'+' {
                    secs
                } else {
                    -secs
                }
            }
            _ => return None,
        };
        Some(Timestamp(days * 86_400 + i64::from(h * 3600 + mi * 60 + se) - offset))
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

// Howard Hinnant's algorithms for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        let t = Timestamp::parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(t.0, 1_440_938_160);
        assert_eq!(t.amz_date(), "20150830T123600Z");
        assert_eq!(t.iso8601(), "2015-08-30T12:36:00Z");
        assert_eq!(Timestamp(0).iso8601(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(951_782_400).iso8601(), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn rejects_bad_dates() {
        for s in [
            "",
            "20150830T123600",
            "2015083OT123600Z",
            "20150230T000000Z",
            "20151301T000000Z",
            "20150830T250000Z",
            "２0150830T12360Z",
        ] {
            assert!(Timestamp::parse_amz_date(s).is_none(), "{s}");
        }
    }

    #[test]
    fn parses_iso8601_forms() {
        let base = 1_440_938_160; // 2015-08-30T12:36:00Z
        for (s, want) in [
            ("2015-08-30T12:36:00Z", base),
            ("2015-08-30t12:36:00z", base),
            ("2015-08-30T12:36:00", base),
            ("2015-08-30T12:36:00.000Z", base),
            ("2015-08-30T12:36:00.999999Z", base),
            ("2015-08-30T12:36:00+00:00", base),
            ("2015-08-30T14:36:00+02:00", base),
            ("2015-08-30T07:06:00-0530", base),
            ("2015-08-30T13:36:00.5+01", base),
            ("2015-08-30", base - (12 * 3600 + 36 * 60)),
            ("1970-01-01T00:00:00Z", 0),
            ("1969-12-31T23:59:59Z", -1),
            ("2000-02-29", 951_782_400),
            ("2026-01-02T03:04:05Z", 1_767_323_045),
        ] {
            assert_eq!(Timestamp::parse_iso8601(s), Some(Timestamp(want)), "{s}");
        }
    }

    #[test]
    fn rejects_bad_iso8601() {
        for s in [
            "",
            "2015",
            "2015-08",
            "2015-8-30",
            "2015/08/30",
            "2015-02-29",
            "2015-13-01",
            "2015-08-00",
            "2015-08-30T",
            "2015-08-30 12:36:00Z",
            "2015-08-30T24:00:00Z",
            "2015-08-30T12:60:00Z",
            "2015-08-30T12:36Z",
            "2015-08-30T12:36:00.Z",
            "2015-08-30T12:36:00+2:00",
            "2015-08-30T12:36:00+25:00",
            "2015-08-30T12:36:00 Z",
            "2015-08-30T12:36:00ZZ",
            "2015-08-30T12:36:00UTC",
            "+2015-08-30",
            "２015-08-30",
            "1440938160",
        ] {
            assert!(Timestamp::parse_iso8601(s).is_none(), "{s}");
        }
    }
}
