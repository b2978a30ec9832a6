//! The debug API (HTTP/1.1, JSON), for the CLI and for people:
//!
//! | Request | Answers |
//! |---|---|
//! | `GET /debug/config` | the configuration in force: version, resources, and the files refused with why |
//! | `GET /debug/registry` | services (host, ports, endpoints) and workloads |
//! | `GET /debug/proxies` | connected proxies: identity, mesh version, and per type what was sent, ACKed or NACKed |
//! | `GET /debug/stats` | counts: connected proxies, versions, responses and resource bytes pushed |
//! | `GET /debug/proxy_config?proxy=<workload>.<namespace>` | the configuration that proxy gets (as its connection sees it when connected, else as a sidecar with the defaults), with the translation's warnings |
//! | `POST /registry/workloads` | registers a workload (JSON: `name`, `namespace`, `labels`, `address`, `serviceAccount`) |
//! | `DELETE /registry/workloads/<namespace>/<name>` | removes it |
//! | `POST /tokens` | a bootstrap token for a workload identity (JSON: `namespace`, `service_account`, optional `ttl_seconds`, 30 days by default), for the proxy to show the CA |

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ControlPlane;
use crate::proxies::{ProxyIdentity, translate};
use crate::registry::Workload;

/// Serves the debug API on `listener` until `shutdown` turns true.
pub async fn serve(
    plane: Arc<ControlPlane>,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) {
    let stopped = crate::stopped(shutdown);
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            () = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let plane = plane.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(plane.clone(), request));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    plane: Arc<ControlPlane>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let answer = match (request.method().clone(), path.as_str()) {
        (Method::GET, "/debug/config") => Ok(config(&plane)),
        (Method::GET, "/debug/registry") => Ok(registry(&plane)),
        (Method::GET, "/debug/proxies") => Ok(json!(plane.proxies())),
        (Method::GET, "/debug/stats") => {
            let (responses, bytes) = plane.pushed();
            let mesh = plane.mesh();
            Ok(json!({
                "proxies": plane.proxies().len(),
                "mesh_version": mesh.version,
                "config_version": mesh.config.version,
                "pushed_responses": responses,
                "pushed_bytes": bytes,
            }))
        }
        (Method::GET, "/debug/proxy_config") => proxy_config(&plane, &query),
        (Method::POST, "/registry/workloads") => register(&plane, request).await,
        (Method::POST, "/tokens") => token(&plane, request).await,
        (Method::DELETE, p) if p.starts_with("/registry/workloads/") => {
            let rest = &p["/registry/workloads/".len()..];
            match rest.split_once('/') {
                Some((namespace, name)) if plane.registered.deregister(namespace, name) => {
                    Ok(json!({"removed": format!("{name}.{namespace}")}))
                }
                Some(_) => Err((
                    StatusCode::NOT_FOUND,
                    format!("no workload {rest} is registered"),
                )),
                None => Err((
                    StatusCode::BAD_REQUEST,
                    "expected /registry/workloads/<namespace>/<name>".to_owned(),
                )),
            }
        }
        _ => Err((
            StatusCode::NOT_FOUND,
            format!(
                "no {} {path} here; see the debug API in docs/control-plane.md",
                request.method()
            ),
        )),
    };
    Ok(match answer {
        Ok(value) => reply(
            StatusCode::OK,
            serde_json::to_vec_pretty(&value).unwrap_or_default(),
        ),
        Err((status, message)) => reply(
            status,
            serde_json::to_vec_pretty(&json!({ "error": message })).unwrap_or_default(),
        ),
    })
}

fn reply(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn config(plane: &ControlPlane) -> Value {
    let mesh = plane.mesh();
    let resources: Vec<Value> = mesh
        .config
        .resources
        .iter()
        .map(|r| json!({"kind": r.kind().name(), "namespace": r.namespace(), "name": r.name()}))
        .collect();
    let errors: serde_json::Map<String, Value> = mesh
        .config
        .errors
        .iter()
        .map(|(path, errors)| (path.display().to_string(), json!(errors)))
        .collect();
    json!({"version": mesh.config.version, "resources": resources, "refused": errors})
}

fn registry(plane: &ControlPlane) -> Value {
    let mesh = plane.mesh();
    let services: Vec<Value> = mesh
        .registry
        .services()
        .map(|s| {
            json!({
                "host": s.host,
                "namespace": s.namespace,
                "ports": s.ports.iter().map(|p| json!({
                    "number": p.number,
                    "name": p.name,
                    "protocol": p.protocol.map(|p| p.to_string()),
                })).collect::<Vec<_>>(),
                "endpoints": s.endpoints.iter().map(|e| json!({
                    "address": e.address.to_string(),
                    "ports": e.ports,
                    "labels": e.labels,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let workloads: Vec<&Workload> = mesh.workloads.values().collect();
    json!({"version": mesh.version, "services": services, "workloads": workloads})
}

fn proxy_config(plane: &ControlPlane, query: &str) -> Result<Value, (StatusCode, String)> {
    let id = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("proxy="))
        .ok_or((
            StatusCode::BAD_REQUEST,
            "expected ?proxy=<workload>.<namespace>".to_owned(),
        ))?;
    let identity = match plane.proxies().into_iter().find(|p| p.id == id) {
        Some(connected) => connected.identity,
        None => {
            let (workload, namespace) = id.rsplit_once('.').ok_or((
                StatusCode::BAD_REQUEST,
                format!("{id:?} is not <workload>.<namespace>"),
            ))?;
            ProxyIdentity::sidecar(workload, namespace)
        }
    };
    let mesh = plane.mesh();
    let translated = translate(&mesh, &identity);
    Ok(json!({
        "proxy": identity,
        "mesh_version": mesh.version,
        "known_workload": mesh.workload(&identity.namespace, &identity.workload).is_some(),
        "warnings": translated.warnings,
        "config": translated.config,
    }))
}

/// A request's JSON body, as `what`.
async fn json_body<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
    what: &str,
) -> Result<T, (StatusCode, String)> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, message);
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(|e| bad(format!("cannot read the body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| bad(format!("not {what}: {e}")))
}

/// How long a bootstrap token is good for unless asked otherwise.
const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, serde::Deserialize)]
struct TokenRequest {
    namespace: String,
    service_account: String,
    ttl_seconds: Option<u64>,
}

async fn token(
    plane: &ControlPlane,
    request: Request<Incoming>,
) -> Result<Value, (StatusCode, String)> {
    let asked: TokenRequest = json_body(
        request,
        "a token request (namespace, service_account, ttl_seconds)",
    )
    .await?;
    let id = trellis_identity::SpiffeId::new(
        &plane.trust_domain,
        &asked.namespace,
        &asked.service_account,
    )
    .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let ttl = asked
        .ttl_seconds
        .map_or(TOKEN_TTL, std::time::Duration::from_secs);
    let token = plane.identity.tokens.issue(&id, ttl);
    tracing::info!(identity = %id, ?ttl, "bootstrap token issued");
    Ok(json!({ "identity": id.to_string(), "token": token }))
}

async fn register(
    plane: &ControlPlane,
    request: Request<Incoming>,
) -> Result<Value, (StatusCode, String)> {
    let workload: Workload = json_body(request, "a workload").await?;
    if workload.name.is_empty() || workload.namespace.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "name and namespace are required".to_owned(),
        ));
    }
    let id = format!("{}.{}", workload.name, workload.namespace);
    plane.registered.register(workload);
    Ok(json!({ "registered": id }))
}
