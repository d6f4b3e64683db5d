//! Times that come in from outside (spec/api.md "Business hours and deadlines": "Times the
//! API accepts lie between 2000-01-01 and 9999-12-31").
//!
//! An [`ApiTime`] is an RFC 3339 instant (section 5.6, with an offset; converted to UTC) in
//! those bounds, kept to the microsecond (what both databases store). The bounds are what
//! make stored times sort as time: PostgreSQL compares `timestamp`s, but SQLite compares
//! Diesel's `YYYY-MM-DD HH:MM:SS[.ffffff]` text, which orders correctly only for four-digit
//! years, so a year-10000 time would otherwise jump the queue.

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first instant accepted: 2000-01-01T00:00:00Z.
pub fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The last instant accepted: 9999-12-31T23:59:59.999999Z.
pub fn latest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A time that is not RFC 3339, or out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown:?} is not an RFC 3339 time between 2000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, such as 2026-12-03T15:04:05Z")]
pub struct InvalidTime {
    shown: String,
}

/// An RFC 3339 instant within the accepted bounds, in UTC, to the microsecond (finer digits
/// are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiTime(DateTime<Utc>);

impl ApiTime {
    /// Errors: [`InvalidTime`] for anything else, quoting (up to 64 characters of) the input.
    pub fn parse(raw: &str) -> Result<ApiTime, InvalidTime> {
        let invalid = || InvalidTime {
            shown: raw.chars().take(64).collect(),
        };
        let t = DateTime::parse_from_rfc3339(raw.trim())
            .map_err(|_| invalid())?
            .with_timezone(&Utc);
        // To the microsecond, by hand: chrono's `duration_trunc` counts in i64 nanoseconds
        // and fails past 2262. A leap second (23:59:60) becomes the last microsecond of its
        // minute, which both databases can store.
        let micros = (t.nanosecond() / 1_000).min(999_999);
        let t = t.with_nanosecond(micros * 1_000).ok_or_else(invalid)?;
        if t < earliest() || t > latest() {
            return Err(invalid());
        }
        Ok(ApiTime(t))
    }

    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }
}

impl std::str::FromStr for ApiTime {
    type Err = InvalidTime;
    fn from_str(s: &str) -> Result<Self, InvalidTime> {
        ApiTime::parse(s)
    }
}

impl<'de> Deserialize<'de> for ApiTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ApiTime::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ApiTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_utc(self.0))
    }
}

/// How every time leaves the service: RFC 3339 in UTC with a `Z` and six fractional digits
/// (`2026-12-03T15:04:05.000000Z`).
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_bounds_is_taken_and_kept_to_the_microsecond_in_utc() {
        let t = ApiTime::parse("2026-12-03T16:04:05.123456789+01:00").unwrap();
        assert_eq!(format_utc(t.utc()), "2026-12-03T15:04:05.123456Z");
        assert_eq!(
            format_utc(ApiTime::parse("2000-01-01T00:00:00Z").unwrap().utc()),
            "2000-01-01T00:00:00.000000Z"
        );
        assert!(ApiTime::parse("9999-12-31T23:59:59.999999Z").is_ok());
        // The same instant written with an offset that puts it in the year 10000 is fine.
        assert!(ApiTime::parse("9999-12-31T20:00:00-02:00").is_ok());
    }

    #[test]
    fn out_of_bounds_or_not_rfc3339_is_refused() {
        for bad in [
            "1999-12-31T23:59:59.999999Z",
            "+10000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:00:00-02:00",
            "2026-12-03",
            "2026-12-03T15:04:05",
            "yesterday",
            "1733238245",
            "",
        ] {
            assert!(ApiTime::parse(bad).is_err(), "{bad}");
        }
        let e = ApiTime::parse("+10000-01-01T00:00:00Z").unwrap_err();
        assert!(e.to_string().contains("between 2000-01-01"), "{e}");
    }

    #[test]
    fn json_strings_deserialise_and_serialise_back_in_utc() {
        let t: ApiTime = serde_json::from_str("\"2026-01-02T03:04:05Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-01-02T03:04:05.000000Z\""
        );
        let leap: ApiTime = serde_json::from_str("\"2016-12-31T23:59:60.5Z\"").unwrap();
        assert_eq!(format_utc(leap.utc()), "2016-12-31T23:59:59.999999Z");
        assert!(
            ApiTime::parse("2262-04-12T00:00:00.1234567Z").is_ok(),
            "past i64 nanos"
        );
        assert!(serde_json::from_str::<ApiTime>("12").is_err());
    }
}
