//! Response flags: Envoy's short codes for why a request ended the way it did, shown in access
//! logs and in the `response_flags` metric label (`-` when there is nothing to say).

use std::fmt;

/// A set of response flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResponseFlags(u32);

macro_rules! flags {
    ($($name:ident = $bit:literal, $code:literal, $doc:literal;)+) => {
        impl ResponseFlags {
            $(#[doc = $doc] pub const $name: Self = Self(1 << $bit);)+

            const CODES: &'static [(ResponseFlags, &'static str)] = &[$((Self::$name, $code)),+];
        }
    };
}

flags! {
    NO_HEALTHY_UPSTREAM = 0, "UH", "No endpoint of the cluster could take the request.";
    UPSTREAM_CONNECTION_FAILURE = 1, "UF", "The connection to the endpoint failed.";
    UPSTREAM_OVERFLOW = 2, "UO", "The cluster's connection or request limit was reached.";
    NO_ROUTE = 3, "NR", "No route (or virtual host) matched the request.";
    UPSTREAM_REQUEST_TIMEOUT = 4, "UT", "The upstream did not answer within the route's timeout.";
    LOCAL_RESET = 5, "LR", "The proxy reset the connection.";
    UPSTREAM_CONNECTION_TERMINATION = 6, "UC", "The upstream closed or reset the connection mid-request.";
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 7, "URX", "Every try failed and the retry limit was reached.";
    DOWNSTREAM_CONNECTION_TERMINATION = 8, "DC", "The client closed the connection before the response ended.";
    NO_CLUSTER_FOUND = 9, "NC", "The route names a cluster that is not configured.";
    DELAY_INJECTED = 10, "DI", "A fault delay was injected.";
    FAULT_INJECTED = 11, "FI", "A fault abort was injected.";
    RATE_LIMITED = 12, "RL", "The request was rate limited.";
    UNAUTHORIZED = 13, "UAEX", "An authorization policy denied the request.";
    STREAM_IDLE_TIMEOUT = 14, "SI", "The stream was idle for too long.";
    DOWNSTREAM_PROTOCOL_ERROR = 15, "DPE", "The client's request was malformed.";
    UPSTREAM_PROTOCOL_ERROR = 16, "UPE", "The upstream's response was malformed.";
}

impl ResponseFlags {
    pub const NONE: Self = Self(0);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0 && !other.is_empty()
    }

    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// `UH,URX`, or `-` for none (Envoy's format).
impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, code) in Self::CODES {
            if self.contains(*flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(code)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_envoy_codes() {
        assert_eq!(ResponseFlags::NONE.to_string(), "-");
        let flags = ResponseFlags::UPSTREAM_CONNECTION_FAILURE
            | ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED;
        assert_eq!(flags.to_string(), "UF,URX");
        assert!(flags.contains(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED));
        assert!(!flags.contains(ResponseFlags::NO_ROUTE));
    }
}
