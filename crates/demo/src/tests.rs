//! Every role in-process on loopback, called over real sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::*;

struct Running {
    address: SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn run(role: Role, upstreams: Upstreams) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let options = Options {
        role,
        upstreams,
        pod: "test-pod".into(),
    };
    tokio::spawn(serve(listener, options, stopped));
    Running {
        address,
        _stop: stop,
    }
}

fn url(running: &Running) -> String {
    format!("http://{}", running.address)
}

/// A base URL where nothing listens.
async fn nowhere() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A service answering every request with reviews v1's JSON, noting what `note` takes of each
/// request; its base URL, and what it noted.
async fn noting<T: Send + 'static>(
    note: fn(&Request<Incoming>) -> T,
) -> (String, Arc<Mutex<Vec<T>>>) {
    let seen: Arc<Mutex<Vec<T>>> = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let noted = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let noted = noted.clone();
            tokio::spawn(async move {
                let handler = service_fn(move |request: Request<Incoming>| {
                    noted.lock().unwrap().push(note(&request));
                    let body = pages::reviews("0", StarColor::None, "noting", None).to_string();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), handler)
                    .await;
            });
        }
    });
    (base, seen)
}

/// details, ratings, reviews of `color` and productpage in front of them; productpage's URL.
async fn bookinfo(color: StarColor, ratings_up: bool) -> (String, Vec<Running>) {
    let details = run(Role::Details, Upstreams::default()).await;
    let ratings = run(Role::Ratings, Upstreams::default()).await;
    let ratings_url = if ratings_up {
        url(&ratings)
    } else {
        nowhere().await
    };
    let reviews = run(
        Role::Reviews(color),
        Upstreams {
            ratings: ratings_url,
            ..Upstreams::default()
        },
    )
    .await;
    let productpage = run(
        Role::Productpage,
        Upstreams {
            details: url(&details),
            reviews: url(&reviews),
            ..Upstreams::default()
        },
    )
    .await;
    (
        format!("{}/productpage", url(&productpage)),
        vec![details, ratings, reviews, productpage],
    )
}

#[tokio::test]
async fn each_reviews_version_shows_its_stars() {
    for (color, version, stars) in [
        (StarColor::None, "v1", None),
        (StarColor::Black, "v2", Some("black")),
        (StarColor::Red, "v3", Some("red")),
    ] {
        let (page, _running) = bookinfo(color, true).await;
        let (status, _, body) = get(&page, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("The Comedy of Errors"), "{body}");
        assert!(body.contains("PublisherA"), "the details: {body}");
        assert!(body.contains(&format!("reviews-{version}")), "{body}");
        match stars {
            None => assert!(!body.contains("class=\"stars"), "{version}: {body}"),
            Some(color) => assert!(
                body.contains(&format!(
                    "<font color=\"{color}\">\u{2605}\u{2605}\u{2605}\u{2605}\u{2605}</font>"
                )),
                "{version}: {body}"
            ),
        }
    }
}

#[tokio::test]
async fn failures_show_as_bookinfo_shows_them() {
    let (page, _running) = bookinfo(StarColor::Black, false).await;
    let (status, _, body) = get(&page, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Ratings service is currently unavailable"),
        "{body}"
    );

    let productpage = run(
        Role::Productpage,
        Upstreams {
            details: nowhere().await,
            reviews: nowhere().await,
            ..Upstreams::default()
        },
    )
    .await;
    let (status, _, body) = get(&format!("{}/productpage", url(&productpage)), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Error fetching product details!"), "{body}");
    assert!(
        body.contains("Sorry, product reviews are currently unavailable"),
        "{body}"
    );
}

#[tokio::test]
async fn tracing_headers_and_the_user_travel_on() {
    // A reviews service that notes the headers it got.
    let (reviews, seen) = noting(|request| request.headers().clone()).await;
    let details = run(Role::Details, Upstreams::default()).await;
    let productpage = run(
        Role::Productpage,
        Upstreams {
            details: url(&details),
            reviews,
            ..Upstreams::default()
        },
    )
    .await;

    // Signing in sets the cookie the page then reads.
    let (status, headers, _) = get(&format!("{}/login?user=jason", url(&productpage)), &[]).await;
    assert_eq!(status, StatusCode::FOUND);
    let cookie = headers[http::header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("user=jason"), "{cookie}");

    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (status, _, body) = get(
        &format!("{}/productpage", url(&productpage)),
        &[
            ("traceparent", traceparent),
            ("x-request-id", "req-1"),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("cookie", "theme=dark; user=jason"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Signed in as jason"), "{body}");
    let seen = seen.lock().unwrap();
    let got = seen.last().expect("reviews was called");
    assert_eq!(got["traceparent"], traceparent);
    assert_eq!(got["x-request-id"], "req-1");
    assert_eq!(got["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
    assert_eq!(got["end-user"], "jason");
    assert!(
        got.get(http::header::COOKIE).is_none(),
        "cookies stay with productpage"
    );
}

#[tokio::test]
async fn every_role_answers_health_and_refuses_unknown_paths() {
    for role in [
        Role::Productpage,
        Role::Details,
        Role::Reviews(StarColor::Red),
        Role::Ratings,
    ] {
        let running = run(role, Upstreams::default()).await;
        assert_eq!(
            get(&format!("{}/health", url(&running)), &[]).await.0,
            StatusCode::OK
        );
        assert_eq!(
            get(&format!("{}/nothing/here", url(&running)), &[]).await.0,
            StatusCode::NOT_FOUND
        );
    }
    let details = run(Role::Details, Upstreams::default()).await;
    let (_, _, body) = get(&format!("{}/details/1", url(&details)), &[]).await;
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["author"], "William Shakespeare");
}

#[tokio::test]
async fn calls_go_through_a_proxy_with_the_service_named_in_host() {
    let (proxy, seen) = noting(|request| {
        let host = request.headers()[http::header::HOST].to_str().unwrap();
        (host.to_owned(), request.uri().to_string())
    })
    .await;
    // The default URLs name services that resolve nowhere here: only the proxy is reachable.
    let productpage = run(
        Role::Productpage,
        Upstreams {
            via: Some(proxy),
            ..Upstreams::default()
        },
    )
    .await;
    let (status, _, body) = get(&format!("{}/productpage", url(&productpage)), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("reviews-v1"),
        "reviews answered through the proxy: {body}"
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("details:9080".to_owned(), "/details/0".to_owned()),
            ("reviews:9080".to_owned(), "/reviews/0".to_owned()),
        ]
    );
}
