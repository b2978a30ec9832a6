//! HTTP/1.1 to endpoints, spoken by the task of the request that uses the connection.
//!
//! A request writes its head (and a body it already holds) in one send, then reads the
//! response head on the same task; the response body is read as the downstream side asks for
//! it. No task per connection and no channel between the request and the connection: the
//! connection is handed from request to request through the pool. A streamed request body goes
//! up while the response is awaited and, if the endpoint answers early, while the response
//! body comes down.
//!
//! Responses are framed as RFC 9112 §6.3 says: no body after `HEAD`, 1xx, 204 and 304; chunked
//! when `transfer-encoding` ends in `chunked`; `content-length` otherwise; else up to the
//! close. Interim (1xx) responses are read past. The hop-by-hop headers of a response
//! (`connection`, `keep-alive`, `transfer-encoding`, ...) stay here: the downstream side frames
//! the response again.

use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::limits::Slot;
use super::pool::{Outgoing, WorkerConnections};
use crate::body::{Body, BoxError};
use crate::h1::{
    Chunk, MAX_HEAD_BYTES, MAX_HEADERS, READ_SIZE, encode_end, encode_frame, ends_in_chunked,
    invalid, read_chunked, write_field,
};
use crate::transport::Io;

/// A request body of known size up to this many bytes goes out in the same send as its head.
const INLINE_BODY: u64 = 16 * 1024;
/// Header fields a response's map has room for, at least.
const RESPONSE_MAP_CAPACITY: usize = 16;

/// An open connection to an endpoint, between requests or carrying one.
#[derive(Debug)]
pub(super) struct Connection {
    io: Io,
    /// Bytes read and not yet taken.
    read: BytesMut,
    /// Outgoing bytes: a request head, a body's framing.
    write: Vec<u8>,
    /// Its place under the cluster's limits, when the cluster has limits (boxed: a connection
    /// is moved with every response, and most clusters have none).
    limited: Option<Box<Limited>>,
}

/// A connection's standing under its cluster's limits.
#[derive(Debug)]
struct Limited {
    slot: Slot,
    /// Requests it has carried to their end.
    carried: u32,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) error: io::Error,
    /// The request's body, when none of the request reached the connection (it can go on
    /// another one).
    pub(super) unsent: Option<Body>,
}

