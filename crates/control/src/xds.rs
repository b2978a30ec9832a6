//! The delta ADS server: one stream per proxy, Envoy's protocol (docs/xds.md).
//!
//! A stream starts with the proxy's `Node` ([`ProxyIdentity`]). For each resource type the
//! proxy subscribes to names (`*` for all of that type: proxies subscribe to every listener
//! they are given and to the route tables and clusters those refer to). Whenever the mesh
//! changes, the proxy's configuration is translated again and, per type, only the resources
//! whose version (a hash of their encoding) differs from what the proxy holds are sent, with the
//! names that no longer exist as `removed_resources` — removals after everything new, so that a
//! proxy never holds a route to a cluster it was told is gone; a change that leaves the proxy's
//! resources equal sends nothing. A name the proxy subscribes to is answered even if it holds
//! the current version (Envoy's rule), unless it said so in `initial_resource_versions` on
//! reconnecting.
//!
//! On-demand hosts (the virtual hosts of a sidecar's outbound table) are subscribed to by the
//! names requests need, `<table>/<authority>`; each is answered with the host serving that
//! authority, under the host's own name with the asked names as its aliases, or with the asked
//! name removed when no host serves it. The asked names stay subscribed: when the mesh changes
//! they are resolved again, and the proxy is sent what changed (a host that now serves a name
//! it was told is absent, a host removed and the names it served now absent).
//!
//! Each response has a nonce; the proxy's next request naming it ACKs it, or
//! NACKs it with `error_detail`, which is logged and shown by `trellis proxy-status`. A proxy
//! that refuses a response keeps what it had, and so does the server's record of it: nothing
//! more of that type is pushed until the mesh changes, and then everything the refused
//! response carried that still differs is sent again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use trellis_proto::type_url;
use trellis_proto::xds::aggregated_discovery_service_server::AggregatedDiscoveryService;
use trellis_proto::xds::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource};

use crate::ControlPlane;
use crate::mesh::Mesh;
use crate::proxies::{
    Encoded, ProxyConfig, ProxyIdentity, ProxyStatus, TypeStatus, configure, now,
};

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct Ads(pub Arc<ControlPlane>);

type Responses = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type DeltaAggregatedResourcesStream = Responses;

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let peer = request.remote_addr();
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before its first request"))?;
        let identity = ProxyIdentity::from_node(first.node.as_ref()).map_err(|why| {
            tracing::warn!(?peer, "refused an xDS stream: {why}");
            Status::invalid_argument(why)
        })?;
        let (responses, stream) = mpsc::channel(16);
        let session = Session::new(self.0.clone(), identity, peer, responses);
        tokio::spawn(session.run(first, requests));
        Ok(Response::new(ReceiverStream::new(stream)))
    }
}

/// What a proxy asked for of one type, and what it holds.
#[derive(Debug, Default)]
struct Subscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Name -> version the proxy holds.
    held: BTreeMap<String, String>,
    /// Names to answer even if held at the current version.
    asked: BTreeSet<String>,
    /// The proxy refused (NACKed) the last response: nothing more is pushed until the mesh
    /// changes, so the same refused resources are not sent again and again.
    refused: bool,
    /// On-demand hosts: asked names the proxy was told no host serves.
    told_absent: BTreeSet<String>,
}

/// A response awaiting its ACK: its type, mesh version, and what the proxy held before it of
/// each name it carried (restored if the proxy refuses it).
#[derive(Debug, Default)]
struct Pending {
    kind: &'static str,
    version: u64,
    before: Vec<(String, Option<String>)>,
    /// Asked names it told absent.
    told_absent: Vec<String>,
}

struct Session {
    plane: Arc<ControlPlane>,
    identity: ProxyIdentity,
    key: u64,
    subscriptions: BTreeMap<&'static str, Subscription>,
    config: Arc<ProxyConfig>,
    nonce: u64,
    /// Responses awaiting their ACK, by nonce.
    pending: HashMap<String, Pending>,
    responses: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
}

