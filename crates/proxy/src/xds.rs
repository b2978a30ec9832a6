//! The xDS client: the proxy's configuration from the control plane, over a delta ADS stream
//! (docs/xds.md).
//!
//! The proxy subscribes to every listener it is given (`*`), then by name to the route tables
//! and clusters its listeners and routes refer to, and drops what nothing refers to any more,
//! so it holds only what it uses. The virtual hosts of an on-demand route table (a sidecar's
//! outbound one) are subscribed to as requests ask for them ([`crate::on_demand`]): by the
//! name `<table>/<authority>`, answered with the host serving that authority (the asked name
//! among its aliases) or with the name removed when none does.
//!
//! Each response is decoded whole: a resource that breaks a rule is refused (NACK, naming the
//! resource and the field) and nothing of that response is kept. An accepted response is
//! ACKed; the configuration is applied — swapped in for new requests, listeners bound or
//! drained — once everything the listeners refer to has arrived or is known not to exist, so a
//! proxy never serves a half-received configuration.
//!
//! When the stream fails the proxy keeps serving its last configuration and reconnects with
//! exponential backoff (100 ms doubling to 5 s, with jitter), telling the control plane the
//! versions it holds so that only what changed meanwhile is sent again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use trellis_proto::xds::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use trellis_proto::xds::{DeltaDiscoveryRequest, DeltaDiscoveryResponse, Node, Status};
use trellis_proto::{Resource, decode_resource, type_url};
use trellis_proxy_config::{Action, Config};

use crate::on_demand::{MAX_ABSENT, OnDemand};

/// Backoff between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the control plane is and who this proxy is.
#[derive(Debug, Clone)]
pub struct XdsOptions {
    /// `http://host:port`.
    pub address: String,
    pub node: Node,
}

/// What is done with each complete configuration: swapping it in and (in the binary) binding
/// its listeners. Returns why it could not be applied in full, if it could not.
pub type Apply = Box<dyn FnMut(Config) -> Result<(), String> + Send>;

/// The resources held, by type and name, with their versions.
#[derive(Debug, Default)]
struct Held {
    resources: BTreeMap<&'static str, BTreeMap<String, (String, Resource)>>,
    /// Names subscribed, per type (listeners: `*`; on-demand hosts: the names asked for).
    subscribed: BTreeMap<&'static str, BTreeSet<String>>,
    /// Names the control plane said do not exist (a route to a subset no DestinationRule
    /// defines refers to a cluster that is not there, and gets 503 NC): nothing to wait for.
    absent: BTreeSet<String>,
}

impl Held {
    fn of(&self, kind: &'static str) -> impl Iterator<Item = &Resource> {
        self.resources
            .get(kind)
            .into_iter()
            .flat_map(|m| m.values().map(|(_, r)| r))
    }