impl Connection {
    pub(super) fn new(io: Io, slot: Option<Slot>) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            write: Vec::new(),
            limited: slot.map(|slot| Box::new(Limited { slot, carried: 0 })),
        }
    }

    /// The limits its place was taken under, if any.
    pub(super) fn limits(&self) -> Option<&super::limits::Limits> {
        self.limited.as_ref().map(|limited| limited.slot.limits())
    }

    /// Notes a request carried to its end; whether it may carry another under the cluster's
    /// per-connection limit.
    fn carried_one(&mut self) -> bool {
        let Some(limited) = self.limited.as_deref_mut() else {
            return true;
        };
        limited.carried += 1;
        let limit = limited.slot.limits().max_requests_per_connection();
        limit.is_none_or(|limit| limited.carried < limit)
    }

    /// Whether the endpoint closed the connection, or sent something unasked, while it was idle.
    /// Costs a system call only when the socket has become readable.
    pub(super) fn is_closed(&mut self) -> bool {
        if !self.read.is_empty() {
            return true;
        }
        self.io.is_closed()
    }

    /// Sends `request` and reads the response head. The response body hands the connection
    /// back to `pool` (its worker's share of the endpoint's pool) when it has been read to its end and the connection can carry another
    /// request.
    pub(super) async fn send(
        mut self,
        request: Outgoing<'_>,
        pool: Arc<WorkerConnections>,
    ) -> Result<Response<ResponseBody>, Failed> {
        let Outgoing {
            parts,
            host,
            mut body,
            ..
        } = request;
        let head_only = parts.method == Method::HEAD;
        let hint = body.size_hint();
        let framing = encode_head(parts, host, &hint, &mut self.write);
        let mut upload = Upload::new(framing == BodyFraming::Chunked);
        let mut body_touched = false;
        if body.is_end_stream() {
            upload.finish();
        } else if hint.exact().is_some_and(|n| n <= INLINE_BODY) {
            // A body already in memory (kept for retries) joins its head in one send.
            if let Poll::Ready(frame) =
                poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await
            {
                body_touched = true;
                match frame {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.write.extend_from_slice(&data);
                        }
                    }
                    Some(Err(error)) => return Err(failed(io::Error::other(error))),
                    None => upload.finish(),
                }
                if body.is_end_stream() {
                    upload.finish();
                }
            }
        }

        // The first write tells whether the connection still takes requests; if it fails,
        // nothing was sent and the request can go elsewhere whole.
        let written = match self.io.write(&self.write).await {
            Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
            other => other,
        };
        let written = match written {
            Ok(n) => n,
            Err(error) => {
                let unsent = (!body_touched).then_some(body);
                return Err(Failed { error, unsent });
            }
        };
        if written < self.write.len() {
            self.io
                .write_all(&self.write[written..])
                .await
                .map_err(failed)?;
        }
        // A socket sends as it is written; TLS may hold the end of a record until flushed.
        self.io.flush().await.map_err(failed)?;
        if !upload.finished {
            upload.body = Some(body);
        }

        let Self {
            io, read, write, ..
        } = &mut self;
        let head = poll_fn(|cx| {
            upload.poll_progress(cx, io, write)?;
            poll_head(cx, io, read, head_only)
        })
        .await
        .map_err(failed)?;

        let mut response = Response::new(ResponseBody {
            connection: Some(self),
            framing: head.framing,
            upload,
            reusable: head.keep_alive,
            pool,
            ended: false,
            broken: None,
        });
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        response.body_mut().check_end();
        Ok(response)
    }
}

fn failed(error: io::Error) -> Failed {
    Failed {
        error,
        unsent: None,
    }
}

/// How a request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Length,
    Chunked,
}

/// Writes the request line (origin form) and headers, with `host` in place of the request's
/// own when given; the body's framing comes from its size.
fn encode_head(
    parts: &http::request::Parts,
    host: Option<&HeaderValue>,
    hint: &SizeHint,
    out: &mut Vec<u8>,
) -> BodyFraming {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if path.is_empty() {
        b"/"
    } else {
        path.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let Some(host) = host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || (host.is_some() && name == header::HOST)
        {
            continue;
        }
        write_field(out, name, value);
    }
    let framing = match hint.exact() {
        Some(0) => {
            // An empty body says so only where one is expected (or the client said so).
            let expects_body = !matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
            );
            if expects_body || parts.headers.contains_key(header::CONTENT_LENGTH) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
            BodyFraming::Length
        }
        Some(length) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
            out.extend_from_slice(b"\r\n");
            BodyFraming::Length
        }
        None => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            BodyFraming::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// A request body on its way up, frame by frame.
struct Upload {
    body: Option<Body>,
    chunked: bool,
    /// Bytes of `Connection::write` still to go, from this offset.
    pending: usize,
    /// The body, its end included, has been written.
    finished: bool,
    /// Writing failed or the body broke off: the connection cannot be reused.
    failed: bool,
}

impl Upload {
    fn new(chunked: bool) -> Self {
        Self {
            body: None,
            chunked,
            pending: 0,
            finished: false,
            failed: false,
        }
    }

    fn finish(&mut self) {
        self.finished = true;
        self.body = None;
    }

