//! The local mesh's demo application, shaped after Istio's Bookinfo: a page about one book
//! made of four services, one binary playing any of them (`--role`).
//!
//! - **productpage** (`GET /productpage`) calls **details** (`GET /details/<id>`) and
//!   **reviews** (`GET /reviews/<id>`) and renders an HTML page;
//! - **reviews** comes in three versions: `v1` shows no ratings, `v2` black stars and `v3` red
//!   stars, both calling **ratings** (`GET /ratings/<id>`) for them;
//! - every role answers `GET /health`, on port 9080 by default as Bookinfo's do.
//!
//! As Istio asks of applications, each service copies the tracing headers of the request it
//! serves onto the requests it makes ([`PROPAGATED`]), and productpage passes the signed-in
//! user on as `end-user` (sign in with `GET /login?user=NAME`, which sets a cookie), so that a
//! route can match one user. Failures show on the page as Bookinfo shows them: a details error,
//! reviews unavailable, ratings unavailable.
//!
//! [`serve`] takes its listener and a shutdown signal, so tests run every role in-process.

mod pages;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Request headers a service copies onto the requests it makes for that request: tracing
/// (W3C, B3, Envoy's request id, and others Istio lists), and the signed-in user.
pub const PROPAGATED: [&str; 15] = [
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "end-user",
    "user-agent",
];

/// How long productpage waits for details and reviews, as Bookinfo's does.
pub const PRODUCTPAGE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long reviews waits for ratings.
pub const RATINGS_TIMEOUT: Duration = Duration::from_secs(10);

/// Which service this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Productpage,
    Details,
    Reviews(StarColor),
    Ratings,
}

/// What a reviews version does with ratings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StarColor {
    /// v1: no ratings at all.
    None,
    /// v2.
    Black,
    /// v3.
    Red,
}

impl StarColor {
    /// The version a color stands for (`v1`, `v2`, `v3`), and back.
    pub fn version(self) -> &'static str {
        match self {
            Self::None => "v1",
            Self::Black => "v2",
            Self::Red => "v3",
        }
    }

    pub fn from_version(version: &str) -> Option<Self> {
        match version {
            "v1" => Some(Self::None),
            "v2" => Some(Self::Black),
            "v3" => Some(Self::Red),
            _ => None,
        }
    }
}

/// Where the services this one calls are (base URLs, `http://details:9080` by default: the
/// names resolve to the services inside the mesh).
#[derive(Debug, Clone)]
pub struct Upstreams {
    pub details: String,
    pub reviews: String,
    pub ratings: String,
    /// An HTTP proxy every call goes through (`HTTP_PROXY` in the binary; the sidecar's
    /// outbound listener when nothing captures the traffic): the request is sent to it with
    /// the service's name in `Host`.
    pub via: Option<String>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            details: "http://details:9080".into(),
            reviews: "http://reviews:9080".into(),
            ratings: "http://ratings:9080".into(),
            via: None,
        }
    }
}

/// One service's setup.
#[derive(Debug, Clone)]
pub struct Options {
    pub role: Role,
    pub upstreams: Upstreams,
    /// Shown by reviews as the pod that answered (`HOSTNAME` in the binary).
    pub pod: String,
}

/// What a request handler has.
struct Service {
    options: Options,
    client: Client<HttpConnector, Empty<Bytes>>,
}

/// Serves `options.role` on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, options: Options, mut shutdown: watch::Receiver<bool>) {
    let service = Arc::new(Service {
        options,
        client: Client::builder(TokioExecutor::new()).build_http(),
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(service.handle(request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), handler)
                .await;
        });
    }
}

impl Service {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or_default().to_owned();
        let headers = request.headers().clone();
        if path == "/health" {
            return text(StatusCode::OK, "ok\n");
        }
        let id = |prefix: &str| {
            path.strip_prefix(prefix)
                .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned)
        };
        match self.options.role {
            Role::Details => match id("/details/") {
                Some(id) => json(pages::details(&id)),
                None => not_found(),
            },
            Role::Ratings => match id("/ratings/") {
                Some(id) => json(pages::ratings(&id)),
                None => not_found(),
            },
            Role::Reviews(color) => match id("/reviews/") {
                Some(id) => json(self.reviews(&id, color, &headers).await),
                None => not_found(),
            },
            Role::Productpage => match path.as_str() {
                "/" | "/productpage" => self.productpage(&headers).await,
                "/login" => pages::login(&query),
                "/logout" => pages::logout(),
                _ => not_found(),
            },
        }
    }

    /// Reviews of a book, with ratings from the ratings service unless this is v1.
    async fn reviews(&self, id: &str, color: StarColor, headers: &HeaderMap) -> serde_json::Value {
        let ratings = match color {
            StarColor::None => None,
            _ => {
                let url = format!("{}/ratings/{id}", self.options.upstreams.ratings);
                Some(self.get_json(&url, headers, RATINGS_TIMEOUT).await)
            }
        };
        pages::reviews(id, color, &self.options.pod, ratings)
    }

    /// The book's page, from details and reviews.
    async fn productpage(&self, headers: &HeaderMap) -> Response<Full<Bytes>> {
        let mut headers = headers.clone();
        if let Some(user) = pages::signed_in(&headers)
            && let Ok(value) = user.parse()
        {
            headers.insert("end-user", value);
        }
        let upstreams = &self.options.upstreams;
        let details_url = format!("{}/details/0", upstreams.details);
        let reviews_url = format!("{}/reviews/0", upstreams.reviews);
        let (details, reviews) = tokio::join!(
            self.get_json(&details_url, &headers, PRODUCTPAGE_TIMEOUT),
            self.get_json(&reviews_url, &headers, PRODUCTPAGE_TIMEOUT),
        );
        let user = pages::signed_in(&headers);
        let page = pages::product(details, reviews, user.as_deref());
        let mut response = Response::new(Full::new(Bytes::from(page)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    }

    /// GETs `url` with the propagated headers of `incoming`; the JSON body of a 200, or what
    /// went wrong.
    async fn get_json(
        &self,
        url: &str,
        incoming: &HeaderMap,
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let mut request = match &self.options.upstreams.via {
            None => Request::get(url),
            Some(via) => {
                let target: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
                let proxy: http::Uri = via.parse().map_err(|e| format!("proxy {via}: {e}"))?;
                let (Some(host), Some(at)) = (target.authority(), proxy.authority()) else {
                    return Err(format!("{url} through {via}: both need a host"));
                };
                let path = target.path_and_query().map_or("/", |p| p.as_str());
                Request::get(format!("http://{at}{path}")).header(http::header::HOST, host.as_str())
            }
        };
        for name in PROPAGATED {
            for value in incoming.get_all(name) {
                request = request.header(name, value);
            }
        }
        let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(timeout, self.client.request(request))
            .await
            .map_err(|_| format!("no answer within {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .map_err(|_| format!("the body did not come within {timeout:?}"))?
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn json(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests;
