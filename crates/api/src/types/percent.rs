//! Percentages: a number from 0 to 100, as Istio's `Percent` message and its `*Percentage` fields.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A finite number in `0..=100`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Percentage(f64);

impl Percentage {
    pub const HUNDRED: Self = Self(100.0);

    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!(
                "percentage must be between 0 and 100 (got {value})"
            ))
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Percentage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Percentage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(f64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Istio's `Percent` message: `{value: 12.5}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Percent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Percentage>,
}

impl Percent {
    /// The percentage, 0 when unset as in protobuf.
    pub fn get(&self) -> f64 {
        self.value.map_or(0.0, Percentage::value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_zero_to_hundred() {
        assert_eq!(Percentage::new(0.0).unwrap().value(), 0.0);
        assert_eq!(Percentage::new(12.5).unwrap().value(), 12.5);
        assert!(Percentage::new(100.0).is_ok());
        assert!(Percentage::new(100.1).is_err());
        assert!(Percentage::new(-1.0).is_err());
        assert!(Percentage::new(f64::NAN).is_err());
    }

    #[test]
    fn reads_the_message_form() {
        let p: Percent = serde_json::from_str(r#"{"value": 50}"#).unwrap();
        assert_eq!(p.get(), 50.0);
        let err = serde_json::from_str::<Percent>(r#"{"value": 150}"#).unwrap_err();
        assert!(err.to_string().contains("between 0 and 100"), "{err}");
    }
}
