//! Time on the wire: RFC 3339 in UTC with a `Z`, at microsecond precision, which is what
//! PostgreSQL's `timestamptz` stores. Fixed-width, so the strings also sort chronologically.

use chrono::{DateTime, SubsecRound, Utc};

/// The current time truncated to microseconds, so a snapshot taken before an insert equals
/// the row read back.
pub fn now_micros() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `#[serde(with = "crate::time::rfc3339")]` for `DateTime<Utc>` fields.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    /// Any RFC 3339 offset is accepted and converted to UTC.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|error| D::Error::custom(format!("{text:?} is not an RFC 3339 timestamp: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Stamped(#[serde(with = "rfc3339")] DateTime<Utc>);

    #[test]
    fn now_micros_has_no_nanoseconds_below_the_microsecond() {
        assert_eq!(now_micros().nanosecond() % 1_000, 0);
    }

    #[test]
    fn timestamps_serialize_as_utc_with_z_and_six_fraction_digits() {
        let time = DateTime::parse_from_rfc3339("2026-03-01T12:00:05.120Z").expect("valid").with_timezone(&Utc);
        assert_eq!(serde_json::to_value(Stamped(time)).expect("serializes"), "2026-03-01T12:00:05.120000Z");
    }

    #[test]
    fn timestamps_with_an_offset_are_read_as_utc() {
        let stamped: Stamped = serde_json::from_str(r#""2026-03-01T14:00:00+02:00""#).expect("parses");
        assert_eq!(serde_json::to_value(stamped).expect("serializes"), "2026-03-01T12:00:00.000000Z");
    }

    #[test]
    fn non_rfc3339_timestamps_are_refused() {
        for text in [r#""2026-03-01 12:00:00""#, r#""2026-03-01T12:00:00""#, r#""yesterday""#] {
            assert!(serde_json::from_str::<Stamped>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn microsecond_timestamps_round_trip_exactly() {
        let time = now_micros();
        let json = serde_json::to_string(&Stamped(time)).expect("serializes");
        assert_eq!(serde_json::from_str::<Stamped>(&json).expect("parses"), Stamped(time));
    }
}