    /// Writes what the body has ready, without waiting. A write that fails ends the upload
    /// quietly: the endpoint may still answer (a 413 to a body it will not take, say). A body
    /// that breaks off (its client left) ends the exchange: the error is returned.
    fn poll_progress(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Io,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        if self.finished || self.failed {
            return Ok(());
        }
        match self.poll_write(cx, io, out) {
            Poll::Ready(Err(Broken::Body(error))) => {
                self.failed = true;
                self.body = None;
                Err(error)
            }
            Poll::Ready(Err(Broken::Write(error))) => {
                tracing::debug!(%error, "request body upload to the endpoint stopped");
                self.failed = true;
                self.body = None;
                Ok(())
            }
            Poll::Ready(Ok(())) | Poll::Pending => Ok(()),
        }
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut Io,
        out: &mut Vec<u8>,
    ) -> Poll<Result<(), Broken>> {
        loop {
            while self.pending > 0 {
                let start = out.len() - self.pending;
                let n = ready!(Pin::new(&mut *io).poll_write(cx, &out[start..]))
                    .map_err(Broken::Write)?;
                if n == 0 {
                    return Poll::Ready(Err(Broken::Write(io::ErrorKind::WriteZero.into())));
                }
                self.pending -= n;
            }
            ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(Broken::Write)?;
            out.clear();
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            let Some(body) = self.body.as_mut() else {
                self.finished = true;
                continue;
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                None => {
                    encode_end(self.chunked, out);
                    self.finish();
                }
                Some(Err(error)) => return Poll::Ready(Err(Broken::Body(io::Error::other(error)))),
                Some(Ok(frame)) => {
                    if encode_frame(frame, self.chunked, out) {
                        self.finish();
                    }
                }
            }
            self.pending = out.len();
        }
    }
}

/// Why an upload stopped.
enum Broken {
    /// The request body failed.
    Body(io::Error),
    /// Writing to the endpoint failed.
    Write(io::Error),
}

/// A response head as read.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Where the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes to go.
    Length(u64),
    Chunked(Chunk),
    /// Up to the close (the connection is not reused).
    UntilClose,
}

/// Reads until a final response head is complete (interim 1xx responses are skipped).
fn poll_head(
    cx: &mut Context<'_>,
    io: &mut Io,
    read: &mut BytesMut,
    head_only: bool,
) -> Poll<io::Result<Head>> {
    loop {
        if !read.is_empty() {
            if let Some(head) = parse_head(read, head_only)? {
                return Poll::Ready(Ok(head));
            }
            if read.len() > MAX_HEAD_BYTES {
                return Poll::Ready(Err(invalid("the response head is too large")));
            }
        }
        if ready!(poll_read(cx, io, read))? == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed before a response",
            )));
        }
    }
}

/// Reads what the socket has into `read`.
fn poll_read(cx: &mut Context<'_>, io: &mut Io, read: &mut BytesMut) -> Poll<io::Result<usize>> {
    read.reserve(READ_SIZE);
    pin!(io.read_buf(read)).poll(cx)
}

