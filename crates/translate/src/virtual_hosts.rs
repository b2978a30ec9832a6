//! The route table of an HTTP listener: one virtual host per host its servers serve, with the
//! routes of the VirtualServices bound to them.
//!
//! A VirtualService applies to a server when it is visible to the proxy's namespace
//! (`exportTo`), names the server's Gateway in `gateways` (`name` in its own namespace, or
//! `namespace/name`), and one of its hosts intersects one of the server's hosts offered to its
//! namespace (`*/host`, `./host` for the Gateway's namespace, `ns/host`). Each intersection (the
//! narrower of the two hosts: `*` and `a.com` give `a.com`) is a virtual host, shared by every
//! server and VirtualService that reaches it. VirtualServices contribute their routes in
//! namespace/name order (Istio orders them by creation time, which files do not have), then
//! routes that accept every request move to the end ([`crate::routes::catch_all_last`]).
//! A server with `tls.httpsRedirect` makes its hosts answer every request with a 301 to https.
//! A table with no virtual host gets one for `*` without routes, so every request gets 404.

use std::collections::{BTreeMap, HashMap, HashSet};

use trellis_api::networking::VirtualService;
use trellis_proxy_config::{Action, Redirect, RedirectPort, Route, RouteTable, VirtualHost};

use crate::context::{Output, Scope};
use crate::gateway::GatewayServer;
use crate::hosts::{ServerHost, exported_to, intersect, qualify_gateway, to_fqdn};
use crate::matches::At;
use crate::resources::Named;
use crate::routes;
use crate::rules;

#[derive(Debug, Default)]
struct Host {
    routes: Vec<Route>,
    /// The (VirtualService, Gateway) pairs whose routes are in `routes`: two servers of one
    /// Gateway that both serve the host add them once.
    sources: HashSet<(String, String)>,
    https_redirect: bool,
}

pub(crate) fn route_table(
    cx: &Scope<'_>,
    name: String,
    port: u16,
    servers: &[GatewayServer<'_>],
    out: &mut Output,
) -> RouteTable {
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let mut translated: HashMap<(String, String), Vec<Route>> = HashMap::new();
    for server in servers {
        let https_redirect =
            server.server.tls.as_ref().and_then(|t| t.https_redirect) == Some(true);
        for vs in bound(cx, &server.qualified) {
            let shared = intersections(server, vs);
            if shared.is_empty() {
                continue;
            }
            let key = (vs.full_name(), server.qualified.clone());
            if !translated.contains_key(&key) {
                let rules = rules::http_rules(cx, vs, &mut out.warnings);
                let at = At {
                    cx,
                    gateway: &server.qualified,
                    port,
                };
                let routes = routes::translate_rules(at, &rules, out);
                translated.insert(key.clone(), routes);
            }
            let routes = translated.get(&key).map(Vec::as_slice).unwrap_or_default();
            for host in shared {
                let entry = hosts.entry(host).or_default();
                if entry.sources.insert(key.clone()) {
                    entry.routes.extend(routes.iter().cloned());
                }
                entry.https_redirect |= https_redirect;
            }
        }
        if https_redirect {
            for entry in &server.server.hosts {
                hosts
                    .entry(ServerHost::parse(entry).host.to_owned())
                    .or_default()
                    .https_redirect = true;
            }
        }
    }
    let mut virtual_hosts: Vec<VirtualHost> = hosts
        .into_iter()
        .map(|(host, entry)| VirtualHost {
            name: format!("{host}:{port}"),
            domains: vec![host],
            routes: if entry.https_redirect {
                vec![https_redirect()]
            } else {
                routes::catch_all_last(entry.routes)
            },
        })
        .collect();
    if virtual_hosts.is_empty() {
        virtual_hosts.push(VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".to_owned()],
            routes: Vec::new(),
        });
    }
    RouteTable {
        name,
        virtual_hosts,
        on_demand: false,
    }
}

/// The VirtualServices bound to the Gateway `gateway` (`namespace/name`) that the proxy sees.
pub(crate) fn bound<'a>(cx: &Scope<'a>, gateway: &str) -> Vec<Named<'a, VirtualService>> {
    cx.index
        .virtual_services
        .iter()
        .filter(|vs| {
            !vs.spec.hosts.is_empty()
                && exported_to(&vs.spec.export_to, vs.namespace(), cx.namespace)
                && vs
                    .spec
                    .gateways
                    .iter()
                    .any(|g| qualify_gateway(g, vs.namespace()).as_deref() == Some(gateway))
        })
        .copied()
        .collect()
}

/// The hosts both the server (as offered to the VirtualService's namespace) and the
/// VirtualService name.
pub(crate) fn intersections(
    server: &GatewayServer<'_>,
    vs: Named<'_, VirtualService>,
) -> Vec<String> {
    let mut shared: Vec<String> = Vec::new();
    for entry in &server.server.hosts {
        let offered = ServerHost::parse(entry);
        if !offered.offered_to(server.gateway.namespace(), vs.namespace()) {
            continue;
        }
        for host in &vs.spec.hosts {
            let host = to_fqdn(host, vs.namespace());
            if let Some(both) = intersect(offered.host, &host)
                && !shared.iter().any(|s| s == both)
            {
                shared.push(both.to_owned());
            }
        }
    }
    shared
}

/// What `tls.httpsRedirect` asks for: every request sent to the same URL over https.
fn https_redirect() -> Route {
    Route {
        name: "https-redirect".to_owned(),
        matches: Vec::new(),
        action: Action::Redirect(Redirect {
            status: 301,
            scheme: Some("https".to_owned()),
            authority: None,
            port: Some(RedirectPort::FromScheme),
            path: None,
            prefix: None,
        }),
        headers: Default::default(),
        fault: None,
        cors: None,
        rate_limit: None,
        source: Some("the Gateway server's tls.httpsRedirect".to_owned()),
    }
}

#[cfg(test)]
mod tests;
