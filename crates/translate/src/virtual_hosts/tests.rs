use trellis_proxy_config::{Action, Redirect, RedirectPort, VirtualHost};

use crate::GatewayOptions;
use crate::testing::{forward, translate, translate_with};

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: services, namespace: istio-system}
spec:
  hosts: [a.internal, b.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
"#;

fn gateway(name: &str, namespace: &str, hosts: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: {hosts}{extra}}}]\n"
    )
}

fn virtual_service(
    name: &str,
    namespace: &str,
    hosts: &str,
    gateways: &str,
    rules: &str,
) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  hosts: {hosts}\n  gateways: {gateways}\n  http: {rules}\n"
    )
}

fn join(docs: &[String]) -> String {
    let mut all = vec![SERVICES.to_owned()];
    all.extend(docs.iter().cloned());
    all.join("\n---\n")
}

fn hosts(t: &crate::Translation) -> Vec<(String, Vec<String>)> {
    t.config.routes["http.80"]
        .virtual_hosts
        .iter()
        .map(|h| {
            (
                h.domains.join(","),
                h.routes.iter().map(|r| r.name.clone()).collect(),
            )
        })
        .collect()
}

const TO_A: &str = "[{route: [{destination: {host: a.internal}}]}]";

#[test]
fn virtual_hosts_are_the_intersections_of_server_and_virtual_service_hosts() {
    let t = translate(&join(&[
        gateway("gw", "istio-system", r#"["*.example.com", "shop.com"]"#, ""),
        virtual_service(
            "one",
            "istio-system",
            "[a.example.com, b.other.org]",
            "[gw]",
            TO_A,
        ),
        virtual_service("two", "istio-system", r#"["*"]"#, "[gw]", TO_A),
    ]));
    assert_eq!(
        hosts(&t),
        [
            (
                "*.example.com".to_owned(),
                vec!["two.istio-system.0".to_owned()]
            ),
            (
                "a.example.com".to_owned(),
                vec!["one.istio-system.0".to_owned()]
            ),
            ("shop.com".to_owned(), vec!["two.istio-system.0".to_owned()]),
        ]
    );
    let names: Vec<&str> = t.config.routes["http.80"]
        .virtual_hosts
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["*.example.com:80", "a.example.com:80", "shop.com:80"]
    );
}

#[test]
fn server_hosts_are_offered_by_namespace_and_gateways_named_by_namespace() {
    let t = translate(&join(&[
        gateway("gw", "edge", r#"["prod/*", "./own.com"]"#, ""),
        virtual_service("in-prod", "prod", "[p.com]", "[edge/gw]", TO_A),
        virtual_service("in-dev", "dev", "[d.com]", "[edge/gw]", TO_A),
        virtual_service("in-edge", "edge", "[own.com, p2.com]", "[gw]", TO_A),
        virtual_service("wrong-ref", "prod", "[w.com]", "[gw]", TO_A),
    ]));
    assert_eq!(
        hosts(&t),
        [
            ("own.com".to_owned(), vec!["in-edge.edge.0".to_owned()]),
            ("p.com".to_owned(), vec!["in-prod.prod.0".to_owned()]),
        ]
    );
}

#[test]
fn export_to_is_seen_from_the_proxy_namespace() {
    let docs = join(&[
        gateway("gw", "default", r#"["*"]"#, ""),
        virtual_service("local", "default", "[a.com]", "[gw]", TO_A)
            .replace("spec:\n", "spec:\n  exportTo: [\".\"]\n"),
    ]);
    let from_root = translate(&docs);
    assert_eq!(
        hosts(&from_root),
        [("*".to_owned(), vec![])],
        "a blackhole host when nothing applies"
    );
    assert_eq!(
        from_root.config.routes["http.80"].virtual_hosts[0].name,
        "blackhole:80"
    );
    let options = GatewayOptions {
        namespace: Some("default".into()),
        ..GatewayOptions::new([0, 0, 0, 0].into())
    };
    let from_default = translate_with(&docs, &options);
    assert_eq!(
        hosts(&from_default),
        [("a.com".to_owned(), vec!["local.default.0".to_owned()])]
    );
}

#[test]
fn virtual_services_sharing_a_host_merge_in_namespace_name_order() {
    let catch_all_b = "[{route: [{destination: {host: b.internal}}]}]";
    let specific_a = "[{match: [{uri: {prefix: /a}}], route: [{destination: {host: a.internal}}]}]";
    let t = translate(&join(&[
        gateway("gw", "istio-system", r#"["*/shop.com"]"#, ""),
        virtual_service(
            "zeta",
            "apps",
            "[shop.com]",
            "[istio-system/gw]",
            specific_a,
        ),
        virtual_service(
            "alpha",
            "web",
            "[shop.com]",
            "[istio-system/gw]",
            specific_a,
        ),
        virtual_service(
            "beta",
            "apps",
            "[shop.com]",
            "[istio-system/gw]",
            catch_all_b,
        ),
    ]));
    assert_eq!(
        hosts(&t),
        [(
            "shop.com".to_owned(),
            vec![
                "zeta.apps.0".to_owned(),
                "alpha.web.0".to_owned(),
                "beta.apps.0".to_owned()
            ]
        )],
        "apps/beta comes before apps/zeta, but accepts every request, so it moves last"
    );
    assert!(t.warnings.is_empty(), "{:#?}", t.warnings);
}

#[test]
fn servers_sharing_a_port_share_the_route_table() {
    let t = translate(&join(&[
        gateway("one", "istio-system", "[a.com]", ""),
        gateway("two", "istio-system", "[b.com]", ""),
        virtual_service("to-one", "istio-system", "[a.com, b.com]", "[one]", TO_A),
        virtual_service("to-two", "istio-system", "[b.com]", "[two]", TO_A),
    ]));
    assert_eq!(t.config.listeners.len(), 1);
    assert_eq!(
        hosts(&t),
        [
            ("a.com".to_owned(), vec!["to-one.istio-system.0".to_owned()]),
            ("b.com".to_owned(), vec!["to-two.istio-system.0".to_owned()]),
        ],
        "to-one binds only gateway one, whose server does not serve b.com"
    );
    let route = &t.config.routes["http.80"].virtual_hosts[0].routes[0];
    assert_eq!(
        forward(route).destinations[0].cluster,
        "outbound|80||a.internal"
    );
}

#[test]
fn https_redirect_answers_every_request_with_a_redirect() {
    let t = translate(&join(&[
        gateway(
            "gw",
            "istio-system",
            "[a.com, b.com]",
            ", tls: {httpsRedirect: true}",
        ),
        virtual_service("vs", "istio-system", "[a.com]", "[gw]", TO_A),
    ]));
    let table = &t.config.routes["http.80"];
    let redirect = Action::Redirect(Redirect {
        status: 301,
        scheme: Some("https".into()),
        authority: None,
        port: Some(RedirectPort::FromScheme),
        path: None,
        prefix: None,
    });
    let expected: Vec<VirtualHost> = ["a.com", "b.com"]
        .iter()
        .map(|h| VirtualHost {
            name: format!("{h}:80"),
            domains: vec![h.to_string()],
            routes: vec![trellis_proxy_config::Route {
                name: "https-redirect".into(),
                matches: vec![],
                action: redirect.clone(),
                headers: Default::default(),
                fault: None,
                cors: None,
                rate_limit: None,
                source: Some("the Gateway server's tls.httpsRedirect".into()),
            }],
        })
        .collect();
    assert_eq!(table.virtual_hosts, expected);
}

#[test]
fn two_servers_of_one_gateway_add_a_virtual_service_once() {
    let t = translate(&join(&[
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: istio-system}\nspec:\n  servers:\n  \
         - {port: {number: 80, name: http, protocol: HTTP}, hosts: [a.com]}\n  \
         - {port: {number: 80, name: http-2, protocol: HTTP}, hosts: [\"*\"]}\n"
            .to_owned(),
        virtual_service("vs", "istio-system", "[a.com]", "[gw]", TO_A),
    ]));
    assert_eq!(
        hosts(&t),
        [("a.com".to_owned(), vec!["vs.istio-system.0".to_owned()])]
    );
}
