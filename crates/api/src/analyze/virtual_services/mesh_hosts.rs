//! Sidecar VirtualServices that claim the same host: which one a sidecar uses is undefined.

use std::collections::{BTreeMap, BTreeSet};

use super::hosts_overlap;
use crate::FieldPath;
use crate::analyze::{Context, Report, export_scopes, messages, to_fqdn};
use crate::networking::VirtualService;

/// The scope of a VirtualService exported to every namespace.
const EVERYWHERE: &str = "*";

/// IST0109: two VirtualServices that apply at the sidecars define the same host for the same
/// namespaces. Hosts are compared exactly between VirtualServices exported everywhere; one
/// exported to some namespaces also conflicts with any exported everywhere whose host overlaps
/// its own (wildcards included).
pub(super) fn conflicting_mesh_hosts(ctx: &Context<'_>, report: &mut Report) {
    let services: Vec<_> = ctx
        .each::<VirtualService>()
        .filter(|(_, vs)| vs.spec.applies_to_mesh())
        .collect();
    // (scope, host) -> [(VirtualService, index of the host in it)]
    let mut claims: BTreeMap<(String, String), Vec<(usize, usize)>> = BTreeMap::new();
    for (v, (entry, vs)) in services.iter().enumerate() {
        for scope in export_scopes(&vs.spec.export_to, entry.namespace()) {
            for (h, host) in vs.spec.hosts.iter().enumerate() {
                claims
                    .entry((scope.clone(), to_fqdn(host, entry.namespace())))
                    .or_default()
                    .push((v, h));
            }
        }
    }
    // (VirtualService, host index) -> the VirtualServices it conflicts with
    let mut conflicts: BTreeMap<(usize, usize), BTreeSet<usize>> = BTreeMap::new();
    for ((scope, host), members) in &claims {
        let mut group = members.clone();
        if scope != EVERYWHERE {
            for ((other_scope, other_host), others) in &claims {
                if other_scope == EVERYWHERE && hosts_overlap(host, other_host) {
                    group.extend(others);
                }
            }
        }
        let distinct: BTreeSet<usize> = group.iter().map(|(v, _)| *v).collect();
        if distinct.len() < 2 {
            continue;
        }
        for (v, h) in &group {
            conflicts
                .entry((*v, *h))
                .or_default()
                .extend(distinct.iter().filter(|o| *o != v));
        }
    }
    for ((v, h), others) in conflicts {
        let (entry, vs) = services[v];
        let others: Vec<String> = others.iter().map(|o| services[*o].0.full_name()).collect();
        report.add(
            messages::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
            entry,
            FieldPath::root().key("spec").key("hosts").index(h),
            format!(
                "host {:?} is also claimed for the sidecars of the same namespaces by {} {}; which \
                 rules apply is undefined, so merge them into one VirtualService",
                vs.spec.hosts[h],
                if others.len() == 1 {
                    "VirtualService"
                } else {
                    "VirtualServices"
                },
                others.join(", "),
            ),
        );
    }
}
