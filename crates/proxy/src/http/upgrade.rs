//! HTTP/1.1 upgrades (WebSocket and friends): the request goes to the endpoint on a connection
//! of its own, and once both sides agree (101), the two connections are joined byte for byte.

use std::io;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{Outcome, local};
use crate::body::{Body, ClientBody};
use crate::downstream::http1::OnUpgrade;
use crate::telemetry::ResponseFlags;
use crate::upstream::{ClusterRuntime, Stat};

pub(super) async fn forward_upgrade(
    cluster: &Arc<ClusterRuntime>,
    mut request: Request<ClientBody>,
    authority: &str,
    connection: Option<HeaderValue>,
    upgrade: Option<HeaderValue>,
    hash: Option<u64>,
    outcome: &mut Outcome,
) -> Response<Body> {
    let Some(index) = cluster.pick(hash, &[]) else {
        return outcome.fail(
            ResponseFlags::NO_HEALTHY_UPSTREAM,
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy upstream",
        );
    };
    let address = cluster.endpoints[index].address;
    outcome.upstream = Some(address);
    outcome.endpoint = Some(index);
    let stream = match cluster.connect(index, crate::tls::Alpn::Http1).await {
        Ok(stream) => stream,
        Err(_) => {
            cluster.stats.bump(Stat::ConnectFailures);
            return outcome.fail(
                ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
                StatusCode::SERVICE_UNAVAILABLE,
                local::UPSTREAM_FAILED,
            );
        }
    };
    let Ok((mut sender, connection_task)) =
        hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await
    else {
        return outcome.fail(
            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
            StatusCode::SERVICE_UNAVAILABLE,
            local::UPSTREAM_FAILED,
        );
    };
    tokio::spawn(async move {
        if let Err(error) = connection_task.with_upgrades().await {
            tracing::debug!(%error, "upgraded upstream connection ended");
        }
    });

    let Some(downstream_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        // Only HTTP/1.1 connections upgrade, and each of their upgrade requests has a handle.
        return local::reply(
            StatusCode::BAD_REQUEST,
            "the connection cannot be upgraded",
            false,
        );
    };
    let (parts, _) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream = Request::new(crate::body::empty());
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = path.parse().unwrap_or_default();
    *upstream.headers_mut() = parts.headers;
    let headers = upstream.headers_mut();
    if let Ok(host) = HeaderValue::from_str(authority) {
        headers.insert(header::HOST, host);
    }
    headers.insert(
        header::CONNECTION,
        connection.unwrap_or_else(|| HeaderValue::from_static("upgrade")),
    );
    if let Some(upgrade) = upgrade {
        headers.insert(header::UPGRADE, upgrade);
    }

    let mut response = match sender.send_request(upstream).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "upstream refused the upgrade request");
            return outcome.fail(
                ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
                StatusCode::SERVICE_UNAVAILABLE,
                local::UPSTREAM_FAILED,
            );
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return response.map(|body| {
            http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, Into::into))
        });
    }
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        let upstream_upgrade = async { upstream_upgrade.await.map_err(io::Error::other) };
        match tokio::try_join!(downstream_upgrade.upgraded(), upstream_upgrade) {
            Ok((mut downstream, upstream)) => {
                let mut upstream = TokioIo::new(upstream);
                if let Err(error) =
                    tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await
                {
                    tracing::debug!(%error, "upgraded connection ended");
                }
            }
            Err(error) => tracing::debug!(%error, "upgrade failed"),
        }
    });
    let (parts, _) = response.into_parts();
    Response::from_parts(parts, crate::body::empty())
}