    /// The route tables and clusters the held listeners and route tables refer to.
    fn referenced(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut tables, mut clusters) = (BTreeSet::new(), BTreeSet::new());
        for resource in self.of(type_url::LISTENER) {
            if let Resource::Listener(l) = resource {
                tables.extend(l.route_table().map(str::to_owned));
                clusters.extend(l.tcp_cluster().map(str::to_owned));
            }
        }
        let mut hosts = Vec::new();
        for resource in self
            .of(type_url::ROUTE_TABLE)
            .chain(self.of(type_url::ON_DEMAND_HOST))
        {
            match resource {
                Resource::RouteTable(t) if tables.contains(&t.name) => {
                    hosts.extend(&t.virtual_hosts);
                }
                Resource::OnDemandHost(h) if tables.contains(&h.route_table) => {
                    hosts.push(&h.host);
                }
                _ => {}
            }
        }
        for route in hosts.into_iter().flat_map(|h| &h.routes) {
            if let Action::Forward(f) = &route.action {
                clusters.extend(f.destinations.iter().map(|d| d.cluster.clone()));
                clusters.extend(f.mirrors.iter().map(|m| m.cluster.clone()));
            }
        }
        (tables, clusters)
    }

    /// The configuration, when every reference is held.
    fn complete(&self) -> Option<Config> {
        let mut config = Config::default();
        let mut hosts = Vec::new();
        for resource in self
            .resources
            .values()
            .flat_map(|m| m.values().map(|(_, r)| r))
        {
            match resource.clone() {
                Resource::Listener(l) => config.listeners.push(l),
                Resource::RouteTable(t) => {
                    config.routes.insert(t.name.clone(), t);
                }
                Resource::Cluster(c) => {
                    config.clusters.insert(c.name.clone(), *c);
                }
                Resource::OnDemandHost(h) => hosts.push(h),
            }
        }
        for h in hosts {
            if let Some(table) = config.routes.get_mut(&h.route_table)
                && table.on_demand
            {
                table.virtual_hosts.push(h.host);
            }
        }
        let waiting = config
            .dangling_references()
            .iter()
            .any(|d| !self.absent.contains(&d.to));
        (!waiting).then_some(config)
    }

    /// Applies a response; the reason it is refused, if it is.
    fn accept(&mut self, response: &DeltaDiscoveryResponse) -> Result<&'static str, String> {
        let Some(&kind) = type_url::ALL.iter().find(|&&t| t == response.type_url) else {
            return Err(format!(
                "{:?} is not a resource type this proxy knows",
                response.type_url
            ));
        };
        let mut decoded = Vec::new();
        for resource in &response.resources {
            let any = resource
                .resource
                .as_ref()
                .ok_or_else(|| format!("{}: the resource is missing", resource.name))?;
            let value = decode_resource(&any.type_url, &any.value)
                .map_err(|e| format!("{} {}: {e}", short(kind), resource.name))?;
            if value.name() != resource.name {
                return Err(format!(
                    "{} {}: the resource inside is named {:?}",
                    short(kind),
                    resource.name,
                    value.name()
                ));
            }
            decoded.push((resource.name.clone(), resource.version.clone(), value));
        }
        let held = self.resources.entry(kind).or_default();
        for name in &response.removed_resources {
            held.remove(name);
            // Asked-for hosts found absent are for requests to know (`OnDemand`).
            if kind != type_url::ON_DEMAND_HOST {
                self.absent.insert(name.clone());
            }
        }
        for (name, version, value) in decoded {
            self.absent.remove(&name);
            held.insert(name, (version, value));
        }
        Ok(kind)
    }
}

fn short(kind: &str) -> &str {
    kind.rsplit('.').next().unwrap_or(kind)
}

/// Keeps the proxy configured from the control plane until `drain` turns true; `ready` turns
/// true once the first complete configuration is applied. Requests ask for on-demand virtual
/// hosts through `on_demand`.
pub async fn run(
    options: XdsOptions,
    mut apply: Apply,
    ready: watch::Sender<bool>,
    on_demand: Arc<OnDemand>,
    mut drain: watch::Receiver<bool>,
) {
    let mut held = Held::default();
    let mut asks = on_demand.asks();
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut link = Link {
            held: &mut held,
            apply: &mut apply,
            ready: &ready,
            on_demand: &on_demand,
            asks: &mut asks,
        };
        let session = session(&options, &mut link);
        tokio::select! {
            () = crate::listener::draining(&mut drain) => return,
            outcome = session => match outcome {
                Ok(()) => {
                    tracing::warn!(control = %options.address, "the control plane closed the stream; reconnecting");
                    backoff = BACKOFF_MIN;
                }
                Err(error) => tracing::warn!(control = %options.address, "xDS: {error}; serving the last configuration, retrying in {backoff:?}"),
            }
        }
        let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4));
        tokio::select! {
            () = crate::listener::draining(&mut drain) => return,
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// What a stream works on, and lives longer than it.
struct Link<'a> {
    held: &'a mut Held,
    apply: &'a mut Apply,
    ready: &'a watch::Sender<bool>,
    on_demand: &'a OnDemand,
    asks: &'a mut mpsc::Receiver<String>,
}

