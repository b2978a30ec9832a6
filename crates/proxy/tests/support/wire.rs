//! Lower-level test pieces: an upstream that counts what reaches it (connections, body bytes as
//! they stream in), request bodies generated without buffering, one HTTP/1.1 connection under
//! the test's control, and raw sockets for input no HTTP client would send.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::observe::PATIENCE;

/// An upstream (HTTP/1.1 and h2c) that reads every request body as it arrives, counting its
/// bytes without keeping them, and answers JSON: `{"bytes", "version", "connection", "path"}`,
/// where `connection` numbers the connection the request came on, from 1.
pub struct Recorder {
    pub address: SocketAddr,
    connections: Arc<AtomicU64>,
    body_bytes: Arc<AtomicU64>,
}

impl Recorder {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the recorder binds");
        let address = listener.local_addr().expect("a bound address");
        let connections = Arc::new(AtomicU64::new(0));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let (accepted, counted) = (connections.clone(), body_bytes.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = accepted.fetch_add(1, Ordering::SeqCst) + 1;
                let counted = counted.clone();
                let service =
                    service_fn(move |request| record(request, connection, counted.clone()));
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            address,
            connections,
            body_bytes,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Request body bytes received so far, over all requests, counted as they arrive.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
}

async fn record(
    request: Request<Incoming>,
    connection: u64,
    counted: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let version = format!("{:?}", request.version());
    let path = request.uri().path().to_owned();
    let mut body = request.into_body();
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
            counted.fetch_add(data.len() as u64, Ordering::SeqCst);
        }
    }
    let answer = serde_json::json!({ "bytes": bytes, "version": version, "connection": connection, "path": path });
    Ok(Response::new(Full::new(Bytes::from(answer.to_string()))))
}

/// A request body of `total` bytes (`None`: one that never ends) in 64 KiB chunks that share
/// one buffer, so sending it costs no memory.
pub struct Chunks {
    chunk: Bytes,
    remaining: Option<u64>,
}

impl Chunks {
    pub fn new(total: Option<u64>) -> Self {
        Self {
            chunk: Bytes::from(vec![b'z'; 64 * 1024]),
            remaining: total,
        }
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let len = self.chunk.len() as u64;
        let n = match &mut self.remaining {
            Some(0) => return Poll::Ready(None),
            Some(remaining) => {
                let n = len.min(*remaining);
                *remaining -= n;
                n
            }
            None => len,
        };
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// One HTTP/1.1 connection to `address`; every request sent on it goes on that connection.
pub async fn connect_h1<B>(address: SocketAddr) -> http1::SendRequest<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(address)
        .await
        .expect("the proxy accepts");
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("an HTTP/1.1 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// One HTTP/2 (prior knowledge) connection to `address`; requests need absolute URIs.
pub async fn connect_h2<B>(address: SocketAddr) -> http2::SendRequest<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(address)
        .await
        .expect("the proxy accepts");
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("an HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// Reads until the peer closes the connection (a reset counts as closing) and returns what
/// came; panics if it is still open after [`PATIENCE`].
pub async fn read_until_closed(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    if tokio::time::timeout(PATIENCE, read_all).await.is_err() {
        panic!("the connection is still open after {PATIENCE:?}");
    }
    received
}

/// Sends `bytes` on a new connection to `address` (from a task, since the proxy may close
/// before reading them all) and reads until the proxy closes. The client never closes its side
/// first, so only the proxy can end the exchange.
pub async fn exchange_raw(address: SocketAddr, bytes: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(address)
        .await
        .expect("the proxy accepts");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&bytes).await;
        write // kept open: dropping it would half-close the connection
    });
    let received = read_until_closed(&mut read).await;
    writer.abort();
    received
}

/// The status code of the response at the start of `raw`, if it starts with one.
pub fn status_of(raw: &[u8]) -> Option<u16> {
    let rest = raw.strip_prefix(b"HTTP/1.1 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

/// Collects a response body frame by frame, returning its length without keeping it.
pub async fn drain_body<B>(mut body: B) -> Result<u64, String>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok(bytes)
}
