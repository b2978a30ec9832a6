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

/// A request's body as its client sends it.
#[derive(Debug)]
pub enum ClientBody {
    /// The request has none.
    Empty,
    /// Read from an HTTP/1.1 connection.
    Http1(crate::downstream::http1::RequestBody),
    /// An HTTP/2 stream's data.
    Http2(hyper::body::Incoming),
}

impl http_body::Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Empty => std::task::Poll::Ready(None),
            Self::Http1(body) => std::pin::Pin::new(body).poll_frame(cx),
            Self::Http2(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Http1(body) => body.is_end_stream(),
            Self::Http2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Empty => http_body::SizeHint::with_exact(0),
            Self::Http1(body) => body.size_hint(),
            Self::Http2(body) => body.size_hint(),
        }
    }
}
