//! HTTP/1.1 from clients, spoken by the connection's own task: it reads a request head, runs
//! the request through the connection manager on the same task, writes the response, and reads
//! the next head into the same buffer. No task per request and no channel between the request
//! and the connection.
//!
//! Requests are framed as RFC 9112 §6 says: chunked when `transfer-encoding` ends in `chunked`,
//! `content-length` otherwise, else no body. A malformed head gets 400, one over the size or
//! field-count limit 431, and the connection closes. Responses carry `content-length` when the
//! body's size is known, else are chunked (or, to an HTTP/1.0 client, end with the connection);
//! nothing follows the head of a response to `HEAD`, or of a 1xx, 204 or 304. Keep-alive follows
//! RFC 9112 §9.3; pipelined requests are answered in order. `expect: 100-continue` is answered
//! when the request body is first read, unless the response came first. While a request with
//! no body is in progress, the connection is watched: a client that hangs up cancels it. A
//! `101` answer to an upgrade hands the socket, with whatever was read past the head, to the
//! request's [`OnUpgrade`].

use std::future::{Future, poll_fn};
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri, Version};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::body::{Body, BoxError};
use crate::detect::Prefixed;
use crate::h1::{
    Chunk, MAX_HEAD_BYTES, MAX_HEADERS, READ_SIZE, encode_end, encode_frame, ends_in_chunked,
    read_chunked, write_field,
};
use crate::http::Downstream;
use crate::transport::{Io, ReadHalf, WriteHalf};

/// Response bytes gathered before they are written, even when the body has more ready.
const WRITE_HIGH: usize = 64 * 1024;
/// Header fields a request's map has room for, at least.
const REQUEST_MAP_CAPACITY: usize = 16;

/// The reading side of a client connection: the socket and the bytes read from it and not yet
/// taken. It belongs to the connection between requests and to the request body while there is
/// one.
#[derive(Debug)]
struct ReadSide {
    io: ReadHalf,
    buffer: BytesMut,
}

impl ReadSide {
    /// Reads what the socket has, growing the buffer first.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buffer.reserve(READ_SIZE);
        pin!(self.io.read_buf(&mut self.buffer)).poll(cx)
    }
}

