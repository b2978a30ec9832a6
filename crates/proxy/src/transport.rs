//! A connection's bytes, whatever carries them: a TCP socket, or TLS over one (the mesh's
//! mutual TLS, or TLS originated to an endpoint).
//!
//! One concrete type rather than a generic parameter, so the HTTP/1.1 server and client, the
//! TCP proxy and the pools compile once; the branch per read or write costs nothing next to
//! the system call behind it. [`Io::into_split`] gives halves as a socket's `into_split` does:
//! a socket's halves are free; TLS halves share the session behind a lock, which only the two
//! halves of one connection take, each only for the length of one poll (the request body may
//! be polled from another task, an HTTP/2 upstream connection's, but on the same worker
//! thread, so the lock is never contended).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsStream;

/// A connection, plain or TLS.
#[derive(Debug)]
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl From<TcpStream> for Io {
    fn from(stream: TcpStream) -> Self {
        Self::Plain(stream)
    }
}

impl Io {
    /// The socket underneath.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Self::Plain(stream) => stream,
            Self::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// Read and write halves, which [`reunite`] puts back together.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Self::Plain(stream) => {
                let (read, write) = stream.into_split();
                (ReadHalf::Plain(read), WriteHalf::Plain(write))
            }
            Self::Tls(tls) => {
                let shared = Arc::new(Mutex::new(tls));
                (ReadHalf::Tls(shared.clone()), WriteHalf::Tls(shared))
            }
        }
    }

    /// Whether an idle connection has become unusable: closed by the peer, failed, or with
    /// bytes nobody asked for. Never waits; costs a system call only when the socket has
    /// become readable.
    pub fn is_closed(&mut self) -> bool {
        match self {
            Self::Plain(stream) => {
                let mut probe = [0u8; 1];
                !matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Self::Tls(tls) => {
                // TLS may have records of its own to take in (session tickets): a read that
                // finds no application data is still open.
                let mut probe = [0u8; 1];
                let mut buf = ReadBuf::new(&mut probe);
                let mut cx = Context::from_waker(std::task::Waker::noop());
                !Pin::new(tls.as_mut())
                    .poll_read(&mut cx, &mut buf)
                    .is_pending()
            }
        }
    }
}

/// Puts the halves of one connection back together; `None` when they are not of one.
pub fn reunite(read: ReadHalf, write: WriteHalf) -> Option<Io> {
    match (read, write) {
        (ReadHalf::Plain(read), WriteHalf::Plain(write)) => read.reunite(write).ok().map(Io::Plain),
        (ReadHalf::Tls(read), WriteHalf::Tls(write)) if Arc::ptr_eq(&read, &write) => {
            drop(write);
            let tls = Arc::into_inner(read)?;
            Some(Io::Tls(
                tls.into_inner().unwrap_or_else(PoisonError::into_inner),
            ))
        }
        _ => None,
    }
}

type Shared = Arc<Mutex<Box<TlsStream<TcpStream>>>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Box<TlsStream<TcpStream>>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reading half of an [`Io`].
#[derive(Debug)]
pub enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(Shared),
}

impl ReadHalf {
    /// Writes `bytes` through the connection from the reading side (`100 Continue`, which the
    /// request body sends while the response side is elsewhere); how many were taken. Follow
    /// with [`Self::poll_flush_through`].
    pub fn poll_write_through(
        &self,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(read) => {
                let socket: &TcpStream = read.as_ref();
                loop {
                    ready!(socket.poll_write_ready(cx))?;
                    match socket.try_write(bytes) {
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                        result => return Poll::Ready(result),
                    }
                }
            }
            Self::Tls(shared) => Pin::new(lock(shared).as_mut()).poll_write(cx, bytes),
        }
    }

    /// Sends on what [`Self::poll_write_through`] took (TLS may hold the end of a record).
    pub fn poll_flush_through(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(_) => Poll::Ready(Ok(())),
            Self::Tls(shared) => Pin::new(lock(shared).as_mut()).poll_flush(cx),
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(read) => Pin::new(read).poll_read(cx, buf),
            Self::Tls(shared) => Pin::new(lock(shared).as_mut()).poll_read(cx, buf),
        }
    }
}

/// The writing half of an [`Io`].
#[derive(Debug)]
pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(Shared),
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_write(cx, buf),
            Self::Tls(shared) => Pin::new(lock(shared).as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_flush(cx),
            Self::Tls(shared) => Pin::new(lock(shared).as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(write) => Pin::new(write).poll_shutdown(cx),
            Self::Tls(shared) => Pin::new(lock(shared).as_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(stream) => stream.is_write_vectored(),
            Self::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
