//! A gateway proxy's configuration: listeners from the servers of the Gateways that select it,
//! routes from the VirtualServices bound to them, clusters for their destinations.
//!
//! Every server of a selected Gateway (Gateways in namespace/name order, servers in order)
//! becomes, or joins, the listener for its address: the server's `bind` IP when it has one,
//! else the options' `listen_ip`, on the server's port. HTTP, HTTP2, gRPC, gRPC-Web and
//! HTTP_PROXY servers give HTTP listeners; servers of one address share the listener and its
//! route table ([`crate::virtual_hosts`]). TCP (and Mongo, Redis, MySQL) servers, and TLS or
//! HTTPS servers in `PASSTHROUGH` mode, give TCP listeners ([`crate::tcp`]). Not implemented,
//! each reported and skipped: servers that terminate TLS (HTTPS/TLS in SIMPLE, MUTUAL,
//! OPTIONAL_MUTUAL or ISTIO_MUTUAL mode), AUTO_PASSTHROUGH, UDP, unix-socket binds. A server
//! whose kind differs from the listener's, or a second TCP server on one address, is reported
//! and skipped. Listeners take plaintext: PeerAuthentication is for sidecars.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use trellis_api::Resource;
use trellis_api::meta::ROOT_NAMESPACE;
use trellis_api::networking::{Gateway, Server, ServerTlsMode, UNIX_ADDRESS_PREFIX};
use trellis_api::types::{Protocol, labels_match};
use trellis_proxy_config::{Config, Listener, ListenerProtocol};

use crate::context::{Output, Scope};
use crate::registry::Registry;
use crate::resources::{Index, Named};
use crate::warnings::Warnings;
use crate::{GatewayOptions, Translation, clusters, tcp, virtual_hosts};

/// How a listener handles connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerKind {
    Http,
    Tcp,
    TlsPassthrough,
}

/// One server of a selected Gateway.
#[derive(Debug, Clone)]
pub(crate) struct GatewayServer<'a> {
    pub(crate) gateway: Named<'a, Gateway>,
    /// `namespace/name` of the Gateway, as VirtualServices name it.
    pub(crate) qualified: String,
    /// `spec.servers[i]`.
    pub(crate) path: String,
    pub(crate) server: &'a Server,
    pub(crate) address: SocketAddr,
    pub(crate) kind: ServerKind,
}

/// The servers that share one address.
#[derive(Debug)]
struct Group<'a> {
    kind: ServerKind,
    servers: Vec<GatewayServer<'a>>,
}

pub(crate) fn translate(
    resources: &[Resource],
    registry: &Registry,
    options: &GatewayOptions,
) -> Translation {
    let cx = Scope {
        index: Index::new(resources),
        registry,
        namespace: options.namespace.as_deref().unwrap_or(ROOT_NAMESPACE),
        labels: options.labels.as_ref(),
        trust_domain: &options.trust_domain,
    };
    let mut out = Output::default();
    let mut config = Config::default();
    for (address, group) in groups(&cx, options.listen_ip, &mut out.warnings) {
        let name = format!("{}_{}", address.ip(), address.port());
        let protocol = match group.kind {
            ServerKind::Http => {
                let table_name = if address.ip() == options.listen_ip {
                    format!("http.{}", address.port())
                } else {
                    format!("http.{}_{}", address.ip(), address.port())
                };
                let table = virtual_hosts::route_table(
                    &cx,
                    table_name,
                    address.port(),
                    &group.servers,
                    &mut out,
                );
                let route_table = table.name.clone();
                config.routes.insert(table.name.clone(), table);
                ListenerProtocol::Http { route_table }
            }
            ServerKind::Tcp | ServerKind::TlsPassthrough => {
                match tcp::cluster(&cx, &group.servers[0], &mut out) {
                    Some(cluster) => ListenerProtocol::Tcp { cluster },
                    None => continue,
                }
            }
        };
        config.listeners.push(Listener {
            name,
            address,
            protocol,
            mtls: None,
            inbound: false,
            captured: false,
        });
    }
    config.clusters = clusters::build(&cx, &mut out);
    Translation {
        config,
        warnings: out.warnings.into_vec(),
    }
}

/// The servers of the selected Gateways, by listener address.
fn groups<'a>(
    cx: &Scope<'a>,
    listen_ip: IpAddr,
    warnings: &mut Warnings,
) -> BTreeMap<SocketAddr, Group<'a>> {
    let mut groups: BTreeMap<SocketAddr, Group<'a>> = BTreeMap::new();
    let selected = cx.index.gateways.iter().filter(|g| {
        cx.labels
            .is_none_or(|labels| labels_match(&g.spec.selector, labels))
    });
    for gateway in selected {
        for (i, server) in gateway.spec.servers.iter().enumerate() {
            let path = format!("spec.servers[{i}]");
            let checked = kind(server).and_then(|kind| Ok((kind, address(server, listen_ip)?)));
            let (kind, address) = match checked {
                Ok(found) => found,
                Err(why) => {
                    warnings.field(
                        "Gateway",
                        gateway.meta,
                        &path,
                        format!("{why}; the server is skipped"),
                    );
                    continue;
                }
            };
            let entry = GatewayServer {
                gateway: *gateway,
                qualified: gateway.full_name(),
                path,
                server,
                address,
                kind,
            };
            match groups.get_mut(&address) {
                None => {
                    groups.insert(
                        address,
                        Group {
                            kind,
                            servers: vec![entry],
                        },
                    );
                }
                Some(group) if group.kind == kind && kind == ServerKind::Http => {
                    group.servers.push(entry)
                }
                Some(group) => {
                    let first = &group.servers[0];
                    let why = if group.kind == kind {
                        "a TCP listener has a single destination"
                    } else {
                        "one listener serves one kind of traffic"
                    };
                    warnings.field(
                        "Gateway",
                        gateway.meta,
                        &entry.path,
                        format!(
                            "{address} is already served by Gateway {} {} ({}), and {why}; the server is skipped",
                            first.qualified, first.path, first.server.port.protocol
                        ),
                    );
                }
            }
        }
    }
    groups
}

fn kind(server: &Server) -> Result<ServerKind, String> {
    let protocol = server.port.protocol;
    let mode = server.tls.as_ref().and_then(|t| t.mode);
    match protocol {
        p if p.is_http() => Ok(ServerKind::Http),
        Protocol::Https | Protocol::Tls => match mode.unwrap_or(ServerTlsMode::Passthrough) {
            ServerTlsMode::Passthrough => Ok(ServerKind::TlsPassthrough),
            ServerTlsMode::AutoPassthrough => Err(
                "AUTO_PASSTHROUGH (routing by SNI to any service) is not supported yet".to_owned(),
            ),
            _ => Err(format!(
                "{protocol} servers that terminate TLS are not supported yet"
            )),
        },
        Protocol::Tcp | Protocol::Mongo | Protocol::Redis | Protocol::MySql => Ok(ServerKind::Tcp),
        other => Err(format!("{other} servers are not supported")),
    }
}

fn address(server: &Server, listen_ip: IpAddr) -> Result<SocketAddr, String> {
    let port = u16::try_from(server.port.number)
        .map_err(|_| format!("{} is not a port", server.port.number))?;
    match server.bind.as_deref() {
        None | Some("") => Ok(SocketAddr::new(listen_ip, port)),
        Some(bind) if bind.starts_with(UNIX_ADDRESS_PREFIX) => {
            Err("binding a unix domain socket is not supported".to_owned())
        }
        Some(bind) => bind
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, port))
            .map_err(|_| format!("bind {bind:?} is not an IP address")),
    }
}

#[cfg(test)]
mod tests;