impl Session {
    fn new(
        plane: Arc<ControlPlane>,
        identity: ProxyIdentity,
        peer: Option<SocketAddr>,
        responses: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
    ) -> Self {
        let mesh = plane.mesh.borrow().clone();
        let config = Arc::new(configure(&mesh, &identity, &plane.shared));
        let key = plane.connected(ProxyStatus {
            id: identity.id(),
            identity: identity.clone(),
            peer,
            connected_at: now(),
            known_workload: config.known_workload,
            mesh_version: config.mesh_version,
            types: BTreeMap::new(),
        });
        tracing::info!(proxy = %identity.id(), ?peer, "proxy connected");
        Self {
            plane,
            identity,
            key,
            subscriptions: BTreeMap::new(),
            config,
            nonce: 0,
            pending: HashMap::new(),
            responses,
        }
    }

    async fn run(
        mut self,
        first: DeltaDiscoveryRequest,
        mut requests: Streaming<DeltaDiscoveryRequest>,
    ) {
        let mut mesh: watch::Receiver<Arc<Mesh>> = self.plane.mesh.clone();
        // The session was configured from the mesh as it was when the proxy connected; one
        // that changed since is marked seen here, so it is put in force now or never.
        let current = mesh.borrow_and_update().clone();
        if current.version != self.config.mesh_version && self.remesh(&current).await.is_err() {
            self.plane.disconnected(self.key);
            return;
        }
        let mut next = Some(first);
        loop {
            if let Some(request) = next.take()
                && self.handle(request).await.is_err()
            {
                break;
            }
            tokio::select! {
                message = requests.message() => match message {
                    Ok(Some(request)) => next = Some(request),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(proxy = %self.identity.id(), %status, "stream failed");
                        break;
                    }
                },
                changed = mesh.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let current = mesh.borrow_and_update().clone();
                    if self.remesh(&current).await.is_err() {
                        break;
                    }
                }
            }
        }
        self.plane.disconnected(self.key);
        tracing::info!(proxy = %self.identity.id(), "proxy disconnected");
    }

    /// Handles one request; an error means the proxy is gone.
    async fn handle(&mut self, request: DeltaDiscoveryRequest) -> Result<(), ()> {
        let Some(&kind) = type_url::ALL.iter().find(|&&t| t == request.type_url) else {
            tracing::warn!(proxy = %self.identity.id(), type_url = %request.type_url, "request for an unknown resource type ignored");
            return Ok(());
        };
        if !request.response_nonce.is_empty()
            && let Some(pending) = self.pending.remove(&request.response_nonce)
        {
            let id = self.identity.id();
            let version = pending.version;
            let error = request.error_detail.as_ref().map(|e| e.message.clone());
            if let Some(reason) = &error {
                tracing::warn!(proxy = %id, type_url = kind, version, "proxy refused the configuration: {reason}");
                // The proxy kept what it had: so must our idea of what it holds, so that the
                // next change sends again what this response carried.
                let subscription = self.subscriptions.entry(pending.kind).or_default();
                for (name, before) in pending.before {
                    match before {
                        Some(held) => subscription.held.insert(name, held),
                        None => subscription.held.remove(&name),
                    };
                }
                for name in pending.told_absent {
                    subscription.told_absent.remove(&name);
                }
                subscription.refused = true;
            }
            self.plane.update(self.key, |status| {
                let t = status.types.entry(kind.to_owned()).or_default();
                match error {
                    Some(reason) => t.nacked = Some(reason),
                    None => {
                        t.acked = Some(version);
                        t.nacked = None;
                    }
                }
            });
        }
        let config = &self.config;
        let subscription = self.subscriptions.entry(kind).or_default();
        let reconnecting = !request.initial_resource_versions.is_empty();
        for (name, version) in request.initial_resource_versions {
            subscription.held.insert(name, version);
        }
        for name in request.resource_names_subscribe {
            if name == "*" {
                subscription.wildcard = true;
                continue;
            }
            // An on-demand host is held under its own name, not the name asked; a name asked
            // on a stream is answered, one subscribed again on reconnecting only if the host
            // the proxy holds for it changed meanwhile.
            let held = match kind {
                type_url::ON_DEMAND_HOST => {
                    reconnecting
                        && config.host_for(&name).is_some_and(|host| {
                            subscription.held.get(host) == config.version_of(kind, host)
                        })
                }
                _ => subscription.held.contains_key(&name),
            };
            if !held {
                subscription.asked.insert(name.clone());
            }
            subscription.names.insert(name);
        }
        for name in request.resource_names_unsubscribe {
            if name == "*" {
                subscription.wildcard = false;
            } else {
                subscription.names.remove(&name);
                subscription.held.remove(&name);
                subscription.asked.remove(&name);
                subscription.told_absent.remove(&name);
            }
        }
        self.push(kind, true).await
    }

    /// Translates again for a new mesh and sends what changed.
    async fn remesh(&mut self, mesh: &Mesh) -> Result<(), ()> {
        self.config = Arc::new(configure(mesh, &self.identity, &self.plane.shared));
        for subscription in self.subscriptions.values_mut() {
            subscription.refused = false;
        }
        let (version, known) = (self.config.mesh_version, self.config.known_workload);
        self.plane.update(self.key, |status| {
            status.mesh_version = version;
            status.known_workload = known;
        });
        // Make before break: what is new or changed goes first, the types others refer to
        // before those that refer to them; removals follow, in the opposite order, so that a
        // proxy never holds a route to a cluster it was told is gone.
        for kind in type_url::ALL {
            self.push(kind, false).await?;
        }
        for kind in type_url::ALL.iter().rev() {
            self.push(kind, true).await?;
        }
        Ok(())
    }

    /// Sends the resources of `kind` the proxy lacks and, with `removals`, the names it should
    /// drop.
    async fn push(&mut self, kind: &'static str, removals: bool) -> Result<(), ()> {
        if kind == type_url::ON_DEMAND_HOST {
            return self.push_hosts(removals).await;
        }
        let Some(subscription) = self.subscriptions.get_mut(kind) else {
            return Ok(());
        };
        if subscription.refused {
            return Ok(());
        }
        let mut before = Vec::new();
        let all = self.config.of(kind);
        let wanted = |name: &String| subscription.wildcard || subscription.names.contains(name);
        let mut resources = Vec::new();
        for (name, encoded) in all.iter().filter(|(name, _)| wanted(name)) {
            let fresh = subscription.held.get(name) != Some(&encoded.version);
            if fresh || subscription.asked.contains(name) {
                before.push((name.clone(), subscription.held.get(name).cloned()));
                resources.push(Resource {
                    version: encoded.version.clone(),
                    resource: Some(encoded.any.clone()),
                    name: name.clone(),
                    aliases: Vec::new(),
                });
                subscription
                    .held
                    .insert(name.clone(), encoded.version.clone());
            }
        }
        let gone: Vec<String> = subscription
            .held
            .keys()
            .filter(|name| removals && (!all.contains_key(name) || !wanted(name)))
            .cloned()
            .collect();
        let mut removed = gone.clone();
        for name in gone {
            before.push((name.clone(), subscription.held.remove(&name)));
        }
        // Asked-for names that do not exist are answered as removed, so the proxy stops waiting.
        let missing: Vec<String> = subscription
            .asked
            .iter()
            .filter(|name| !all.contains_key(name) && !removed.contains(name))
            .cloned()
            .collect();
        removed.extend(missing);
        subscription.asked.clear();
        let pending = Pending {
            kind,
            version: self.config.mesh_version,
            before,
            told_absent: Vec::new(),
        };
        self.send(pending, resources, removed).await
    }

    /// Sends the on-demand hosts serving the names asked that the proxy lacks or has not been
    /// told serve them; with `removals`, the hosts that serve no asked name any more and the
    /// asked names no host serves that the proxy has not been told of.
    async fn push_hosts(&mut self, removals: bool) -> Result<(), ()> {
        let kind = type_url::ON_DEMAND_HOST;
        let Some(subscription) = self.subscriptions.get_mut(kind) else {
            return Ok(());
        };
        if subscription.refused {
            return Ok(());
        }
        let all = self.config.of(kind);
        // Each host serving asked names, with those names; the names none serves.
        let mut serving: BTreeMap<&str, (&Encoded, Vec<String>)> = BTreeMap::new();
        let mut unserved = Vec::new();
        for asked in &subscription.names {
            let host = self.config.host_for(asked);
            match host.and_then(|h| Some((h, all.get(h)?))) {
                Some((host, encoded)) => serving
                    .entry(host)
                    .or_insert((encoded, Vec::new()))
                    .1
                    .push(asked.clone()),
                None => unserved.push(asked.clone()),
            }
        }
        let mut pending = Pending {
            kind,
            version: self.config.mesh_version,
            ..Pending::default()
        };
        let mut resources = Vec::new();
        for (host, (encoded, aliases)) in serving.iter() {
            let fresh = subscription.held.get(*host) != Some(&encoded.version);
            let news = aliases
                .iter()
                .any(|a| subscription.asked.contains(a) || subscription.told_absent.contains(a));
            if fresh || news {
                let held = subscription
                    .held
                    .insert((*host).to_owned(), encoded.version.clone());
                pending.before.push(((*host).to_owned(), held));
                resources.push(Resource {
                    version: encoded.version.clone(),
                    resource: Some(encoded.any.clone()),
                    name: (*host).to_owned(),
                    aliases: aliases.clone(),
                });
                for alias in aliases {
                    subscription.told_absent.remove(alias);
                }
            }
        }
        let mut removed = Vec::new();
        if removals {
            let gone: Vec<String> = subscription
                .held
                .keys()
                .filter(|host| !serving.contains_key(host.as_str()))
                .cloned()
                .collect();
            for host in gone {
                pending
                    .before
                    .push((host.clone(), subscription.held.remove(&host)));
                removed.push(host);
            }
            for asked in unserved {
                if subscription.asked.contains(&asked) || !subscription.told_absent.contains(&asked)
                {
                    subscription.told_absent.insert(asked.clone());
                    pending.told_absent.push(asked.clone());
                    if !removed.contains(&asked) {
                        removed.push(asked);
                    }
                }
            }
        }
        subscription.asked.clear();
        self.send(pending, resources, removed).await
    }

    /// Sends a response, unless it would say nothing.
    async fn send(
        &mut self,
        pending: Pending,
        resources: Vec<Resource>,
        removed: Vec<String>,
    ) -> Result<(), ()> {
        if resources.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let (kind, version) = (pending.kind, pending.version);
        self.nonce += 1;
        let nonce = self.nonce.to_string();
        self.pending.insert(nonce.clone(), pending);
        let held = self.subscriptions.get(kind).map_or(0, |s| s.held.len());
        self.plane.update(self.key, |status| {
            let t: &mut TypeStatus = status.types.entry(kind.to_owned()).or_default();
            t.sent = Some(version);
            t.resources = held;
        });
        let bytes: usize = resources
            .iter()
            .map(|r| r.resource.as_ref().map_or(0, |a| a.value.len()))
            .sum();
        self.plane.count_push(bytes);
        let response = DeltaDiscoveryResponse {
            system_version_info: version.to_string(),
            resources,
            type_url: kind.to_owned(),
            nonce,
            removed_resources: removed,
        };
        self.responses.send(Ok(response)).await.map_err(|_| ())
    }
}