/// Parses a response head at the front of `read`, taking it (and any interim responses)
/// out; `None` while it is incomplete. Header values are slices of the head's bytes, not
/// copies.
fn parse_head(read: &mut BytesMut, head_only: bool) -> io::Result<Option<Head>> {
    loop {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut response, read, &mut slots)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        let httparse::Status::Complete(length) = parsed else {
            return Ok(None);
        };
        let code = response.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| invalid("invalid response status"))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            read.advance(length);
            continue;
        }
        let http10 = response.version == Some(0);
        let mut keep_alive = !http10;
        let mut chunked = false;
        let mut content_length: Option<u64> = None;
        // Where each kept field's name and value sit in the head.
        let mut spans = [[0u32; 4]; MAX_HEADERS];
        // Where the names of fields that `connection` makes hop-by-hop sit (rare: no
        // allocation unless there are some).
        let mut hop_by_hop: Vec<[u32; 2]> = Vec::new();
        let mut kept = 0;
        let base = read.as_ptr() as usize;
        let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
        for field in response.headers.iter() {
            let name = field.name.as_bytes();
            let is = |other: &HeaderName| name.eq_ignore_ascii_case(other.as_str().as_bytes());
            if is(&header::CONNECTION) || name.eq_ignore_ascii_case(b"proxy-connection") {
                for token in field.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        keep_alive |= http10;
                    } else if !token.is_empty() {
                        let at = offset(token);
                        hop_by_hop.push([at, at + token.len() as u32]);
                    }
                }
                continue;
            }
            if is(&header::TRANSFER_ENCODING) {
                chunked = ends_in_chunked(field.value);
                continue;
            }
            if is(&header::UPGRADE)
                || is(&header::TE)
                || is(&header::TRAILER)
                || name.eq_ignore_ascii_case(b"keep-alive")
            {
                continue;
            }
            if is(&header::CONTENT_LENGTH) {
                let value = std::str::from_utf8(field.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| invalid("invalid content-length in the response"))?;
                if content_length.is_some_and(|seen| seen != value) {
                    return Err(invalid("conflicting content-length values in the response"));
                }
                content_length = Some(value);
            }
            let (name_at, value_at) = (offset(name), offset(field.value));
            spans[kept] = [
                name_at,
                name_at + name.len() as u32,
                value_at,
                value_at + field.value.len() as u32,
            ];
            kept += 1;
        }
        let head = read.split_to(length).freeze();
        // Roomy: once the client's side has written the response out, it keeps this map to
        // parse the next request on its connection into, and the proxy adds its forwarding
        // headers to that request; a map already large enough never grows (a rehash and two
        // reallocations per request otherwise).
        let mut headers = crate::h1::spare_map(kept.max(RESPONSE_MAP_CAPACITY));
        for [name_start, name_end, value_start, value_end] in &spans[..kept] {
            let raw = &head[*name_start as usize..*name_end as usize];
            let named_hop_by_hop = hop_by_hop
                .iter()
                .any(|[start, end]| head[*start as usize..*end as usize].eq_ignore_ascii_case(raw));
            if named_hop_by_hop && !raw.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let name =
                HeaderName::from_bytes(raw).map_err(|_| invalid("invalid response header name"))?;
            let value = HeaderValue::from_maybe_shared(
                head.slice(*value_start as usize..*value_end as usize),
            )
            .map_err(|_| invalid("invalid response header value"))?;
            headers.append(name, value);
        }
        let no_body = head_only
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status.is_informational();
        let framing = if no_body {
            Framing::Length(0)
        } else if chunked {
            headers.remove(header::CONTENT_LENGTH);
            Framing::Chunked(Chunk::Size)
        } else if let Some(length) = content_length {
            Framing::Length(length)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
        return Ok(Some(Head {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// A response body read from its connection; the connection goes back to its pool once the
/// body has been read to its end (a body dropped part-way closes it).
pub struct ResponseBody {
    connection: Option<Connection>,
    framing: Framing,
    /// The rest of the request body, when the endpoint answered before it was all sent.
    upload: Upload,
    reusable: bool,
    pool: Arc<WorkerConnections>,
    ended: bool,
    /// A failure held back for one poll, so that what arrived before it goes out first.
    broken: Option<io::Error>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("framing", &self.framing)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl ResponseBody {
    /// Marks the body ended when nothing of it is left, and hands the connection back if it
    /// can carry another request.
    fn check_end(&mut self) {
        if self.ended || self.framing != Framing::Length(0) {
            return;
        }
        self.ended = true;
        if let Some(mut connection) = self.connection.take()
            && connection.carried_one()
            && self.reusable
            && self.upload.finished
            && !self.upload.failed
            && connection.read.is_empty()
        {
            connection.write.clear();
            self.pool.recycle(connection);
        }
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let Some(connection) = self.connection.as_mut() else {
            return Poll::Ready(None);
        };
        if let Err(error) = self
            .upload
            .poll_progress(cx, &mut connection.io, &mut connection.write)
        {
            return Poll::Ready(Some(Err(error)));
        }
        loop {
            let read = &mut connection.read;
            match self.framing {
                Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(remaining) => {
                    if !read.is_empty() {
                        let n = remaining.min(read.len() as u64) as usize;
                        self.framing = Framing::Length(remaining - n as u64);
                        return Poll::Ready(Some(Ok(Frame::data(read.split_to(n).freeze()))));
                    }
                }
                Framing::UntilClose => {
                    if !read.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(read.split().freeze()))));
                    }
                }
                Framing::Chunked(mut chunk) => {
                    let decoded = read_chunked(&mut chunk, read);
                    self.framing = Framing::Chunked(chunk);
                    match decoded {
                        Err(error) => return Poll::Ready(Some(Err(error))),
                        Ok(Some(frame)) => {
                            if frame.as_ref().is_none_or(Frame::is_trailers) {
                                self.framing = Framing::Length(0);
                            }
                            return Poll::Ready(frame.map(Ok));
                        }
                        Ok(None) => {}
                    }
                }
            }
            match ready!(poll_read(cx, &mut connection.io, &mut connection.read)) {
                Ok(0) if self.framing == Framing::UntilClose => {
                    self.framing = Framing::Length(0);
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the end of the response body",
                    ))));
                }
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(error) = this.broken.take() {
            return Poll::Ready(Some(Err(error.into())));
        }
        let polled = ready!(this.poll_data(cx));
        match polled {
            Some(Err(error)) => {
                // The connection is done for. The failure is reported on the next poll: the
                // downstream side sends what it holds (the head, the data so far) when a poll
                // finds nothing ready, and a failure reported now would discard it.
                this.reusable = false;
                this.connection = None;
                this.framing = Framing::UntilClose;
                this.broken = Some(error);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(Ok(frame)) => {
                this.check_end();
                Poll::Ready(Some(Ok(frame)))
            }
            None => {
                this.check_end();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Length(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(remaining) => SizeHint::with_exact(remaining),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body with nothing left may be dropped unread.
        self.check_end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::EndpointPool;
    use crate::upstream::secure::Security;
    use http::Request;
    use http_body_util::BodyExt;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio::net::TcpStream;

    fn head(bytes: &[u8], head_only: bool) -> io::Result<Option<Head>> {
        parse_head(&mut BytesMut::from(bytes), head_only)
    }

    fn framing(bytes: &[u8]) -> (Framing, bool) {
        let head = head(bytes, false).unwrap().expect("a complete head");
        (head.framing, head.keep_alive)
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let cases: &[(&[u8], Framing, bool)] = &[
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                Framing::Length(5),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
                Framing::Chunked(Chunk::Size),
                true,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n", Framing::UntilClose, false),
            (
                b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\n",
                Framing::Length(0),
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\n\r\n",
                Framing::Length(0),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                Framing::Length(1),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                Framing::Length(1),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n",
                Framing::Length(1),
                true,
            ),
        ];
        for (bytes, expected, keep_alive) in cases {
            assert_eq!(
                framing(bytes),
                (*expected, *keep_alive),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let after_head = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true).unwrap();
        assert_eq!(after_head.unwrap().framing, Framing::Length(0));
    }

    #[test]
    fn interim_responses_are_skipped_and_hop_by_hop_fields_dropped() {
        let mut read = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n\
               Keep-Alive: timeout=5\r\nX-Kept: a\r\nx-kept: b\r\nContent-Length: 2\r\n\r\nok"[..],
        );
        let head = parse_head(&mut read, false).unwrap().unwrap();
        assert_eq!(head.status, StatusCode::CREATED);
        let names: Vec<&str> = head.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept", "content-length"]);
        assert_eq!(head.headers.get_all("x-kept").iter().count(), 2);
        assert_eq!(&read[..], b"ok", "the body stays in the buffer");
    }

    #[test]
    fn a_partial_head_waits_and_a_bad_one_is_an_error() {
        assert!(
            head(b"HTTP/1.1 200 OK\r\ncontent-le", false)
                .unwrap()
                .is_none()
        );
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 999x OK\r\n\r\n",
            b"SMTP ready\r\n\r\n",
        ] {
            assert!(
                head(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn encoded(parts: &http::request::Parts, hint: SizeHint) -> (String, BodyFraming) {
        let mut out = Vec::new();
        let framing = encode_head(parts, None, &hint, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    }

    /// `request` to send, borrowing its head.
    fn outgoing(parts: &http::request::Parts, body: Body) -> Outgoing<'_> {
        Outgoing {
            parts,
            host: None,
            authority: None,
            body,
        }
    }

    #[test]
    fn request_heads_frame_the_body_by_its_size() {
        let get = parts(
            Method::GET,
            "/a?b=c",
            &[("host", "svc"), ("content-length", "0")],
        );
        assert_eq!(
            encoded(&get, SizeHint::with_exact(0)),
            (
                "GET /a?b=c HTTP/1.1\r\nhost: svc\r\ncontent-length: 0\r\n\r\n".to_owned(),
                BodyFraming::Length
            )
        );
        let bare_get = parts(Method::GET, "/", &[("host", "svc"), ("x-a", "1")]);
        assert_eq!(
            encoded(&bare_get, SizeHint::with_exact(0)).0,
            "GET / HTTP/1.1\r\nhost: svc\r\nx-a: 1\r\n\r\n"
        );
        let mut out = Vec::new();
        let rewritten = HeaderValue::from_static("other");
        encode_head(
            &bare_get,
            Some(&rewritten),
            &SizeHint::with_exact(0),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nhost: other\r\nx-a: 1\r\n\r\n",
            "a rewritten host replaces the request's"
        );
        let post = parts(Method::POST, "/", &[("transfer-encoding", "chunked")]);
        assert_eq!(
            encoded(&post, SizeHint::with_exact(0)).0,
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(
            encoded(&post, SizeHint::with_exact(12)).0,
            "POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n"
        );
        assert_eq!(
            encoded(&post, SizeHint::default()),
            (
                "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n".to_owned(),
                BodyFraming::Chunked
            )
        );
    }

    /// An endpoint that answers every request on one connection with `responses` in turn,
    /// and reports each request's bytes.
    async fn endpoint(
        responses: Vec<&'static [u8]>,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            for response in responses {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                stream.write_all(response).await.unwrap();
                let _ = seen.send(request);
            }
            // Keep the connection open until the client is done with it.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        });
        (address, requests)
    }

    #[tokio::test]
    async fn a_connection_carries_requests_one_after_another_through_its_pool() {
        let (address, mut requests) = endpoint(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ])
        .await;
        let pool = EndpointPool::new(address, None, None, None, Security::Plain);
        let mut connection =
            Connection::new(Io::Plain(TcpStream::connect(address).await.unwrap()), None);
        for (body, expected) in [("first", &b"hello"[..]), ("", b"abc")] {
            let head = parts(Method::POST, "/upload", &[("host", "svc")]);
            let request = outgoing(&head, crate::body::full(body));
            let response = connection.send(request, pool.mine().clone()).await.unwrap();
            assert_eq!(response.status(), 200);
            let got = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&got[..], expected);
            let sent = requests.recv().await.unwrap();
            let sent = String::from_utf8(sent).unwrap();
            assert!(
                sent.starts_with("POST /upload HTTP/1.1\r\nhost: svc\r\n"),
                "{sent}"
            );
            assert_eq!(pool.idle_connections(), 1, "read to its end, it went back");
            connection = pool.take_idle().expect("the pooled connection");
        }
    }

    #[tokio::test]
    async fn an_early_answer_to_a_streamed_upload_comes_through() {
        // The endpoint answers as soon as it has the head, while the body is still coming.
        let (address, _requests) = endpoint(vec![
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
        ])
        .await;
        let pool = EndpointPool::new(address, None, None, None, Security::Plain);
        let connection =
            Connection::new(Io::Plain(TcpStream::connect(address).await.unwrap()), None);
        let (feed, body) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let mut body = body;
        let body = http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            body.poll_recv(cx)
        }))
        .boxed();
        feed.send(Ok(Frame::data(Bytes::from_static(b"part"))))
            .await
            .unwrap();
        let head = parts(Method::POST, "/", &[("host", "svc")]);
        let response = connection
            .send(outgoing(&head, body), pool.mine().clone())
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
        drop(response);
        assert_eq!(
            pool.idle_connections(),
            0,
            "a connection whose request never finished is not reused"
        );
        drop(feed);
    }
}
