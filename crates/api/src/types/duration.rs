//! Durations as Istio reads them: Go's `time.ParseDuration` syntax (`"1.5s"`, `"100ms"`,
//! `"1h30m"`), which is also what the protobuf JSON form (`"3.000s"`) looks like.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time read from a duration string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(StdDuration);

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "invalid duration {0:?}: expected a number and a unit, such as \"1.5s\", \"100ms\" or \"1h30m\""
    )]
    Syntax(String),
    #[error("invalid duration {0:?}: unknown unit {1:?} (use ns, us, ms, s, m or h)")]
    Unit(String, String),
    #[error("invalid duration {0:?}: durations cannot be negative")]
    Negative(String),
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
}

const NANOS_PER: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("d", 0), // recognised only to say it is not a unit
];

impl Duration {
    pub const fn from_std(duration: StdDuration) -> Self {
        Self(duration)
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(StdDuration::from_millis(millis))
    }

    pub const fn as_std(&self) -> StdDuration {
        self.0
    }

    /// Parses Go duration syntax: a sequence of decimal numbers, each with a unit.
    pub fn parse(text: &str) -> Result<Self, DurationError> {
        let syntax = || DurationError::Syntax(text.to_owned());
        let (negative, mut rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if rest == "0" {
            return Ok(Self::default());
        }
        if rest.is_empty() {
            return Err(syntax());
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let number_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(syntax)?;
            let (number, tail) = rest.split_at(number_end);
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_end);
            let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
            if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
                return Err(syntax());
            }
            let scale = NANOS_PER
                .iter()
                .find(|(name, nanos)| *name == unit && *nanos > 0)
                .map(|(_, nanos)| *nanos)
                .ok_or_else(|| {
                    if unit.is_empty() {
                        syntax()
                    } else {
                        DurationError::Unit(text.to_owned(), unit.to_owned())
                    }
                })?;
            let overflow = || DurationError::Overflow(text.to_owned());
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| overflow())?
            };
            let mut part = whole.checked_mul(scale).ok_or_else(overflow)?;
            let mut unit_scale = scale;
            for digit in fraction.bytes().take(30) {
                unit_scale /= 10;
                part += u128::from(digit - b'0') * unit_scale;
            }
            total = total.checked_add(part).ok_or_else(overflow)?;
            rest = tail;
        }
        if negative && total > 0 {
            return Err(DurationError::Negative(text.to_owned()));
        }
        let secs = u64::try_from(total / 1_000_000_000)
            .map_err(|_| DurationError::Overflow(text.to_owned()))?;
        if secs > MAX_SECONDS {
            return Err(DurationError::Overflow(text.to_owned()));
        }
        Ok(Self(StdDuration::new(secs, (total % 1_000_000_000) as u32)))
    }
}

/// The largest duration protobuf can carry (about 10,000 years).
const MAX_SECONDS: u64 = 315_576_000_000;

impl From<StdDuration> for Duration {
    fn from(duration: StdDuration) -> Self {
        Self(duration)
    }
}

impl From<Duration> for StdDuration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

impl std::str::FromStr for Duration {
    type Err = DurationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Prints the duration in the largest unit that represents it exactly (`90s` prints `90s`,
/// `1500ms` prints `1500ms`), which parses back to the same value.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (unit, scale) in [
            ("h", 3_600_000_000_000u128),
            ("m", 60_000_000_000),
            ("s", 1_000_000_000),
            ("ms", 1_000_000),
            ("us", 1_000),
        ] {
            if nanos.is_multiple_of(scale) {
                return write!(f, "{}{unit}", nanos / scale);
            }
        }
        write!(f, "{nanos}ns")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"10s\", \"1.5s\" or \"100ms\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u128 {
        Duration::parse(text).unwrap().as_std().as_millis()
    }

    #[test]
    fn parses_go_syntax() {
        assert_eq!(ms("1.5s"), 1500);
        assert_eq!(ms("100ms"), 100);
        assert_eq!(ms("1m"), 60_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("0"), 0);
        assert_eq!(ms(".5s"), 500);
        assert_eq!(ms("3.000s"), 3000);
        assert_eq!(
            Duration::parse("1500us").unwrap().as_std().as_micros(),
            1500
        );
        assert_eq!(
            Duration::parse("2\u{b5}s").unwrap().as_std().as_nanos(),
            2000
        );
    }

    #[test]
    fn refuses_bad_text_with_a_reason() {
        assert!(matches!(
            Duration::parse("10"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            Duration::parse("1.2.3s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            Duration::parse("s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(Duration::parse(""), Err(DurationError::Syntax(_))));
        assert!(matches!(
            Duration::parse("5d"),
            Err(DurationError::Unit(..))
        ));
        assert!(matches!(
            Duration::parse("-1s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            Duration::parse("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        let message = Duration::parse("5 seconds").unwrap_err().to_string();
        assert!(message.contains("5 seconds"), "{message}");
    }

    #[test]
    fn says_what_it_expects() {
        let err = serde_json::from_str::<Duration>("10")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a duration string such as \"10s\""),
            "{err}"
        );
    }

    #[test]
    fn prints_what_it_parses() {
        for text in ["90s", "1500ms", "1h", "0s", "7ns", "2us", "25m"] {
            let parsed = Duration::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(Duration::parse(&parsed.to_string()).unwrap(), parsed);
        }
        assert_eq!(Duration::parse("1.5s").unwrap().to_string(), "1500ms");
    }
}
