//! DestinationRule findings: rules whose host names no known service, subsets that select no
//! endpoint of their service, and TLS origination that never checks who the server is.

use super::{Analyzer, Context, Entry, Report, ServiceHost, messages, to_fqdn};
use crate::FieldPath;
use crate::kube::ServiceSpec;
use crate::networking::{ClientTlsMode, ClientTlsSettings, DestinationRule, ServiceEntry};
use crate::resource::KindSpec;
use crate::types::{Labels, format_selector, labels_match};

pub(super) const ANALYZERS: &[Analyzer] = &[unverified_server_certificates, hosts_and_subsets];

/// Labels the mesh adds to an endpoint from where it runs (its node, zone, cluster, network).
/// Subsets may select by them, but which pods carry which value is only known once they are
/// scheduled, so subsets that use them are not judged offline.
const PLACEMENT_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "topology.istio.io/cluster",
    "topology.istio.io/network",
];

/// IST0128, IST0129: the rule originates SIMPLE or MUTUAL TLS (for the whole service, or for
/// one port) without a CA to check the server's certificate against, and without saying that
/// skipping the check is intended.
fn unverified_server_certificates(ctx: &Context<'_>, report: &mut Report) {
    for (entry, rule) in ctx.each::<DestinationRule>() {
        let spec = &rule.spec;
        let Some(policy) = &spec.traffic_policy else {
            continue;
        };
        let at = FieldPath::root().key("spec").key("trafficPolicy");
        if let Some(mode) = policy.tls.as_ref().and_then(unverified_mode) {
            report.add(
                messages::NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                entry,
                at.key("tls"),
                format!(
                    "{mode} TLS to {} does not verify the server's certificate: {}",
                    spec.host, VERIFY_HINT
                ),
            );
        }
        for (index, setting) in policy.port_level_settings.iter().enumerate() {
            let Some(mode) = setting.tls.as_ref().and_then(unverified_mode) else {
                continue;
            };
            let port = setting
                .port
                .map_or_else(|| "?".to_owned(), |p| p.number.to_string());
            report.add(
                messages::NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                entry,
                at.key("portLevelSettings").index(index).key("tls"),
                format!(
                    "{mode} TLS to {} port {port} does not verify the server's certificate: {}",
                    spec.host, VERIFY_HINT
                ),
            );
        }
    }
}

const VERIFY_HINT: &str = "set caCertificates (or a credentialName that holds the CA), \
     or insecureSkipVerify: true if skipping the check is intended";

/// The mode, when `tls` originates TLS that verifies nothing.
fn unverified_mode(tls: &ClientTlsSettings) -> Option<&'static str> {
    let mode = tls
        .mode
        .filter(|m| matches!(m, ClientTlsMode::Simple | ClientTlsMode::Mutual))?;
    let unverified = tls.ca_certificates.is_empty()
        && tls.credential_name.is_empty()
        && tls.insecure_skip_verify != Some(true);
    unverified.then(|| mode.as_str())
}

/// IST0174: the rule's host matches no Service or ServiceEntry it can see, so it applies to
/// nothing. IST0173: a subset's labels select none of the endpoints of the rule's service, so
/// traffic routed to the subset fails (503, no healthy upstream).
fn hosts_and_subsets(ctx: &Context<'_>, report: &mut Report) {
    for (entry, rule) in ctx.each::<DestinationRule>() {
        let spec = &rule.spec;
        let namespace = entry.namespace();
        let Some(service) = ctx.find_host(namespace, &spec.export_to, &spec.host) else {
            if !covers_a_known_host(ctx, namespace, &spec.host) {
                report.add(
                    messages::UNKNOWN_DESTINATION_RULE_HOST,
                    entry,
                    FieldPath::root().key("spec").key("host"),
                    format!(
                        "no Service or ServiceEntry visible from namespace {namespace} has host \
                         {}, so the rule applies to nothing; check the host's name and namespace",
                        to_fqdn(&spec.host, namespace)
                    ),
                );
            }
            continue;
        };
        for (index, subset) in spec.subsets.iter().enumerate() {
            if let Some(reason) = selects_nothing(ctx, service, &subset.labels) {
                let at = FieldPath::root().key("spec").key("subsets").index(index);
                let at = if subset.labels.is_empty() {
                    at
                } else {
                    at.key("labels")
                };
                report.add(
                    messages::DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                    entry,
                    at,
                    format!(
                        "subset {} selects no endpoint of {}: {reason}; requests routed to it \
                         will fail with 503 (no healthy upstream)",
                        subset.name, service.host
                    ),
                );
            }
        }
    }
}