/// Serves HTTP/1.1 on `io` (whose first bytes, read to tell the protocol, are `prefix`) until
/// the client closes, a response ends the connection, or the connection is asked to close
/// (see [`crate::listener::Activity::close`]).
pub(crate) async fn serve(downstream: Arc<Downstream>, io: Io, prefix: Bytes) -> io::Result<()> {
    let (read, mut write) = io.into_split();
    let mut buffer = BytesMut::with_capacity(READ_SIZE.max(prefix.len()));
    buffer.extend_from_slice(&prefix);
    let mut side = Some(ReadSide { io: read, buffer });
    let mut out = Vec::with_capacity(1024);
    // The last response's header map, cleared: the next request's fields are parsed into it.
    let mut spare_map: Option<HeaderMap> = None;
    let activity = &downstream.activity;
    loop {
        let Some(reading) = side.as_mut() else {
            return Ok(());
        };
        let head = match poll_fn(|cx| poll_head(cx, reading, activity, &mut spare_map)).await {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(()),
            Err(refused) => return refuse(&mut write, &mut out, refused).await,
        };
        let RequestHead {
            mut parts,
            framing,
            mut keep_alive,
            expect_continue,
            upgrade,
        } = head;
        let head_only = parts.method == Method::HEAD;
        if parts.method == Method::CONNECT {
            // What follows a CONNECT's answer is a tunnel, which this proxy does not offer.
            keep_alive = false;
        }
        let http10 = parts.version == Version::HTTP_10;
        let upgraded = upgrade.then(|| {
            let (sender, receiver) = oneshot::channel();
            parts
                .extensions
                .insert(OnUpgrade(Arc::new(Mutex::new(Some(receiver)))));
            sender
        });

        // The request body takes the reading side while it lasts and hands it back at its end.
        let (body, home) = match framing {
            None => (crate::body::ClientBody::Empty, None),
            Some(framing) => {
                let home = Arc::new(Mutex::new(Home::default()));
                let body = RequestBody {
                    side: side.take(),
                    framing,
                    continue_due: expect_continue.then_some(0),
                    home: home.clone(),
                };
                (crate::body::ClientBody::Http1(body), Some(home))
            }
        };

        let handling = pin!(crate::http::handle_parts(&downstream, parts, body));
        let Some(response) = respond_or_hang_up(handling, side.as_mut()).await else {
            // The client hung up: the request is dropped, and with it the exchange upstream.
            return Ok(());
        };
        if let Some(home) = &home {
            home.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .responded = true;
        }

        let (mut response_parts, body) = response.into_parts();
        let switching = response_parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if activity.closing() {
            keep_alive = false;
        }
        let framing = encode_head(
            &response_parts,
            &body.size_hint(),
            head_only,
            http10,
            keep_alive,
            &mut out,
        );
        if framing == ResponseFraming::UntilClose {
            keep_alive = false;
        }
        response_parts.headers.clear();
        spare_map = Some(response_parts.headers);

        if switching && let Some(sender) = upgraded {
            flush(&mut write, &mut out).await?;
            drop(body);
            let Some(side) = side.take() else {
                return Ok(()); // the upgrade request had a body still unread: no tunnel
            };
            let io = crate::transport::reunite(side.io, write)
                .ok_or_else(|| io::Error::other("the halves of one connection did not match"))?;
            let _ = sender.send(Prefixed::new(side.buffer.freeze(), io));
            return Ok(());
        }

        let complete = write_body(&mut write, &mut out, body, framing).await?;
        if !complete {
            return Ok(());
        }
        if let Some(home) = home {
            // A body the endpoint did not read to its end leaves the connection's next bytes
            // unknown: no side comes back, and the connection closes at the top of the loop.
            side = home
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .side
                .take();
        }
        if !keep_alive {
            return Ok(());
        }
    }
}

/// A request head as read, with what it says about the body and the connection.
struct RequestHead {
    parts: http::request::Parts,
    /// `None`: the request has no body.
    framing: Option<Framing>,
    keep_alive: bool,
    expect_continue: bool,
    /// An HTTP/1.1 request that asks to switch protocols.
    upgrade: bool,
}

/// Where a request body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes to go.
    Length(u64),
    Chunked(Chunk),
}

