//! Port numbers: 1 to 65535, refused otherwise when the configuration is read.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A TCP/UDP port number in `1..=65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(u16);

impl Port {
    pub fn new(number: u64) -> Result<Self, String> {
        match u16::try_from(number) {
            Ok(port) if port > 0 => Ok(Self(port)),
            _ => Err(format!("port must be between 1 and 65535 (got {number})")),
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = i64::deserialize(deserializer)?;
        let number = u64::try_from(number).map_err(|_| {
            serde::de::Error::custom(format!("port must be between 1 and 65535 (got {number})"))
        })?;
        Self::new(number).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_real_ports() {
        assert_eq!(serde_json::from_str::<Port>("80").unwrap().get(), 80);
        for bad in ["0", "65536", "-1"] {
            let err = serde_json::from_str::<Port>(bad).unwrap_err().to_string();
            assert!(err.contains("between 1 and 65535"), "{bad}: {err}");
        }
    }
}
