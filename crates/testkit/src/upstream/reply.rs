//! The future and body types of the upstream's responses, kept apart from the routing in
//! `respond` because they are plumbing: a future that is ready at once for the plain answers
//! (no allocation, no await) and boxed otherwise, and the body of `/stream/<bytes>`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::{Body, Frame};
use http_body_util::{Either, Full};

/// The body of every response: a buffer, or the repeated bytes of `/stream/<n>`.
pub(crate) type ResponseBody = Either<Full<Bytes>, Repeat>;

/// Bytes `/stream/<n>` sends per frame.
const STREAM_CHUNK: usize = 16 * 1024;
static STREAM_BYTES: [u8; STREAM_CHUNK] = [b'x'; STREAM_CHUNK];

/// The future of one response: ready at once for the plain answers, boxed for the rest.
pub(crate) struct Reply(ReplyState);

type BoxedResponse = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>;

enum ReplyState {
    Ready(std::future::Ready<Result<Response<ResponseBody>, Infallible>>),
    Pending(BoxedResponse),
}

impl Reply {
    pub(crate) fn ready(response: Response<ResponseBody>) -> Self {
        Self(ReplyState::Ready(std::future::ready(Ok(response))))
    }

    pub(crate) fn pending(
        future: impl Future<Output = Response<ResponseBody>> + Send + 'static,
    ) -> Self {
        Self(ReplyState::Pending(Box::pin(future)))
    }
}

impl Future for Reply {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            ReplyState::Ready(ready) => Pin::new(ready).poll(cx),
            ReplyState::Pending(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// A body of `remaining` bytes of `x`, sent in frames of [`STREAM_CHUNK`] bytes, with no
/// length announced (so HTTP/1.1 sends it chunked).
#[derive(Debug)]
pub(crate) struct Repeat {
    remaining: u64,
}

impl Repeat {
    pub(crate) fn new(bytes: u64) -> Self {
        Self { remaining: bytes }
    }
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.remaining).map_or(STREAM_CHUNK, |r| r.min(STREAM_CHUNK));
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &STREAM_BYTES[..n],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }
}