/// Why a request head is answered with an error and the connection closed.
#[derive(Debug)]
enum Refused {
    /// 400: the head is malformed.
    Invalid(&'static str),
    /// 431: the head is over the size or field-count limit.
    TooLarge,
    /// The connection failed: nothing can be answered.
    Io(io::Error),
}

/// Reads until a request head is complete. `None` when the client closes between requests,
/// or the connection is asked to close and no request has begun.
fn poll_head(
    cx: &mut Context<'_>,
    side: &mut ReadSide,
    activity: &crate::listener::Activity,
    spare_map: &mut Option<HeaderMap>,
) -> Poll<Result<Option<RequestHead>, Refused>> {
    loop {
        if !side.buffer.is_empty() {
            activity.read();
            if let Some(head) = parse_head(&mut side.buffer, spare_map)? {
                return Poll::Ready(Ok(Some(head)));
            }
            if side.buffer.len() > MAX_HEAD_BYTES {
                return Poll::Ready(Err(Refused::TooLarge));
            }
        } else if activity.closing() {
            return Poll::Ready(Ok(None));
        }
        match ready!(side.poll_fill(cx)) {
            Ok(0) if side.buffer.is_empty() => return Poll::Ready(Ok(None)),
            Ok(0) => return Poll::Ready(Err(Refused::Invalid("the head ended early"))),
            Ok(_) => {}
            Err(error) => return Poll::Ready(Err(Refused::Io(error))),
        }
    }
}

/// Parses a request head at the front of `bytes` as the server does: `Ok(None)` while it is
/// incomplete, `Err` with the status the server answers a head it refuses with.
pub fn parse_request(bytes: &[u8]) -> Result<Option<http::request::Parts>, StatusCode> {
    match parse_head(&mut BytesMut::from(bytes), &mut None) {
        Ok(head) => Ok(head.map(|head| head.parts)),
        Err(Refused::TooLarge) => Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(Refused::Invalid(_) | Refused::Io(_)) => Err(StatusCode::BAD_REQUEST),
    }
}

/// Parses a request head at the front of `buffer`, taking it out; `None` while it is
/// incomplete. Header values are slices of the head's bytes, not copies.
fn parse_head(
    buffer: &mut BytesMut,
    spare_map: &mut Option<HeaderMap>,
) -> Result<Option<RequestHead>, Refused> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let length = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        buffer,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(length)) if length > MAX_HEAD_BYTES => {
            return Err(Refused::TooLarge);
        }
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refused::TooLarge),
        Err(_) => return Err(Refused::Invalid("malformed request head")),
    };
    let method = Method::from_bytes(request.method.unwrap_or_default().as_bytes())
        .map_err(|_| Refused::Invalid("invalid method"))?;
    let http10 = request.version == Some(0);
    let base = buffer.as_ptr() as usize;
    let offset = |part: &[u8]| part.as_ptr() as usize - base;
    let path = request.path.unwrap_or_default().as_bytes();
    let path_span = (offset(path), offset(path) + path.len());

    let mut keep_alive = !http10;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut content_length: Option<u64> = None;
    let mut expect_continue = false;
    let mut upgrade = false;
    // Where each field's name and value sit in the head.
    let mut spans = [[0u32; 4]; MAX_HEADERS];
    let fields = request.headers.len();
    for (field, span) in request.headers.iter().zip(spans.iter_mut()) {
        let name = field.name.as_bytes();
        let value = field.value;
        let is = |other: &HeaderName| name.eq_ignore_ascii_case(other.as_str().as_bytes());
        if is(&header::CONTENT_LENGTH) {
            let length = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Refused::Invalid("invalid content-length"))?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(Refused::Invalid("conflicting content-length values"));
            }
            content_length = Some(length);
        } else if is(&header::TRANSFER_ENCODING) {
            transfer_encoding = true;
            chunked = ends_in_chunked(value);
        } else if is(&header::CONNECTION) {
            for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive |= http10;
                }
            }
        } else if is(&header::EXPECT) {
            expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if is(&header::UPGRADE) {
            upgrade = !http10;
        }
        let (name_at, value_at) = (offset(name), offset(value));
        *span = [
            name_at as u32,
            (name_at + name.len()) as u32,
            value_at as u32,
            (value_at + value.len()) as u32,
        ];
    }
    // RFC 9112 §6.1, §6.3: a request body's framing must be unambiguous.
    if transfer_encoding && (!chunked || http10 || content_length.is_some()) {
        return Err(Refused::Invalid("unusable transfer-encoding"));
    }

    let head = buffer.split_to(length).freeze();
    let uri = Uri::from_maybe_shared(head.slice(path_span.0..path_span.1))
        .map_err(|_| Refused::Invalid("invalid request target"))?;
    let mut headers = match spare_map.take() {
        Some(map) if map.capacity() >= fields => map,
        _ => HeaderMap::with_capacity(fields.max(REQUEST_MAP_CAPACITY)),
    };
    for [name_start, name_end, value_start, value_end] in &spans[..fields] {
        let name = HeaderName::from_bytes(&head[*name_start as usize..*name_end as usize])
            .map_err(|_| Refused::Invalid("invalid header name"))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(*value_start as usize..*value_end as usize))
                .map_err(|_| Refused::Invalid("invalid header value"))?;
        headers.append(name, value);
    }
    if expect_continue {
        // Answered here; the endpoint gets the body without being asked.
        headers.remove(header::EXPECT);
    }

    let framing = if chunked {
        Some(Framing::Chunked(Chunk::Size))
    } else {
        content_length
            .filter(|length| *length > 0)
            .map(Framing::Length)
    };
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    Ok(Some(RequestHead {
        parts,
        expect_continue: expect_continue && framing.is_some(),
        framing,
        keep_alive,
        upgrade,
    }))
}