/// One stream, until it ends (Ok) or fails.
async fn session(options: &XdsOptions, link: &mut Link<'_>) -> Result<(), String> {
    let held = &mut *link.held;
    let mut client = AggregatedDiscoveryServiceClient::connect(options.address.clone())
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let (requests, outgoing) = mpsc::channel(16);
    // The first request of each type says what is held, so that nothing held is sent again.
    held.subscribed
        .entry(type_url::LISTENER)
        .or_default()
        .insert("*".to_owned());
    let mut first = true;
    for kind in type_url::ALL.iter().rev() {
        let names = held.subscribed.get(kind).cloned().unwrap_or_default();
        if names.is_empty() {
            continue;
        }
        let versions = held
            .resources
            .get(kind)
            .map(|m| m.iter().map(|(n, (v, _))| (n.clone(), v.clone())).collect())
            .unwrap_or_default();
        let _ = requests
            .send(DeltaDiscoveryRequest {
                node: first.then(|| options.node.clone()),
                type_url: (*kind).to_owned(),
                resource_names_subscribe: names.into_iter().collect(),
                initial_resource_versions: versions,
                ..Default::default()
            })
            .await;
        first = false;
    }
    let mut responses = client
        .delta_aggregated_resources(ReceiverStream::new(outgoing))
        .await
        .map_err(|status| format!("the control plane refused the stream: {}", status.message()))?
        .into_inner();
    tracing::info!(control = %options.address, "connected to the control plane");
    loop {
        let message = tokio::select! {
            message = responses.message() => message,
            Some(name) = link.asks.recv() => {
                let subscribed = held.subscribed.entry(type_url::ON_DEMAND_HOST).or_default();
                // Already asked: its answer is on the way, or came and wakes the asker.
                if subscribed.insert(name.clone()) {
                    let ask = DeltaDiscoveryRequest {
                        type_url: type_url::ON_DEMAND_HOST.to_owned(),
                        resource_names_subscribe: vec![name],
                        ..Default::default()
                    };
                    requests.send(ask).await.map_err(|_| "the stream closed")?;
                }
                continue;
            }
        };
        let response = match message {
            Ok(Some(response)) => response,
            Ok(None) => return Ok(()),
            Err(status) => return Err(format!("the stream failed: {}", status.message())),
        };
        let mut ack = DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        };
        match held.accept(&response) {
            Ok(kind) => {
                if kind == type_url::ON_DEMAND_HOST {
                    asked_hosts(&response, held, link.on_demand, &mut ack);
                }
                // Subscribe to what is now referenced, drop what no longer is.
                let (tables, clusters) = held.referenced();
                for (kind, wanted) in [
                    (type_url::ROUTE_TABLE, tables),
                    (type_url::CLUSTER, clusters),
                ] {
                    let subscribed = held.subscribed.entry(kind).or_default();
                    let new: Vec<String> = wanted.difference(subscribed).cloned().collect();
                    let old: Vec<String> = subscribed.difference(&wanted).cloned().collect();
                    if new.is_empty() && old.is_empty() {
                        continue;
                    }
                    for name in &old {
                        subscribed.remove(name);
                        if let Some(resources) = held.resources.get_mut(kind) {
                            resources.remove(name);
                        }
                    }
                    subscribed.extend(new.iter().cloned());
                    // Asked anew: wait for the answer, whatever was said of the name before.
                    for name in &new {
                        held.absent.remove(name);
                    }
                    let change = DeltaDiscoveryRequest {
                        type_url: kind.to_owned(),
                        resource_names_subscribe: new,
                        resource_names_unsubscribe: old,
                        ..Default::default()
                    };
                    if kind == ack.type_url {
                        ack.resource_names_subscribe = change.resource_names_subscribe;
                        ack.resource_names_unsubscribe = change.resource_names_unsubscribe;
                    } else {
                        requests
                            .send(change)
                            .await
                            .map_err(|_| "the stream closed")?;
                    }
                }
                if let Some(config) = held.complete() {
                    match (link.apply)(config) {
                        Ok(()) => {
                            link.ready.send_replace(true);
                        }
                        Err(why) => tracing::error!("configuration applied in part: {why}"),
                    }
                    link.on_demand.answered();
                }
            }
            Err(reason) => {
                tracing::error!(version = %response.system_version_info, "configuration refused; the one in force stays: {reason}");
                ack.error_detail = Some(Status {
                    code: tonic::Code::InvalidArgument as i32,
                    message: reason,
                });
            }
        }
        requests.send(ack).await.map_err(|_| "the stream closed")?;
    }
}

/// Tells requests what an accepted response said of the hosts they asked for: names it
/// carries (as a host's name or alias) are served, asked names it removes are absent. Absent
/// names past [`MAX_ABSENT`] are all forgotten and unsubscribed with `ack`.
fn asked_hosts(
    response: &DeltaDiscoveryResponse,
    held: &mut Held,
    on_demand: &OnDemand,
    ack: &mut DeltaDiscoveryRequest,
) {
    let subscribed = held.subscribed.entry(type_url::ON_DEMAND_HOST).or_default();
    let served = response
        .resources
        .iter()
        .flat_map(|r| r.aliases.iter().chain([&r.name]))
        .map(|name| (name.as_str(), false));
    let absent = response
        .removed_resources
        .iter()
        .filter(|name| subscribed.contains(*name))
        .map(|name| (name.as_str(), true));
    on_demand.set_absent(served.chain(absent));
    let forgotten = on_demand.take_absent_over(MAX_ABSENT);
    for name in &forgotten {
        subscribed.remove(name);
    }
    ack.resource_names_unsubscribe = forgotten;
    on_demand.answered();
}
