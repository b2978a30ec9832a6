//! HTTP/1.1 on the wire, as both sides of the proxy speak it: the chunked decoder that reads
//! bodies, and the encoder that writes body frames (chunked or not) and header fields.

use std::io::{self, Write as _};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;

/// Heads (and trailer blocks) larger than this are refused.
pub(crate) const MAX_HEAD_BYTES: usize = crate::listener::MAX_HEADER_BYTES;
/// Header lines a head may have.
pub(crate) const MAX_HEADERS: usize = 100;
/// The read buffer grows by at least this much before each read.
pub(crate) const READ_SIZE: usize = 8 * 1024;
/// A chunk-size line (with extensions) longer than this is refused.
const MAX_CHUNK_LINE: usize = 1024;

thread_local! {
    /// Emptied header maps kept for reuse on this worker thread.
    static SPARE_MAPS: std::cell::RefCell<Vec<HeaderMap>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare maps kept per thread, at most.
const SPARE_MAPS_KEPT: usize = 16;
/// Maps with room for more fields than this are not kept.
const SPARE_MAP_MAX_CAPACITY: usize = 128;

/// Keeps `map`, emptied, for a later [`spare_map`]: a request's map, once the request is done
/// with it, becomes a response's, rather than one map freed and another allocated per request.
pub(crate) fn keep_map(mut map: HeaderMap) {
    if map.capacity() == 0 || map.capacity() > SPARE_MAP_MAX_CAPACITY {
        return;
    }
    map.clear();
    SPARE_MAPS.with_borrow_mut(|spare| {
        if spare.len() < SPARE_MAPS_KEPT {
            spare.push(map);
        }
    });
}

/// An empty map with room for `fields`: a kept one when there is one.
pub(crate) fn spare_map(fields: usize) -> HeaderMap {
    SPARE_MAPS
        .with_borrow_mut(Vec::pop)
        .filter(|map| map.capacity() >= fields)
        .unwrap_or_else(|| HeaderMap::with_capacity(fields))
}

/// Whether a `transfer-encoding` value's last coding is `chunked` (RFC 9112 §6.3): only then
/// is the body chunked.
pub(crate) fn ends_in_chunked(transfer_encoding: &[u8]) -> bool {
    transfer_encoding
        .rsplit(|b| *b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Appends one header field line.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a body frame as it goes on the wire: data as it is (or as one chunk), trailers as
/// the last chunk and the trailer section (a body sent with a length has no room for them).
/// Returns whether the frame ended the body (trailers do).
pub(crate) fn encode_frame(frame: Frame<Bytes>, chunked: bool, out: &mut Vec<u8>) -> bool {
    match frame.into_data() {
        Ok(data) if chunked => {
            if !data.is_empty() {
                let _ = write!(out, "{:x}\r\n", data.len());
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            }
            false
        }
        Ok(data) => {
            out.extend_from_slice(&data);
            false
        }
        Err(frame) => {
            if chunked {
                out.extend_from_slice(b"0\r\n");
                if let Ok(trailers) = frame.into_trailers() {
                    for (name, value) in &trailers {
                        write_field(out, name, value);
                    }
                }
                out.extend_from_slice(b"\r\n");
            }
            true
        }
    }
}

/// Appends the end of a body that ended without trailers.
pub(crate) fn encode_end(chunked: bool, out: &mut Vec<u8>) {
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// At the CRLF after a chunk's data.
    DataEnd,
    /// At the trailer section after the last chunk.
    Trailers,
}

/// What one step of the chunked decoder found.
enum Decoded {
    Data(Chunk, Bytes),
    /// The last chunk and the trailer section (if it had any fields) were read.
    End(Option<HeaderMap>),
    /// The decoder moved on without data; decode again.
    Moved(Chunk),
    /// More bytes are needed.
    NeedMore(Chunk),
}

/// Reads what `read` holds of a chunked body, the decoder standing at `chunk` (moved on as it
/// goes): `Ok(None)` when more bytes are needed, `Ok(Some(Some(frame)))` for data or for the
/// trailers that end the body, `Ok(Some(None))` when it ended without trailers.
pub(crate) fn read_chunked(
    chunk: &mut Chunk,
    read: &mut BytesMut,
) -> io::Result<Option<Option<Frame<Bytes>>>> {
    loop {
        match decode_chunk(*chunk, read)? {
            Decoded::Data(next, data) => {
                *chunk = next;
                return Ok(Some(Some(Frame::data(data))));
            }
            Decoded::End(trailers) => return Ok(Some(trailers.map(Frame::trailers))),
            Decoded::Moved(next) => *chunk = next,
            Decoded::NeedMore(next) => {
                *chunk = next;
                return Ok(None);
            }
        }
    }
}

fn decode_chunk(chunk: Chunk, read: &mut BytesMut) -> io::Result<Decoded> {
    match chunk {
        Chunk::Size => match httparse::parse_chunk_size(read) {
            Ok(httparse::Status::Complete((used, size))) => {
                read.advance(used);
                Ok(Decoded::Moved(if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                }))
            }
            Ok(httparse::Status::Partial) if read.len() > MAX_CHUNK_LINE => {
                Err(invalid("chunk-size line too long"))
            }
            Ok(httparse::Status::Partial) => Ok(Decoded::NeedMore(chunk)),
            Err(_) => Err(invalid("invalid chunk size")),
        },
        Chunk::Data(remaining) => {
            if read.is_empty() {
                return Ok(Decoded::NeedMore(chunk));
            }
            let n = remaining.min(read.len() as u64) as usize;
            let data = read.split_to(n).freeze();
            let left = remaining - n as u64;
            Ok(Decoded::Data(
                if left == 0 {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left)
                },
                data,
            ))
        }
        Chunk::DataEnd => {
            if read.len() < 2 {
                return Ok(Decoded::NeedMore(chunk));
            }
            if &read[..2] != b"\r\n" {
                return Err(invalid("missing CRLF after chunk data"));
            }
            read.advance(2);
            Ok(Decoded::Moved(Chunk::Size))
        }
        Chunk::Trailers => {
            if read.starts_with(b"\r\n") {
                read.advance(2);
                return Ok(Decoded::End(None));
            }
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            match httparse::parse_headers(read, &mut slots) {
                Ok(httparse::Status::Complete((used, fields))) => {
                    let mut trailers = HeaderMap::with_capacity(fields.len());
                    for field in fields {
                        if let (Ok(name), Ok(value)) = (
                            HeaderName::from_bytes(field.name.as_bytes()),
                            HeaderValue::from_bytes(field.value),
                        ) {
                            trailers.append(name, value);
                        }
                    }
                    read.advance(used);
                    Ok(Decoded::End(Some(trailers)))
                }
                Ok(httparse::Status::Partial) if read.len() > MAX_HEAD_BYTES => {
                    Err(invalid("the trailers are too large"))
                }
                Ok(httparse::Status::Partial) => Ok(Decoded::NeedMore(chunk)),
                Err(_) => Err(invalid("invalid trailers")),
            }
        }
    }
}

pub(crate) fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the chunked decoder over `input` delivered in pieces of `step` bytes.
    fn decode_all(input: &[u8], step: usize) -> io::Result<(Vec<u8>, Option<HeaderMap>)> {
        let mut read = BytesMut::new();
        let mut chunk = Chunk::Size;
        let mut data = Vec::new();
        let mut pieces = input.chunks(step);
        loop {
            match decode_chunk(chunk, &mut read)? {
                Decoded::Data(next, bytes) => {
                    data.extend_from_slice(&bytes);
                    chunk = next;
                }
                Decoded::Moved(next) => chunk = next,
                Decoded::End(trailers) => return Ok((data, trailers)),
                Decoded::NeedMore(next) => {
                    chunk = next;
                    match pieces.next() {
                        Some(piece) => read.extend_from_slice(piece),
                        None => return Err(invalid("input ended")),
                    }
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let input =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\ngrpc-status: 0\r\n\r\n";
        for step in [1, 2, 3, 7, input.len()] {
            let (data, trailers) = decode_all(input, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert_eq!(trailers.unwrap()["grpc-status"], "0");
        }
        let (data, trailers) = decode_all(b"3\r\nabc\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!((data.as_slice(), trailers), (&b"abc"[..], None));
        assert!(decode_all(b"zz\r\n", 8).is_err());
        assert!(decode_all(b"3\r\nabcX\r\n", 8).is_err());
        assert!(decode_all(&[b'1'; MAX_CHUNK_LINE + 2], MAX_CHUNK_LINE + 2).is_err());
    }
}
