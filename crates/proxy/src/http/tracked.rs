//! A response body that reports when it ends: how many bytes went through, the gRPC status in
//! its trailers, and whether the client stayed to the end. Telemetry for a request is recorded
//! then, as Envoy does, so durations cover the whole response.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::Body;

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyEnd {
    pub bytes: u64,
    /// The `grpc-status` trailer, if the body had one.
    pub grpc_status: Option<u32>,
    /// The body was not read to its end (the client went away, or the upstream failed).
    pub incomplete: bool,
    /// The body ended with an error from its source (the upstream reset or closed mid-body),
    /// rather than the client going away.
    pub source_failed: bool,
}

/// Wraps a body, calling `done` exactly once when it ends or is dropped.
pub struct Tracked<F: FnOnce(BodyEnd)> {
    inner: Body,
    bytes: u64,
    grpc_status: Option<u32>,
    done: Option<F>,
}

impl<F: FnOnce(BodyEnd)> std::fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<F: FnOnce(BodyEnd)> Tracked<F> {
    pub fn new(inner: Body, done: F) -> Self {
        Self {
            inner,
            bytes: 0,
            grpc_status: None,
            done: Some(done),
        }
    }

    fn finish(&mut self, incomplete: bool, source_failed: bool) {
        if let Some(done) = self.done.take() {
            done(BodyEnd {
                bytes: self.bytes,
                grpc_status: self.grpc_status,
                incomplete,
                source_failed,
            });
        }
    }
}

impl<F: FnOnce(BodyEnd) + Unpin> HttpBody for Tracked<F> {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::body::BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    self.grpc_status = grpc_status(trailers);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(true, true),
            Poll::Ready(None) => self.finish(false, false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(BodyEnd)> Drop for Tracked<F> {
    fn drop(&mut self) {
        let ended = self.inner.is_end_stream();
        self.finish(!ended, false);
    }
}

/// The `grpc-status` value of a header map, if it has one.
pub fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get(super::headers::GRPC_STATUS)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::sync::{Arc, Mutex};

    fn with_grpc_trailer(status: &'static str) -> Body {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", status.parse().unwrap());
        Full::new(Bytes::from_static(b"hello"))
            .map_err(|never| match never {})
            .with_trailers(async move { Some(Ok(trailers)) })
            .boxed()
    }

    #[tokio::test]
    async fn reports_bytes_and_trailers_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let body = Tracked::new(with_grpc_trailer("14"), move |end| {
            record.lock().unwrap().push(end)
        });
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "14");
        assert_eq!(
            *seen.lock().unwrap(),
            vec![BodyEnd {
                bytes: 5,
                grpc_status: Some(14),
                incomplete: false,
                source_failed: false
            }]
        );
    }

    #[tokio::test]
    async fn a_dropped_body_is_incomplete() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        drop(Tracked::new(crate::body::full("x"), move |end| {
            record.lock().unwrap().push(end)
        }));
        assert!(seen.lock().unwrap()[0].incomplete);
    }
}
