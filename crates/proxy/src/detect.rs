//! Protocol detection: the first bytes a client sends tell HTTP/1.1, HTTP/2 (prior knowledge)
//! and TLS apart from anything else.
//!
//! The bytes read to decide are not lost: [`Prefixed`] hands them back before the rest of the
//! stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The HTTP/2 connection preface.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/1 methods a request line can start with.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    Tls,
    /// Anything else, including a client that says nothing within the detection timeout.
    Opaque,
}

/// Classifies the first bytes of a connection; `None` when more bytes are needed to decide.
pub fn classify(bytes: &[u8]) -> Option<Protocol> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() >= 3 && bytes[0] == 0x16 && bytes[1] == 0x03 && bytes[2] <= 0x04 {
        return Some(Protocol::Tls);
    }
    let preface = &H2_PREFACE[..bytes.len().min(H2_PREFACE.len())];
    if bytes.starts_with(preface) {
        return if bytes.len() >= H2_PREFACE.len() {
            Some(Protocol::Http2)
        } else {
            None
        };
    }
    for method in METHODS {
        let n = bytes.len().min(method.len());
        if bytes[..n] == method[..n] {
            return if bytes.len() >= method.len() {
                Some(Protocol::Http1)
            } else {
                None
            };
        }
    }
    if bytes.len() < 3 && bytes[0] == 0x16 {
        return None;
    }
    Some(Protocol::Opaque)
}

/// Reads from `stream` until the protocol is known (or `timeout` passes, or the client stops
/// sending), returning the protocol and the bytes read.
pub async fn detect<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> io::Result<(Protocol, Bytes)> {
    let mut buffer = Vec::with_capacity(H2_PREFACE.len());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(protocol) = classify(&buffer) {
            return Ok((protocol, Bytes::from(buffer)));
        }
        let mut chunk = [0u8; 24];
        let want = H2_PREFACE.len().saturating_sub(buffer.len()).max(1);
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Err(_) => return Ok((Protocol::Opaque, Bytes::from(buffer))),
            Ok(Ok(n)) => buffer.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The bytes still to be handed back before the stream's own.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The bytes still to be handed back, and the stream.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Implements `AsyncWrite` for a stream wrapper (a generic struct with an `inner` stream) by
/// handing every call to `inner`: wrappers here only change how a stream reads.
macro_rules! write_through_inner {
    ($wrapper:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                data: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}
pub(crate) use write_through_inner;

write_through_inner!(Prefixed);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
        assert_eq!(classify(&H2_PREFACE[..10]), None);
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02]), Some(Protocol::Tls));
        assert_eq!(classify(b"\x00\x00\x00"), Some(Protocol::Opaque));
        assert_eq!(classify(b"GETX"), Some(Protocol::Opaque));
        assert_eq!(classify(b"SSH-2.0"), Some(Protocol::Opaque));
    }

    #[tokio::test]
    async fn detection_keeps_the_bytes_it_read() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"POST /x HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut server = server;
        let (protocol, prefix) = detect(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(protocol, Protocol::Http1);
        let mut rest = Vec::new();
        drop(client);
        Prefixed::new(prefix, server)
            .read_to_end(&mut rest)
            .await
            .unwrap();
        assert_eq!(rest, b"POST /x HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_silent_client_is_opaque_after_the_timeout() {
        let (_client, mut server) = tokio::io::duplex(64);
        let (protocol, prefix) = detect(&mut server, Duration::from_millis(20))
            .await
            .unwrap();
        assert_eq!((protocol, prefix.len()), (Protocol::Opaque, 0));
    }
}
