//! The codes of analysis findings.
//!
//! Where a finding is the one Istio reports, it keeps Istio's code and name (`IST0101
//! ReferencedResourceNotFound`), so scripts and habits carry over. Findings of Trellis's own
//! use the `TRL` prefix.

use std::fmt;

use crate::validate::Severity;

/// A kind of finding: its stable code, its name and how serious it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code {
    pub id: &'static str,
    pub name: &'static str,
    pub level: Severity,
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

macro_rules! codes {
    ($($konst:ident = $id:literal $name:ident $level:ident;)+) => {
        $(pub const $konst: Code = Code { id: $id, name: stringify!($name), level: Severity::$level };)+

        /// Every code, in code order.
        pub const ALL: &[Code] = &[$($konst),+];
    };
}

codes! {
    DEPRECATED = "IST0002" Deprecated Warning;
    REFERENCED_RESOURCE_NOT_FOUND = "IST0101" ReferencedResourceNotFound Error;
    SCHEMA_VALIDATION_ERROR = "IST0106" SchemaValidationError Error;
    MISPLACED_ANNOTATION = "IST0107" MisplacedAnnotation Warning;
    UNKNOWN_ANNOTATION = "IST0108" UnknownAnnotation Warning;
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = "IST0109" ConflictingMeshGatewayVirtualServiceHosts Error;
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = "IST0110" ConflictingSidecarWorkloadSelectors Error;
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = "IST0111" MultipleSidecarsWithoutWorkloadSelectors Error;
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = "IST0112" VirtualServiceDestinationPortSelectorRequired Error;
    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES = "IST0116" DeploymentAssociatedToMultipleServices Warning;
    PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = "IST0118" PortNameIsNotUnderNamingConvention Info;
    NAMESPACE_MULTIPLE_INJECTION_LABELS = "IST0123" NamespaceMultipleInjectionLabels Warning;
    INVALID_ANNOTATION = "IST0125" InvalidAnnotation Warning;
    NO_MATCHING_WORKLOADS_FOUND = "IST0127" NoMatchingWorkloadsFound Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = "IST0128" NoServerCertificateVerificationDestinationLevel Warning;
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = "IST0129" NoServerCertificateVerificationPortLevel Warning;
    VIRTUAL_SERVICE_UNREACHABLE_RULE = "IST0130" VirtualServiceUnreachableRule Warning;
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH = "IST0131" VirtualServiceIneffectiveMatch Info;
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = "IST0132" VirtualServiceHostNotFoundInGateway Warning;
    SCHEMA_WARNING = "IST0133" SchemaWarning Warning;
    SERVICE_ENTRY_ADDRESSES_REQUIRED = "IST0134" ServiceEntryAddressesRequired Warning;
    DEPRECATED_ANNOTATION = "IST0135" DeprecatedAnnotation Info;
    DEPLOYMENT_CONFLICTING_PORTS = "IST0137" DeploymentConflictingPorts Warning;
    GATEWAY_DUPLICATE_CERTIFICATE = "IST0138" GatewayDuplicateCertificate Warning;
    INGRESS_ROUTE_RULES_NOT_AFFECTED = "IST0140" IngressRouteRulesNotAffected Warning;
    INVALID_APPLICATION_UID = "IST0144" InvalidApplicationUID Warning;
    // A warning, not Istio's error: the mesh merges such servers in a defined order (see
    // docs/analyze.md), so the outcome is predictable, if rarely intended.
    CONFLICTING_GATEWAYS = "IST0145" ConflictingGateways Warning;
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN = "IST0149" JwtClaimBasedRoutingWithoutRequestAuthN Error;
    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME = "IST0150" ExternalNameServiceTypeInvalidPortName Warning;
    ENVOY_FILTER_USES_RELATIVE_OPERATION = "IST0151" EnvoyFilterUsesRelativeOperation Warning;
    ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY = "IST0152" EnvoyFilterUsesReplaceOperationIncorrectly Error;
    ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY = "IST0153" EnvoyFilterUsesAddOperationIncorrectly Error;
    ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY = "IST0154" EnvoyFilterUsesRemoveOperationIncorrectly Error;
    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION = "IST0155" EnvoyFilterUsesRelativeOperationWithProxyVersion Warning;
    INVALID_TELEMETRY_PROVIDER = "IST0157" InvalidTelemetryProvider Warning;
    CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS = "IST0159" ConflictingTelemetryWorkloadSelectors Error;
    MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS = "IST0160" MultipleTelemetriesWithoutWorkloadSelectors Error;
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = "IST0162" GatewayPortNotDefinedOnService Warning;
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = "IST0173" DestinationRuleSubsetNotSelectPods Error;
    UNKNOWN_DESTINATION_RULE_HOST = "IST0174" UnknownDestinationRuleHost Warning;
    CONFLICTING_SERVICE_ENTRY_PROTOCOL = "IST0177" ConflictingServiceEntryProtocol Warning;
    YAML_SYNTAX_ERROR = "TRL0001" YamlSyntaxError Error;
    SKIPPED_KIND = "TRL0002" SkippedKind Info;
    REPLACED_RESOURCE = "TRL0003" ReplacedResource Info;
    UNREADABLE_PATH = "TRL0004" UnreadablePath Error;
}

/// Looks a code up by its id (`IST0101`) or name (`ReferencedResourceNotFound`).
pub fn find(id_or_name: &str) -> Option<Code> {
    ALL.iter()
        .copied()
        .find(|c| c.id.eq_ignore_ascii_case(id_or_name) || c.name == id_or_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_ordered_within_their_prefix() {
        let ids: Vec<&str> = ALL.iter().map(|c| c.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids.len(), sorted.len(), "duplicate code ids");
        assert_eq!(find("IST0101"), Some(REFERENCED_RESOURCE_NOT_FOUND));
        assert_eq!(find("ConflictingGateways"), Some(CONFLICTING_GATEWAYS));
    }
}
