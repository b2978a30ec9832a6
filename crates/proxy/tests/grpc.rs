//! gRPC through the proxy with a real server and client: `tonic-health`'s health service (its
//! generated code ships with the crate, so no protoc) behind an HTTP/2 cluster. Unary and
//! server-streaming calls, statuses from the server passing through, and the proxy's own
//! replies in gRPC's terms.

mod support;

use std::net::SocketAddr;

use support::*;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus as Reported;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;
use trellis_proxy_config::{LoadBalancer, RouteMatch, StringMatch};

/// The service name the health server reports on.
const SERVICE: &str = "shop.Cart";

/// A gRPC server with the health service, reporting [`SERVICE`] as serving.
async fn health_server() -> (SocketAddr, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .serve_with_incoming(service, TcpIncoming::from(listener))
            .await;
        if let Err(error) = served {
            panic!("the gRPC server failed: {error}");
        }
    });
    (address, reporter)
}

/// A health client talking to the proxy.
fn health_client(proxy: &Running) -> HealthClient<Channel> {
    let channel = Channel::from_shared(proxy.url(""))
        .expect("a valid URI")
        .connect_lazy();
    HealthClient::new(channel)
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

/// A proxy whose `grpc.health.v1.Health` calls go to an HTTP/2 cluster over `endpoints`.
async fn proxy_to(endpoints: &[SocketAddr]) -> Running {
    let health = RouteMatch {
        path: Some(StringMatch::Prefix("/grpc.health.v1.Health/".into())),
        ..RouteMatch::default()
    };
    let routes = vec![forward("health", vec![health], &[("grpc", 100)])];
    start(http_config(routes, vec![h2_cluster("grpc", endpoints)])).await
}

#[tokio::test]
async fn unary_calls_reach_the_server_and_its_statuses_come_back() {
    track_panics();
    let (server, _reporter) = health_server().await;
    let proxy = proxy_to(&[server]).await;
    let mut client = health_client(&proxy);

    let answer = client
        .check(ask(SERVICE))
        .await
        .expect("the check succeeds");
    assert_eq!(answer.into_inner().status(), Reported::Serving);
    let answer = client.check(ask("")).await.expect("the server as a whole");
    assert_eq!(answer.into_inner().status(), Reported::Serving);

    let status = client
        .check(ask("shop.Unknown"))
        .await
        .expect_err("an unknown service");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "service not registered");

    let ok = [("request_protocol", "grpc"), ("grpc_response_status", "0")];
    let not_found = [("request_protocol", "grpc"), ("grpc_response_status", "5")];
    eventually("the proxy counts the gRPC statuses it passed on", || {
        proxy.requests_total(&ok) == 2 && proxy.requests_total(&not_found) == 1
    })
    .await;
    assert_no_task_panicked();
}

#[tokio::test]
async fn server_streaming_calls_deliver_each_message() {
    track_panics();
    let (server, reporter) = health_server().await;
    let proxy = proxy_to(&[server]).await;
    let mut client = health_client(&proxy);

    let mut updates = client
        .watch(ask(SERVICE))
        .await
        .expect("the watch starts")
        .into_inner();
    let mut next = async || {
        let message = updates.message().await.expect("the stream stays healthy");
        message.expect("the stream stays open").status()
    };
    assert_eq!(next().await, Reported::Serving);
    reporter
        .set_service_status(SERVICE, ServingStatus::NotServing)
        .await;
    assert_eq!(next().await, Reported::NotServing);
    reporter
        .set_service_status(SERVICE, ServingStatus::Serving)
        .await;
    assert_eq!(next().await, Reported::Serving);

    let status = client
        .watch(ask("shop.Unknown"))
        .await
        .expect_err("an unknown service");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_no_task_panicked();
}

#[tokio::test]
async fn the_proxys_own_replies_are_grpc_statuses() {
    track_panics();
    let no_endpoints = proxy_to(&[]).await;
    let status = health_client(&no_endpoints)
        .check(ask(SERVICE))
        .await
        .expect_err("no endpoint");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "no healthy upstream");

    let nothing_there = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let dead = proxy_to(&[nothing_there]).await;
    let status = health_client(&dead)
        .check(ask(SERVICE))
        .await
        .expect_err("no server");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // No route: HTTP 404 becomes UNIMPLEMENTED, as gRPC maps it.
    let unrouted = start(http_config(vec![], vec![])).await;
    let status = health_client(&unrouted)
        .check(ask(SERVICE))
        .await
        .expect_err("no route");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let cluster_gone = start(http_config(
        vec![forward("health", vec![], &[("missing", 100)])],
        vec![cluster("other", &[], LoadBalancer::RoundRobin)],
    ))
    .await;
    let status = health_client(&cluster_gone)
        .check(ask(SERVICE))
        .await
        .expect_err("no cluster");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_no_task_panicked();
}
