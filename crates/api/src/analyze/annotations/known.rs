//! The mesh's annotations: what each is called, which kinds of resource it belongs on, whether
//! it is deprecated (and what replaces it), and how to check its value where that can be told.
//!
//! The list follows Istio's published annotations, so configuration written for Istio reads
//! the same here.

use super::values;
use On::*;

/// A kind of resource an annotation belongs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum On {
    /// Any kind.
    Any,
    Pod,
    Service,
    Namespace,
    ServiceEntry,
    WorkloadEntry,
    AuthorizationPolicy,
    Gateway,
    GatewayClass,
}

impl On {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Any => "any resource",
            Self::Pod => "Pod",
            Self::Service => "Service",
            Self::Namespace => "Namespace",
            Self::ServiceEntry => "ServiceEntry",
            Self::WorkloadEntry => "WorkloadEntry",
            Self::AuthorizationPolicy => "AuthorizationPolicy",
            Self::Gateway => "Gateway",
            Self::GatewayClass => "GatewayClass",
        }
    }
}

/// Checks an annotation's value; the error says what is wrong.
pub(super) type Check = fn(&str) -> Result<(), String>;

/// One annotation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Known {
    pub(super) name: &'static str,
    pub(super) on: &'static [On],
    /// `Some` when deprecated: what to use instead (empty when nothing replaces it).
    pub(super) deprecated: Option<&'static str>,
    pub(super) check: Option<Check>,
}

/// Annotations written by the mesh itself, never judged.
pub(super) const SET_BY_MESH: [&str; 3] = [
    "sidecar.istio.io/status",
    "gateway.istio.io/controller-version",
    "istio.io/rev",
];

/// The annotation `name`, if the mesh knows it.
pub(super) fn find(name: &str) -> Option<&'static Known> {
    ANNOTATIONS.iter().find(|a| a.name == name)
}

/// A known annotation whose name differs from `name` only in case or punctuation: what a
/// misspelt annotation was probably meant to be.
pub(super) fn similar(name: &str) -> Option<&'static str> {
    let fold = |n: &str| -> String {
        n.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '/')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = fold(name);
    ANNOTATIONS
        .iter()
        .map(|a| a.name)
        .find(|n| fold(n) == wanted)
}

const fn on(name: &'static str, on: &'static [On], check: Option<Check>) -> Known {
    Known {
        name,
        on,
        deprecated: None,
        check,
    }
}

const fn deprecated(name: &'static str, on: &'static [On], instead: &'static str) -> Known {
    Known {
        name,
        on,
        deprecated: Some(instead),
        check: None,
    }
}

const POD: &[On] = &[Pod];

