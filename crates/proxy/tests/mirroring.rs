//! Mirroring through real sockets: copies arrive at the mirror with `-shadow` authorities and
//! the request's body, on their share of requests, and the client never waits for them.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::watch;
use trellis_proxy::upstream::Stat;
use trellis_proxy_config::{Action, LoadBalancer, Mirror, Route};

/// An upstream that records each request's authority and body, and answers only once its gate
/// opens.
struct Recording {
    address: SocketAddr,
    gate: watch::Sender<bool>,
    seen: Arc<Mutex<Vec<(String, Bytes)>>>,
}

async fn recording() -> Recording {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (gate, open) = watch::channel(false);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (open, record) = (open.clone(), record.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let (mut open, record) = (open.clone(), record.clone());
                    async move {
                        let host = request.headers()["host"].to_str().unwrap().to_owned();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        record.lock().unwrap().push((host, body));
                        let _ = open.wait_for(|open| *open).await;
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"mirror"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Recording {
        address,
        gate,
        seen,
    }
}

/// A proxy forwarding to `main` and mirroring `percent` of the requests to `mirror`.
async fn mirroring(main: SocketAddr, mirror: SocketAddr, percent: f64) -> Running {
    let route = forward("all", vec![], &[("main", 100)]);
    let route = Route {
        action: match route.action {
            Action::Forward(mut f) => {
                f.mirrors = vec![Mirror {
                    cluster: "mirror".into(),
                    percent,
                }];
                Action::Forward(f)
            }
            other => other,
        },
        ..route
    };
    start(http_config(
        vec![route],
        vec![
            cluster("main", &[main], LoadBalancer::RoundRobin),
            cluster("mirror", &[mirror], LoadBalancer::RoundRobin),
        ],
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_arrive_with_shadow_authorities_and_bodies_and_the_client_never_waits() {
    let main = upstreams("main", 1).await;
    let mirror = recording().await;
    let proxy = mirroring(main[0].addr(), mirror.address, 100.0).await;
    let client = client();
    // The mirror answers nothing yet: every client gets its answer regardless.
    for i in 0..10 {
        let request = Request::post(proxy.url("/orders"))
            .header("host", "shop.example.com:8080")
            .body(Full::new(Bytes::from(format!("order {i}"))))
            .unwrap();
        let got = send(&client, request).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.upstream(), Some("main-0"));
    }
    eventually("the ten copies reach the mirror", || {
        mirror.seen.lock().unwrap().len() == 10
    })
    .await;
    let mut seen = mirror.seen.lock().unwrap().clone();
    seen.sort();
    for (i, (host, body)) in seen.iter().enumerate() {
        assert_eq!(host, "shop.example.com-shadow:8080");
        assert_eq!(&body[..], format!("order {i}").as_bytes());
    }
    mirror.gate.send(true).unwrap();
}

#[tokio::test]
async fn copies_go_out_for_their_share_of_requests() {
    let main = upstreams("main", 1).await;
    let mirror = recording().await;
    mirror.gate.send(true).unwrap();
    let proxy = mirroring(main[0].addr(), mirror.address, 25.0).await;
    let client = client();
    for _ in 0..2000 {
        let request = Request::get(proxy.url("/")).body(Full::new(Bytes::new()));
        assert_eq!(send(&client, request.unwrap()).await.status, 200);
    }
    let snapshot = proxy.proxy.config.load();
    let sent = snapshot
        .cluster("mirror")
        .unwrap()
        .1
        .stats
        .get(Stat::Requests);
    eventually("every copy sent arrives", || {
        mirror.seen.lock().unwrap().len() as u64 == sent
    })
    .await;
    let share = sent as f64 / 20.0;
    assert!(
        (22.0..=28.0).contains(&share),
        "{share}% of the requests were mirrored, expected 25% ± 3"
    );
}
