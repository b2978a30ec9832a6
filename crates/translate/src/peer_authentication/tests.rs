use std::collections::BTreeMap;

use trellis_proxy_config::PeerMtls;

use super::*;
use crate::resources::of_kind;
use crate::testing::load;

/// A PeerAuthentication `namespace/name` with this spec (flow YAML).
fn policy(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n---\n"
    )
}

fn mesh(mode: &str) -> String {
    policy(
        "istio-system",
        "default",
        &format!("{{mtls: {{mode: {mode}}}}}"),
    )
}

fn namespace(mode: &str) -> String {
    policy("default", "default", &format!("{{mtls: {{mode: {mode}}}}}"))
}

/// What the listeners on ports 8080 and 9090 of the workload `app: ratings` in `default`
/// accept under these policies, and the warnings.
fn modes(policies: &str) -> ([Option<PeerMtls>; 2], Vec<String>) {
    let resources = load(policies);
    let policies = of_kind(&resources);
    let labels = BTreeMap::from([("app".to_owned(), "ratings".to_owned())]);
    let mut warnings = Warnings::default();
    let modes = PeerModes::for_workload(&policies, "default", &labels, &mut warnings);
    (
        [modes.listener(8080), modes.listener(9090)],
        warnings.into_vec(),
    )
}

const STRICT: Option<PeerMtls> = Some(PeerMtls::Strict);
const PERMISSIVE: Option<PeerMtls> = Some(PeerMtls::Permissive);
const DISABLE: Option<PeerMtls> = None;

#[test]
fn without_policies_listeners_are_permissive() {
    assert_eq!(modes("").0, [PERMISSIVE; 2]);
}

#[test]
fn the_workloads_policy_wins_over_the_namespaces_over_the_meshs() {
    assert_eq!(modes(&mesh("STRICT")).0, [STRICT; 2]);
    assert_eq!(
        modes(&format!("{}{}", mesh("STRICT"), namespace("DISABLE"))).0,
        [DISABLE; 2]
    );
    let workload = policy(
        "default",
        "ratings",
        "{selector: {matchLabels: {app: ratings}}, mtls: {mode: STRICT}}",
    );
    assert_eq!(
        modes(&format!(
            "{}{}{workload}",
            mesh("DISABLE"),
            namespace("PERMISSIVE")
        ))
        .0,
        [STRICT; 2]
    );
    // Another workload's policy, another namespace's, and a selector in the root namespace (which
    // Istio applies to no workload) do not apply.
    let others = [
        policy(
            "default",
            "reviews",
            "{selector: {matchLabels: {app: reviews}}, mtls: {mode: STRICT}}",
        ),
        policy("other", "default", "{mtls: {mode: STRICT}}"),
        policy(
            "istio-system",
            "ratings",
            "{selector: {matchLabels: {app: ratings}}, mtls: {mode: STRICT}}",
        ),
    ];
    assert_eq!(modes(&others.concat()).0, [PERMISSIVE; 2]);
}

#[test]
fn unset_inherits_from_the_level_above() {
    let unset_workload = policy(
        "default",
        "ratings",
        "{selector: {matchLabels: {app: ratings}}}",
    );
    assert_eq!(
        modes(&format!(
            "{}{}{unset_workload}",
            mesh("STRICT"),
            namespace("UNSET")
        ))
        .0,
        [STRICT; 2]
    );
    // A selector without labels is namespace-wide, as in Istio.
    let empty_selector = policy("default", "all", "{selector: {}, mtls: {mode: UNSET}}");
    assert_eq!(
        modes(&format!("{}{empty_selector}", mesh("DISABLE"))).0,
        [DISABLE; 2]
    );
}

#[test]
fn port_level_modes_override_the_workloads_for_their_port() {
    let workload = policy(
        "default",
        "ratings",
        "{selector: {matchLabels: {app: ratings}}, mtls: {mode: UNSET}, \
         portLevelMtls: {8080: {mode: PERMISSIVE}, 9090: {mode: UNSET}}}",
    );
    assert_eq!(
        modes(&format!("{}{workload}", namespace("STRICT"))).0,
        [PERMISSIVE, STRICT]
    );
    let disabled_port = policy(
        "default",
        "ratings",
        "{selector: {matchLabels: {app: ratings}}, mtls: {mode: STRICT}, \
         portLevelMtls: {9090: {mode: DISABLE}}}",
    );
    assert_eq!(modes(&disabled_port).0, [STRICT, DISABLE]);
}

#[test]
fn of_several_policies_at_one_level_the_first_by_name_is_in_force() {
    let (found, warnings) = modes(&format!(
        "{}{}",
        policy("default", "b", "{mtls: {mode: STRICT}}"),
        policy("default", "a", "{mtls: {mode: DISABLE}}"),
    ));
    assert_eq!(found, [DISABLE; 2]);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "PeerAuthentication default/b: spec: not in force: default/a is also namespace-wide"
        ),
        "{warnings:#?}"
    );
}

#[test]
fn a_namespaces_mode_ignores_workload_policies() {
    let resources = load(&format!(
        "{}{}",
        mesh("DISABLE"),
        policy(
            "default",
            "ratings",
            "{selector: {matchLabels: {app: ratings}}, mtls: {mode: STRICT}}"
        )
    ));
    let policies = of_kind(&resources);
    assert_eq!(namespace_mode(&policies, "default"), MutualTlsMode::Disable);
    assert_eq!(namespace_mode(&[], "default"), MutualTlsMode::Permissive);
}