/// Whether a wildcard rule host (`*.example.com`, `*`) covers some host visible from
/// `namespace`: such a rule applies to every service it covers.
fn covers_a_known_host(ctx: &Context<'_>, namespace: &str, host: &str) -> bool {
    let Some(suffix) = host.strip_prefix('*') else {
        return false;
    };
    ctx.hosts().iter().any(|h| {
        h.visible_to.iter().any(|v| v == "*" || v == namespace)
            && h.host.trim_start_matches('*').ends_with(suffix)
    })
}

/// Why a subset with `labels` selects no endpoint of `service`, or `None` when it selects some
/// (or when that cannot be told from the analysed files).
fn selects_nothing(
    ctx: &Context<'_>,
    service: &ServiceHost<'_>,
    labels: &Labels,
) -> Option<String> {
    if labels
        .keys()
        .any(|k| PLACEMENT_LABELS.contains(&k.as_str()))
    {
        return None;
    }
    let resource = &service.entry.resource;
    let wanted = format_selector(labels);
    if let Some(kube) = ServiceSpec::object(resource) {
        return selects_no_workload(ctx, service.entry, &kube.spec.selector, labels);
    }
    let service_entry = ServiceEntry::object(resource)?;
    let spec = &service_entry.spec;
    if let Some(selector) = &spec.workload_selector {
        return selects_no_workload(ctx, service.entry, &selector.labels, labels);
    }
    if !spec.endpoints.is_empty() {
        let any = spec
            .endpoints
            .iter()
            .any(|e| labels_match(labels, &e.labels));
        return (!any).then(|| format!("none of its endpoints has labels {wanted}"));
    }
    // The endpoints are the hosts themselves (resolved by DNS), or whatever address the client
    // connected to: they carry no labels.
    (!labels.is_empty()).then(|| {
        format!("its endpoints carry no labels, so none has labels {wanted}; remove the labels")
    })
}

/// For a service that selects its workloads by `selector` in its own namespace: why no workload
/// has both the selector's and the subset's labels. A service without a selector (endpoints
/// managed by hand), or a namespace without any workload in the analysed files, is not judged.
fn selects_no_workload(
    ctx: &Context<'_>,
    service: &Entry,
    selector: &Labels,
    labels: &Labels,
) -> Option<String> {
    let namespace = service.namespace();
    if selector.is_empty()
        || ctx
            .workloads_where(Some(namespace), |_| true)
            .next()
            .is_none()
    {
        return None;
    }
    let mut wanted = selector.clone();
    wanted.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    if ctx
        .workloads_where(Some(namespace), |l| labels_match(&wanted, l))
        .next()
        .is_some()
    {
        return None;
    }
    Some(format!(
        "no Pod, Deployment or WorkloadEntry in namespace {namespace} has labels {}",
        format_selector(&wanted)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_simple_and_mutual_tls_without_a_ca_is_unverified() {
        let tls = |mode, ca: &str, credential: &str, skip| ClientTlsSettings {
            mode: Some(mode),
            ca_certificates: ca.to_owned(),
            credential_name: credential.to_owned(),
            insecure_skip_verify: skip,
            ..ClientTlsSettings::default()
        };
        assert_eq!(
            unverified_mode(&tls(ClientTlsMode::Simple, "", "", None)),
            Some("SIMPLE")
        );
        assert_eq!(
            unverified_mode(&tls(ClientTlsMode::Mutual, "", "", Some(false))),
            Some("MUTUAL")
        );
        assert_eq!(
            unverified_mode(&tls(ClientTlsMode::Simple, "/etc/ca.pem", "", None)),
            None
        );
        assert_eq!(
            unverified_mode(&tls(ClientTlsMode::Simple, "", "client-credential", None)),
            None
        );
        assert_eq!(
            unverified_mode(&tls(ClientTlsMode::Simple, "", "", Some(true))),
            None
        );
        assert_eq!(
            unverified_mode(&tls(ClientTlsMode::IstioMutual, "", "", None)),
            None
        );
        assert_eq!(unverified_mode(&ClientTlsSettings::default()), None);
    }
}
