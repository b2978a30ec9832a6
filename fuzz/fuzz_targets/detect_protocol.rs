//! Any bytes, as the first bytes of a connection: classifying them never panics and a decision,
//! once made, holds whatever follows; detecting over a stream that delivers them in arbitrary
//! pieces agrees with the classification, and `Prefixed` hands back exactly the bytes the
//! client sent, in order, however they are read.
//!
//! The first input byte sets the piece size the stream delivers and the second the buffer size
//! the reader uses; the rest is what the client sends.

#![no_main]

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use trellis_proxy::detect::{self, H2_PREFACE, Prefixed, Protocol};

/// A client that sends `data` in pieces of `piece` bytes, then closes.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.piece.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|input: &[u8]| {
    let [piece, read_size, data @ ..] = input else {
        return;
    };
    let (piece, read_size) = (
        usize::from(*piece % 32) + 1,
        usize::from(*read_size % 64) + 1,
    );

    let decided = detect::classify(data);
    for end in 0..data.len().min(64) {
        if let Some(early) = detect::classify(&data[..end]) {
            assert_eq!(
                Some(early),
                decided,
                "the decision on {end} bytes changed later"
            );
            break;
        }
    }

    runtime().block_on(async {
        let mut stream = Pieces { data, piece };
        let (protocol, prefix) = detect::detect(&mut stream, Duration::from_secs(60))
            .await
            .expect("reading memory never fails");
        assert!(
            data.starts_with(&prefix),
            "the prefix is what the client sent first"
        );
        assert!(
            prefix.len() <= H2_PREFACE.len(),
            "detection reads no more than the HTTP/2 preface"
        );
        // Either the bytes read decided, or the client closed before they could.
        match detect::classify(&prefix) {
            Some(by_prefix) => assert_eq!(protocol, by_prefix),
            None => {
                assert_eq!(protocol, Protocol::Opaque);
                assert_eq!(
                    prefix.len(),
                    data.len(),
                    "only the end of the stream stops detection early"
                );
            }
        }
        if decided.is_some() {
            assert_eq!(Some(protocol), decided);
        }

        let mut replayed = Prefixed::new(prefix, stream);
        let mut received = Vec::with_capacity(data.len());
        let mut buffer = vec![0u8; read_size];
        loop {
            let n = replayed
                .read(&mut buffer)
                .await
                .expect("reading memory never fails");
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buffer[..n]);
        }
        assert_eq!(received, data, "the bytes come back exactly as sent");
    });
});