static ANNOTATIONS: &[Known] = &[
    // Injection and the injected proxy.
    deprecated(
        "sidecar.istio.io/inject",
        POD,
        "the sidecar.istio.io/inject label",
    ),
    on("sidecar.istio.io/status", POD, None),
    on(
        "sidecar.istio.io/rewriteAppHTTPProbers",
        POD,
        Some(values::boolean),
    ),
    deprecated(
        "sidecar.istio.io/discoveryAddress",
        POD,
        "discoveryAddress in the proxy.istio.io/config annotation",
    ),
    on("sidecar.istio.io/proxyImage", POD, None),
    on("sidecar.istio.io/proxyImageType", POD, None),
    on("sidecar.istio.io/proxyCPU", POD, Some(values::quantity)),
    on(
        "sidecar.istio.io/proxyCPULimit",
        POD,
        Some(values::quantity),
    ),
    on("sidecar.istio.io/proxyMemory", POD, Some(values::quantity)),
    on(
        "sidecar.istio.io/proxyMemoryLimit",
        POD,
        Some(values::quantity),
    ),
    on(
        "sidecar.istio.io/interceptionMode",
        POD,
        Some(values::interception_mode),
    ),
    on("sidecar.istio.io/bootstrapOverride", POD, None),
    deprecated(
        "sidecar.istio.io/statsInclusionPrefixes",
        POD,
        "proxyStatsMatcher in the proxy.istio.io/config annotation",
    ),
    deprecated(
        "sidecar.istio.io/statsInclusionSuffixes",
        POD,
        "proxyStatsMatcher in the proxy.istio.io/config annotation",
    ),
    deprecated(
        "sidecar.istio.io/statsInclusionRegexps",
        POD,
        "proxyStatsMatcher in the proxy.istio.io/config annotation",
    ),
    on(
        "sidecar.istio.io/statsHistogramBuckets",
        POD,
        Some(values::json),
    ),
    on(
        "sidecar.istio.io/statsFlushInterval",
        POD,
        Some(values::duration),
    ),
    on(
        "sidecar.istio.io/statsEvictionInterval",
        POD,
        Some(values::duration),
    ),
    on(
        "sidecar.istio.io/statsHistogramBins",
        POD,
        Some(values::uint32),
    ),
    deprecated(
        "sidecar.istio.io/statsCompression",
        POD,
        "statsCompression in the proxy.istio.io/config annotation",
    ),
    deprecated(
        "sidecar.istio.io/extraStatTags",
        POD,
        "extraStatTags in the proxy.istio.io/config annotation",
    ),
    on("sidecar.istio.io/userVolume", POD, Some(values::json)),
    on("sidecar.istio.io/userVolumeMount", POD, Some(values::json)),
    on(
        "sidecar.istio.io/logLevel",
        POD,
        Some(values::proxy_log_level),
    ),
    on(
        "sidecar.istio.io/componentLogLevel",
        POD,
        Some(values::component_log_levels),
    ),
    on("sidecar.istio.io/agentLogLevel", POD, None),
    on("sidecar.istio.io/nativeSidecar", POD, Some(values::boolean)),
    on("status.sidecar.istio.io/port", POD, Some(values::port)),
    on(
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        POD,
        Some(values::uint32),
    ),
    on(
        "readiness.status.sidecar.istio.io/periodSeconds",
        POD,
        Some(values::uint32),
    ),
    on(
        "readiness.status.sidecar.istio.io/failureThreshold",
        POD,
        Some(values::uint32),
    ),
    on(
        "readiness.status.sidecar.istio.io/applicationPorts",
        POD,
        Some(values::port_list),
    ),
    on("proxy.istio.io/config", POD, Some(values::proxy_config)),
    on("proxy.istio.io/overrides", POD, None),
    on("inject.istio.io/templates", POD, None),
    on("istio.io/rev", POD, None),
    on(
        "prometheus.istio.io/merge-metrics",
        POD,
        Some(values::boolean),
    ),
    // Traffic capture.
    on(
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        POD,
        Some(values::include_ip_ranges),
    ),
    on(
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        POD,
        Some(values::cidr_list),
    ),
    on(
        "traffic.sidecar.istio.io/includeInboundPorts",
        POD,
        Some(values::include_ports),
    ),
    on(
        "traffic.sidecar.istio.io/excludeInboundPorts",
        POD,
        Some(values::port_list),
    ),
    on(
        "traffic.sidecar.istio.io/includeOutboundPorts",
        POD,
        Some(values::port_list),
    ),
    on(
        "traffic.sidecar.istio.io/excludeOutboundPorts",
        POD,
        Some(values::port_list),
    ),
    on("traffic.sidecar.istio.io/excludeInterfaces", POD, None),
    deprecated(
        "traffic.sidecar.istio.io/kubevirtInterfaces",
        POD,
        "the istio.io/reroute-virtual-interfaces annotation",
    ),
    on("istio.io/reroute-virtual-interfaces", POD, None),
    // Ambient mode.
    on("ambient.istio.io/redirection", POD, None),
    on("ambient.istio.io/bypass-inbound-capture", POD, None),
    on("ambient.istio.io/dns-capture", POD, None),
    on(
        "ambient.istio.io/waypoint-inbound-binding",
        &[GatewayClass, Gateway],
        None,
    ),
    // Services and service discovery.
    on(
        "networking.istio.io/exportTo",
        &[Service],
        Some(values::export_to),
    ),
    on(
        "networking.istio.io/traffic-distribution",
        &[Namespace, Service, ServiceEntry],
        None,
    ),
    on(
        "istio.io/use-waypoint-canary-weight",
        &[Service, ServiceEntry, Namespace],
        Some(values::percent),
    ),
    on("traffic.istio.io/nodeSelector", &[Service], None),
    deprecated("alpha.istio.io/kubernetes-serviceaccounts", &[Service], ""),
    deprecated("alpha.istio.io/canonical-serviceaccounts", &[Service], ""),
    on("topology.istio.io/controlPlaneClusters", &[Namespace], None),
    // Gateways deployed by the mesh.
    on("gateway.istio.io/controller-version", &[Any], None),
    on("gateway.istio.io/service-account", &[Gateway], None),
    on("gateway.istio.io/name-override", &[Gateway], None),
    on("networking.istio.io/service-type", &[Gateway], None),
    // Policies and workload entries.
    on(
        "istio.io/dry-run",
        &[AuthorizationPolicy],
        Some(values::boolean),
    ),
    on("istio.io/autoRegistrationGroup", &[WorkloadEntry], None),
    on("istio.io/workloadController", &[WorkloadEntry], None),
    on("istio.io/connectedAt", &[WorkloadEntry], None),
    on("istio.io/disconnectedAt", &[WorkloadEntry], None),
    // Analysis itself.
    on("galley.istio.io/analyze-suppress", &[Any], None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = ANNOTATIONS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an annotation is listed twice");
        for name in SET_BY_MESH {
            assert!(find(name).is_some(), "{name}");
        }
    }
}
