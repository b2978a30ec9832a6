//! The body type requests and responses carry through the proxy: streamed frames, never a
//! whole body in memory (except a small request body kept for retries).

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// Why a body broke off: the connection it came on failed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed body.
pub type Body = BoxBody<Bytes, BoxError>;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body with the given bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}