/// Writes the answer to a refused head and ends the connection.
async fn refuse(write: &mut WriteHalf, out: &mut Vec<u8>, refused: Refused) -> io::Result<()> {
    let status = match refused {
        Refused::Io(error) => return Err(error),
        Refused::Invalid(reason) => {
            tracing::debug!(reason, "malformed request head");
            "400 Bad Request"
        }
        Refused::TooLarge => "431 Request Header Fields Too Large",
    };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    write.write_all(out).await?;
    write.shutdown().await
}

/// Runs the request until its response head is ready. While the request has no body still
/// to read, the connection is watched: `None` when the client hangs up first. Bytes that
/// arrive meanwhile (a pipelined request) stay in the buffer, up to the room it has.
async fn respond_or_hang_up<F>(
    mut handling: Pin<&mut F>,
    mut side: Option<&mut ReadSide>,
) -> Option<Response<Body>>
where
    F: Future<Output = Result<Response<Body>, std::convert::Infallible>>,
{
    poll_fn(|cx| {
        if let Poll::Ready(Ok(response)) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(response));
        }
        while let Some(reading) = side.as_deref_mut() {
            // Only into room the buffer already has: growing it now would copy it (the head
            // just parsed still shares it).
            if reading.buffer.capacity() == reading.buffer.len() {
                side = None;
                break;
            }
            match pin!(reading.io.read_buf(&mut reading.buffer)).poll(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => {}
            }
        }
        Poll::Pending
    })
    .await
}

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseFraming {
    /// No body follows the head.
    None,
    /// This many bytes.
    Length(u64),
    Chunked,
    /// Up to the close.
    UntilClose,
}

/// Writes the status line and header fields, and the framing fields the body needs. The
/// proxy frames every response itself: the fields that framed it upstream are not passed on.
fn encode_head(
    parts: &http::response::Parts,
    hint: &SizeHint,
    head_only: bool,
    http10: bool,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> ResponseFraming {
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    // After HEAD and 304 the length is the one a GET would have had, as the endpoint said.
    let keeps_length = head_only || status == StatusCode::NOT_MODIFIED;
    // The first `content-length`, read only when the body does not know its own size.
    let mut declared: Option<u64> = None;
    let mut length_seen = false;
    let mut dated = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH && !keeps_length {
            if !length_seen && hint.exact().is_none() {
                declared = value.to_str().ok().and_then(|v| v.parse().ok());
            }
            length_seen = true;
            continue;
        }
        dated |= name == header::DATE;
        let framing_field = name == header::TRANSFER_ENCODING;
        let connection_field = !switching
            && (name == header::CONNECTION || name == "keep-alive" || name == header::UPGRADE);
        if !framing_field && !connection_field {
            write_field(out, name, value);
        }
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        date::write(out);
        out.extend_from_slice(b"\r\n");
    }
    let no_body = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        ResponseFraming::None
    } else if let Some(length) = hint.exact().or(declared) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
        out.extend_from_slice(b"\r\n");
        ResponseFraming::Length(length)
    } else if http10 {
        ResponseFraming::UntilClose
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        ResponseFraming::Chunked
    };
    if !switching {
        let keep_alive = keep_alive && framing != ResponseFraming::UntilClose;
        if !keep_alive {
            out.extend_from_slice(b"connection: close\r\n");
        } else if http10 {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// One step of writing a response body.
enum Step {
    Frame(Option<Result<Frame<Bytes>, BoxError>>),
    /// The body has nothing ready: what is gathered goes out meanwhile.
    Flush,
}

/// Writes the response body after its head (in `out`): frames are gathered and written when
/// the body has nothing more ready, or enough has gathered. Returns whether the response was
/// written whole, so that the connection can carry another.
async fn write_body(
    write: &mut WriteHalf,
    out: &mut Vec<u8>,
    mut body: Body,
    framing: ResponseFraming,
) -> io::Result<bool> {
    let chunked = framing == ResponseFraming::Chunked;
    let mut remaining = match framing {
        ResponseFraming::None => {
            flush(write, out).await?;
            return Ok(true);
        }
        ResponseFraming::Length(length) => length,
        ResponseFraming::Chunked | ResponseFraming::UntilClose => u64::MAX,
    };
    loop {
        let step = poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Step::Flush),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Step::Frame(frame)),
        })
        .await;
        match step {
            Step::Flush => {
                flush(write, out).await?;
            }
            Step::Frame(Some(Ok(mut frame))) => {
                if let Some(data) = frame.data_mut() {
                    let length = data.len() as u64;
                    if length > remaining {
                        // More than the head announced: the rest cannot be framed.
                        flush(write, out).await?;
                        return Ok(false);
                    }
                    remaining -= length;
                }
                let ended = encode_frame(frame, chunked, out);
                if ended || out.len() >= WRITE_HIGH {
                    flush(write, out).await?;
                }
                if ended {
                    return Ok(written_whole(framing, remaining));
                }
            }
            Step::Frame(None) => {
                encode_end(chunked, out);
                flush(write, out).await?;
                return Ok(written_whole(framing, remaining));
            }
            Step::Frame(Some(Err(error))) => {
                // What arrived before the failure goes out; the connection then ends, so the
                // client sees a response cut short rather than a complete one.
                tracing::debug!(%error, "response body broke off");
                flush(write, out).await?;
                return Ok(false);
            }
        }
    }
}

