//! PeerAuthentication: what a sidecar's inbound listeners accept, the mesh's mutual TLS only
//! (`STRICT`), it or plaintext (`PERMISSIVE`), or plaintext only (`DISABLE`).
//!
//! Policies are composed as Istio composes them, on three levels:
//!
//! - mesh-wide: a policy of the root namespace `istio-system` without a selector;
//! - namespace-wide: a policy of the workload's namespace without a selector;
//! - the workload's: a policy of the workload's namespace whose selector matches its labels.
//!
//! A selector with no `matchLabels` counts as none, and a policy with a selector in the root
//! namespace applies to no workload, both as in Istio. Each level's mode replaces the one above
//! it, except `UNSET` (or no `mtls` at all), which keeps it; with no policy at all the mode is
//! `PERMISSIVE`, Istio's default. The workload's policy may then set single ports with
//! `portLevelMtls`, keyed by the port the workload listens on (a Service's `targetPort`), where
//! `UNSET` keeps the workload's mode. Policies without a selector cannot carry port-level modes
//! (validation refuses them), so only the workload's policy is read for them.
//!
//! When several policies apply at one level Istio takes the oldest. Files carry no creation
//! time, so the first in namespace/name order stands in for it (as for every kind, see
//! [`crate::resources`]); the others are reported as not in force.

use std::collections::BTreeMap;

use trellis_api::meta::ROOT_NAMESPACE;
use trellis_api::security::{MutualTls, MutualTlsMode, PeerAuthentication};
use trellis_api::types::Labels;
use trellis_proxy_config::PeerMtls;

use crate::resources::Named;
use crate::warnings::Warnings;

/// The modes in force for one workload: its own, and those of single ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerModes {
    workload: MutualTlsMode,
    ports: BTreeMap<u16, MutualTlsMode>,
}

impl PeerModes {
    /// The modes for a workload of `namespace` with `labels`; policies at a level after the
    /// first are reported.
    pub(crate) fn for_workload(
        policies: &[Named<'_, PeerAuthentication>],
        namespace: &str,
        labels: &Labels,
        warnings: &mut Warnings,
    ) -> Self {
        let levels = Levels::find(policies, namespace, Some(labels), warnings);
        let workload = levels.mode();
        let ports = levels
            .workload
            .map(|policy| {
                policy
                    .spec
                    .ports()
                    .map(|(port, mtls)| (port.get(), inherit(workload, Some(mtls))))
                    .collect()
            })
            .unwrap_or_default();
        Self { workload, ports }
    }

    /// What the inbound listener on the workload's `port` accepts; `None`: plaintext only.
    pub(crate) fn listener(&self, port: u16) -> Option<PeerMtls> {
        match self.ports.get(&port).copied().unwrap_or(self.workload) {
            MutualTlsMode::Strict => Some(PeerMtls::Strict),
            MutualTlsMode::Permissive | MutualTlsMode::Unset => Some(PeerMtls::Permissive),
            MutualTlsMode::Disable => None,
        }
    }
}

/// The mode of `namespace`'s workloads as far as its namespace-wide and the mesh-wide policies
/// say: what Istio infers of a service's endpoints for automatic mutual TLS, since a client
/// cannot tell which workload policies its destinations have.
pub(crate) fn namespace_mode(
    policies: &[Named<'_, PeerAuthentication>],
    namespace: &str,
) -> MutualTlsMode {
    Levels::find(policies, namespace, None, &mut Warnings::default()).mode()
}

/// The policy in force at each level.
#[derive(Debug, Default)]
struct Levels<'a> {
    mesh: Option<Named<'a, PeerAuthentication>>,
    namespace: Option<Named<'a, PeerAuthentication>>,
    workload: Option<Named<'a, PeerAuthentication>>,
}

impl<'a> Levels<'a> {
    /// The levels for a workload of `namespace`; the workload's level only when its `labels`
    /// are given.
    fn find(
        policies: &[Named<'a, PeerAuthentication>],
        namespace: &str,
        labels: Option<&Labels>,
        warnings: &mut Warnings,
    ) -> Self {
        let wide = |p: &&Named<'a, PeerAuthentication>| {
            p.spec
                .selector
                .as_ref()
                .is_none_or(|s| s.match_labels.is_empty())
        };
        let own = |p: &&Named<'a, PeerAuthentication>| {
            p.namespace() == namespace && namespace != ROOT_NAMESPACE
        };
        let mesh = policies
            .iter()
            .filter(|p| p.namespace() == ROOT_NAMESPACE)
            .filter(wide);
        let namespace_wide = policies.iter().filter(own).filter(wide);
        let selecting = policies.iter().filter(own).filter(|p| {
            !wide(p)
                && labels.is_some_and(|labels| {
                    p.spec.selector.as_ref().is_some_and(|s| s.matches(labels))
                })
        });
        Self {
            mesh: first(mesh, "is also mesh-wide", warnings),
            namespace: first(namespace_wide, "is also namespace-wide", warnings),
            workload: first(selecting, "also selects this workload", warnings),
        }
    }

    /// The workload's mode: each level's over the one above, `PERMISSIVE` at the top.
    fn mode(&self) -> MutualTlsMode {
        [self.mesh, self.namespace, self.workload]
            .into_iter()
            .flatten()
            .fold(MutualTlsMode::Permissive, |parent, policy| {
                inherit(parent, policy.spec.mtls.as_ref())
            })
    }
}

/// The first of `candidates` (namespace/name order, standing in for Istio's oldest); the
/// others are reported.
fn first<'a, 'b>(
    mut candidates: impl Iterator<Item = &'b Named<'a, PeerAuthentication>>,
    alike: &str,
    warnings: &mut Warnings,
) -> Option<Named<'a, PeerAuthentication>>
where
    'a: 'b,
{
    let found = *candidates.next()?;
    for other in candidates {
        warnings.field(
            "PeerAuthentication",
            other.meta,
            "spec",
            format!(
                "not in force: {} {alike} and comes first in namespace/name order, which stands in for Istio's oldest-first (files carry no creation time)",
                found.full_name()
            ),
        );
    }
    Some(found)
}

/// `own`'s mode, or `parent`'s when `own` is `UNSET` or absent.
fn inherit(parent: MutualTlsMode, own: Option<&MutualTls>) -> MutualTlsMode {
    match own.and_then(|m| m.mode) {
        None | Some(MutualTlsMode::Unset) => parent,
        Some(mode) => mode,
    }
}

#[cfg(test)]
mod tests;
