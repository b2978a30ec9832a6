//! Application protocols as Istio names them on ports (`HTTP`, `GRPC`, `TLS`, ...).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The protocol a port carries. Names are read case-insensitively, as Istio reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Http2,
    Https,
    Grpc,
    GrpcWeb,
    HttpProxy,
    Tcp,
    Tls,
    Udp,
    Mongo,
    Redis,
    MySql,
}

impl Protocol {
    pub const ALL: [Protocol; 12] = [
        Self::Http,
        Self::Http2,
        Self::Https,
        Self::Grpc,
        Self::GrpcWeb,
        Self::HttpProxy,
        Self::Tcp,
        Self::Tls,
        Self::Udp,
        Self::Mongo,
        Self::Redis,
        Self::MySql,
    ];

    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Http2 => "HTTP2",
            Self::Https => "HTTPS",
            Self::Grpc => "GRPC",
            Self::GrpcWeb => "GRPC-Web",
            Self::HttpProxy => "HTTP_PROXY",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Udp => "UDP",
            Self::Mongo => "Mongo",
            Self::Redis => "Redis",
            Self::MySql => "MySQL",
        }
    }

    /// Reads a protocol name in any case; `None` for names Istio does not know.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name))
    }

    /// HTTP of some kind: routed by HTTP rules.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Http2 | Self::HttpProxy | Self::Grpc | Self::GrpcWeb
        )
    }

    /// TLS on the wire, where servers need certificates or pass the stream through.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls)
    }

    /// Proxied as an opaque byte stream.
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Self::Tcp | Self::Https | Self::Tls | Self::Mongo | Self::Redis | Self::MySql
        )
    }

    pub fn is_grpc(self) -> bool {
        matches!(self, Self::Grpc | Self::GrpcWeb)
    }

    fn names() -> String {
        Self::ALL
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown protocol {name:?}; supported protocols are {}",
                Self::names()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_in_any_case() {
        assert_eq!(Protocol::parse("http"), Some(Protocol::Http));
        assert_eq!(Protocol::parse("grpc-web"), Some(Protocol::GrpcWeb));
        assert_eq!(Protocol::parse("MYSQL"), Some(Protocol::MySql));
        assert_eq!(Protocol::parse("quic"), None);
        let err = serde_json::from_str::<Protocol>("\"QUIC\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown protocol \"QUIC\""), "{err}");
    }
}