/// Writes what `out` gathered and empties it.
async fn flush(write: &mut WriteHalf, out: &mut Vec<u8>) -> io::Result<()> {
    write.write_all(out).await?;
    // A socket sends as it is written; TLS may hold the end of a record until flushed.
    write.flush().await?;
    out.clear();
    Ok(())
}

/// Whether a body that ended with `remaining` bytes of its framing left was written whole.
fn written_whole(framing: ResponseFraming, remaining: u64) -> bool {
    match framing {
        ResponseFraming::Length(_) => remaining == 0,
        ResponseFraming::Chunked | ResponseFraming::None => true,
        ResponseFraming::UntilClose => false,
    }
}

/// Where a request body hands the reading side back to its connection.
#[derive(Debug, Default)]
struct Home {
    /// Handed back once the body has been read to its end: the connection's next bytes are
    /// then the next request's. A body that ends early keeps it, and the connection closes.
    side: Option<ReadSide>,
    /// The response head has been written: too late for `100 Continue`.
    responded: bool,
}

/// A request body read from its client's connection.
#[derive(Debug)]
pub struct RequestBody {
    side: Option<ReadSide>,
    framing: Framing,
    /// Bytes of `100 Continue` written, while it is still owed.
    continue_due: Option<usize>,
    home: Arc<Mutex<Home>>,
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl RequestBody {
    /// Hands the reading side back to the connection if the body has been read to its end;
    /// otherwise lets it go.
    fn go_home(&mut self) {
        if let Some(side) = self.side.take()
            && self.framing == Framing::Length(0)
        {
            self.home
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .side = Some(side);
        }
    }

    /// Writes `100 Continue` unless the response has already begun.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (Some(written), Some(side)) = (self.continue_due, self.side.as_ref()) else {
            return Poll::Ready(Ok(()));
        };
        if self
            .home
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .responded
        {
            self.continue_due = None;
            return Poll::Ready(Ok(()));
        }
        let mut written = written;
        while written < CONTINUE.len() {
            written += ready!(side.io.poll_write_through(cx, &CONTINUE[written..]))?;
            self.continue_due = Some(written);
        }
        // Written whole; due until it has left (nothing else writes until the body is read).
        ready!(side.io.poll_flush_through(cx))?;
        self.continue_due = None;
        Poll::Ready(Ok(()))
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if let Err(error) = ready!(self.poll_continue(cx)) {
            return Poll::Ready(Some(Err(error)));
        }
        let Some(side) = self.side.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match self.framing {
                Framing::Length(0) => return Poll::Ready(None),
                Framing::Length(remaining) => {
                    if !side.buffer.is_empty() {
                        let n = remaining.min(side.buffer.len() as u64) as usize;
                        self.framing = Framing::Length(remaining - n as u64);
                        let data = side.buffer.split_to(n).freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(mut chunk) => {
                    let decoded = read_chunked(&mut chunk, &mut side.buffer);
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
            match ready!(side.poll_fill(cx)) {
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the client closed before the end of the request body",
                    ))));
                }
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = ready!(this.poll_data(cx));
        match &polled {
            Some(Err(_)) => {
                // The connection cannot carry another request.
                this.side = None;
            }
            _ if this.framing == Framing::Length(0) => this.go_home(),
            _ => {}
        }
        Poll::Ready(polled.map(|frame| frame.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Length(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(remaining) => SizeHint::with_exact(remaining),
            Framing::Chunked(_) => SizeHint::default(),
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.go_home();
    }
}

/// The client's side of an upgrade: [`OnUpgrade::upgraded`] resolves to the connection once the
/// `101` has been written. (Clones share it: request extensions must be cloneable.)
#[derive(Debug, Clone)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    /// The upgraded connection; an error if the response was not `101` or the connection
    /// failed first.
    pub async fn upgraded(self) -> io::Result<Upgraded> {
        let receiver = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        let not_upgraded = || io::Error::other("the connection was not upgraded");
        receiver
            .ok_or_else(not_upgraded)?
            .await
            .map_err(|_| not_upgraded())
    }
}

/// A client connection after `101 Switching Protocols`: the bytes read past the request head
/// come first, then the socket's own.
pub type Upgraded = Prefixed<Io>;

/// The `date` field's value, formatted once a second per worker thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn write(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        CACHED.with_borrow_mut(|(at, text)| {
            if *at != second {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            out.extend_from_slice(text.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<RequestHead>, Refused> {
        parse_head(&mut BytesMut::from(raw.as_bytes()), &mut None)
    }

    fn complete(raw: &str) -> RequestHead {
        head(raw).expect("a valid head").expect("a complete head")
    }

    #[test]
    fn request_heads_say_how_the_body_is_framed_and_whether_the_connection_stays() {
        let get = complete("GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-One: 1\r\n\r\n");
        assert_eq!(get.parts.uri, "/a?b=1");
        assert_eq!(get.parts.headers["x-one"], "1");
        assert_eq!((get.framing, get.keep_alive), (None, true));

        let post = complete("POST / HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
        assert_eq!(
            (post.framing, post.keep_alive),
            (Some(Framing::Length(5)), false)
        );
        let empty = complete("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(empty.framing, None);
        let chunked = complete("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(chunked.framing, Some(Framing::Chunked(Chunk::Size)));

        let old = complete("GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            (old.parts.version, old.keep_alive),
            (Version::HTTP_10, false)
        );
        let old_kept = complete("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(old_kept.keep_alive);

        let expecting =
            complete("PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(expecting.expect_continue);
        assert!(
            !expecting.parts.headers.contains_key(header::EXPECT),
            "answered here"
        );
        let nothing_to_send = complete("GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        assert!(!nothing_to_send.expect_continue);

        let upgrade = "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(complete(upgrade).upgrade);
        assert!(!complete(&upgrade.replace("1.1", "1.0")).upgrade);
    }

    #[test]
    fn a_partial_head_waits_and_a_bad_one_is_refused() {
        assert!(head("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        let refused = |raw: &str| match head(raw) {
            Err(refused) => refused,
            Ok(_) => panic!("accepted: {raw:?}"),
        };
        for bad in [
            "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(refused(bad), Refused::Invalid(_)), "{bad:?}");
        }
        let same_twice = "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(complete(same_twice).framing, Some(Framing::Length(2)));
        let many: String = (0..=MAX_HEADERS)
            .map(|i| format!("x-{i}: {i}\r\n"))
            .collect();
        let too_many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(refused(&too_many), Refused::TooLarge));
        let huge = format!(
            "GET / HTTP/1.1\r\nx: {}\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert!(matches!(refused(&huge), Refused::TooLarge));

        // As the server answers them.
        assert_eq!(
            parse_request(huge.as_bytes()).unwrap_err(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert_eq!(
            parse_request(b"GET /a b HTTP/1.1\r\n\r\n").unwrap_err(),
            StatusCode::BAD_REQUEST
        );
        assert!(parse_request(b"GET / HTTP/1.1\r\n").unwrap().is_none());
        assert_eq!(
            parse_request(b"GET /x HTTP/1.1\r\n\r\n")
                .unwrap()
                .unwrap()
                .uri,
            "/x"
        );
    }

    #[test]
    fn a_head_leaves_what_follows_it_in_the_buffer() {
        let mut buffer = BytesMut::from(&b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET"[..]);
        let head = parse_head(&mut buffer, &mut None).unwrap().unwrap();
        assert_eq!(head.framing, Some(Framing::Length(2)));
        assert_eq!(&buffer[..], b"hiGET");
    }

    fn encoded(
        response: Response<()>,
        hint: SizeHint,
        head_only: bool,
        http10: bool,
        keep_alive: bool,
    ) -> (String, ResponseFraming) {
        let (parts, ()) = response.into_parts();
        let mut out = Vec::new();
        let framing = encode_head(&parts, &hint, head_only, http10, keep_alive, &mut out);
        (String::from_utf8(out).unwrap(), framing)
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(()).unwrap()
    }

    #[test]
    fn response_heads_are_framed_by_the_proxy() {
        let date = ("date", "Sun, 22 Nov 2026 10:00:00 GMT");
        let ok = response(200, &[date, ("content-type", "text/plain")]);
        let (head, framing) = encoded(ok, SizeHint::with_exact(64), false, false, true);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ndate: Sun, 22 Nov 2026 10:00:00 GMT\r\n\
             content-type: text/plain\r\ncontent-length: 64\r\n\r\n"
        );
        assert_eq!(framing, ResponseFraming::Length(64));

        // Framing and connection fields from upstream are replaced by the proxy's own.
        let streamed = response(
            200,
            &[
                date,
                ("transfer-encoding", "chunked"),
                ("connection", "keep-alive"),
            ],
        );
        let (head, framing) = encoded(streamed, SizeHint::default(), false, false, false);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ndate: Sun, 22 Nov 2026 10:00:00 GMT\r\n\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        assert_eq!(framing, ResponseFraming::Chunked);
        let (head, framing) = encoded(
            response(200, &[date]),
            SizeHint::default(),
            false,
            true,
            true,
        );
        assert_eq!(framing, ResponseFraming::UntilClose);
        assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");
        let (head, _) = encoded(
            response(200, &[date]),
            SizeHint::with_exact(0),
            false,
            true,
            true,
        );
        assert!(head.ends_with("connection: keep-alive\r\n\r\n"), "{head}");

        // After HEAD and 304, the length a GET would have had is passed on.
        let headed = response(200, &[date, ("content-length", "1234")]);
        let (head, framing) = encoded(headed, SizeHint::with_exact(0), true, false, true);
        assert!(head.contains("content-length: 1234\r\n"), "{head}");
        assert_eq!(framing, ResponseFraming::None);
        let (head, framing) = encoded(
            response(204, &[date]),
            SizeHint::default(),
            false,
            false,
            true,
        );
        assert_eq!(
            (head.as_str(), framing),
            (
                "HTTP/1.1 204 No Content\r\ndate: Sun, 22 Nov 2026 10:00:00 GMT\r\n\r\n",
                ResponseFraming::None
            )
        );

        // A switch of protocols keeps its connection fields; a response without a date gets one.
        let switching = response(101, &[("connection", "upgrade"), ("upgrade", "websocket")]);
        let (head, framing) = encoded(switching, SizeHint::default(), false, false, true);
        assert!(
            head.contains("connection: upgrade\r\nupgrade: websocket\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\ndate: "), "{head}");
        assert_eq!(framing, ResponseFraming::None);
    }
}
