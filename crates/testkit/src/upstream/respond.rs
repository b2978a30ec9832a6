//! What the upstream answers to each request, by path:
//!
//! | path | answer |
//! |---|---|
//! | `/echo`, `/echo/...` | 200, JSON: method, path, query, authority, version, headers, body |
//! | `/status/<code>` | `<code>` (200–599), empty body |
//! | `/delay/<ms>` | the plain answer, after `<ms>` milliseconds |
//! | `/stream/<bytes>` | 200, `<bytes>` bytes sent in 16 KiB frames (chunked in HTTP/1.1) |
//! | anything else | 200, the fixed body of the configured size |
//!
//! The plain answer is built at once, sharing one body buffer, with no lock and no boxed
//! future, so that the upstream costs as little as possible in a benchmark; only echo and
//! delay box a future.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use super::reply::{Repeat, Reply, ResponseBody};
use super::{NAME_HEADER, UpstreamConfig};

/// The largest request body `/echo` reads.
pub(crate) const ECHO_BODY_LIMIT: usize = 1 << 20;

/// State shared by all connections of one upstream.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) requests: AtomicU64,
    body: Bytes,
    name: Option<HeaderValue>,
}

impl Shared {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        Self {
            requests: AtomicU64::new(0),
            body: Bytes::from(vec![b'x'; config.body_size]),
            name: config.name.clone(),
        }
    }

    fn respond(
        &self,
        status: StatusCode,
        body: ResponseBody,
        content_type: &'static str,
    ) -> Response<ResponseBody> {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(name) = &self.name {
            headers.insert(NAME_HEADER, name.clone());
        }
        response
    }

    fn plain(&self) -> Response<ResponseBody> {
        self.respond(
            StatusCode::OK,
            Either::Left(Full::new(self.body.clone())),
            "text/plain",
        )
    }

    fn text(&self, status: StatusCode, text: &'static str) -> Response<ResponseBody> {
        self.respond(
            status,
            Either::Left(Full::new(Bytes::from_static(text.as_bytes()))),
            "text/plain",
        )
    }
}

/// What a path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Plain,
    Echo,
    Status(StatusCode),
    Delay(Duration),
    Stream(u64),
    Invalid(&'static str),
}

fn route(path: &str) -> Route {
    if path == "/echo" || path.starts_with("/echo/") {
        return Route::Echo;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) if (200..=599).contains(&status.as_u16()) => Route::Status(status),
            _ => Route::Invalid("/status/<code> takes a status code from 200 to 599\n"),
        };
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        return match ms.parse::<u64>() {
            Ok(ms) => Route::Delay(Duration::from_millis(ms)),
            Err(_) => Route::Invalid("/delay/<ms> takes a whole number of milliseconds\n"),
        };
    }
    if let Some(bytes) = path.strip_prefix("/stream/") {
        return match bytes.parse::<u64>() {
            Ok(bytes) => Route::Stream(bytes),
            Err(_) => Route::Invalid("/stream/<bytes> takes a whole number of bytes\n"),
        };
    }
    Route::Plain
}

/// The hyper service of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    shared: Arc<Shared>,
}

impl Service {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Reply;

    fn call(&self, request: Request<Incoming>) -> Reply {
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let shared = &self.shared;
        match route(request.uri().path()) {
            Route::Plain => Reply::ready(shared.plain()),
            Route::Status(status) => {
                Reply::ready(shared.respond(status, Either::Left(Full::default()), "text/plain"))
            }
            Route::Stream(bytes) => Reply::ready(shared.respond(
                StatusCode::OK,
                Either::Right(Repeat::new(bytes)),
                "application/octet-stream",
            )),
            Route::Invalid(message) => Reply::ready(shared.text(StatusCode::BAD_REQUEST, message)),
            Route::Delay(delay) => {
                let shared = shared.clone();
                Reply::pending(async move {
                    tokio::time::sleep(delay).await;
                    shared.plain()
                })
            }
            Route::Echo => {
                let shared = shared.clone();
                Reply::pending(async move { echo(&shared, request).await })
            }
        }
    }
}

/// Answers with a JSON description of the request, its body read in full.
async fn echo(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    let (head, body) = request.into_parts();
    let body = match Limited::new(body, ECHO_BODY_LIMIT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            tracing::debug!(%error, "could not read the request body");
            return shared.text(
                StatusCode::BAD_REQUEST,
                "the request body could not be read (over 1 MiB?)\n",
            );
        }
    };
    let mut headers = serde_json::Map::new();
    for (name, value) in &head.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), value.into_owned().into());
            }
        }
    }
    let authority = head
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            head.headers
                .get(http::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        });
    let description = serde_json::json!({
        "method": head.method.as_str(),
        "path": head.uri.path(),
        "query": head.uri.query(),
        "authority": authority,
        "version": format!("{:?}", head.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "upstream": shared.name.as_ref().map(|n| String::from_utf8_lossy(n.as_bytes()).into_owned()),
    });
    let json = Bytes::from(description.to_string());
    shared.respond(
        StatusCode::OK,
        Either::Left(Full::new(json)),
        "application/json",
    )
}

#[cfg(test)]
mod route_tests {
    use super::*;

    #[test]
    fn paths_choose_their_endpoint() {
        assert_eq!(route("/"), Route::Plain);
        assert_eq!(route("/echoes"), Route::Plain);
        assert_eq!(route("/echo"), Route::Echo);
        assert_eq!(route("/echo/a/b"), Route::Echo);
        assert_eq!(
            route("/status/503"),
            Route::Status(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert_eq!(route("/delay/25"), Route::Delay(Duration::from_millis(25)));
        assert_eq!(route("/stream/100"), Route::Stream(100));
    }

    #[test]
    fn malformed_arguments_are_rejected() {
        for path in [
            "/status/abc",
            "/status/101",
            "/status/600",
            "/status/",
            "/delay/-1",
            "/delay/1s",
            "/stream/1k",
        ] {
            assert!(matches!(route(path), Route::Invalid(_)), "{path}");
        }
    }
}
