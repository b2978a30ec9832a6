use super::*;

fn resources(yaml: &str) -> Vec<Resource> {
    let load = trellis_api::load::load_text("test.yaml", yaml, &Default::default());
    assert!(load.is_clean(), "{:?}", load.errors());
    load.loaded.into_iter().map(|l| l.resource).collect()
}

fn services() -> Cidr {
    "10.96.0.0/16".parse().unwrap()
}

const APP: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web, version: v1}
      annotations:
        traffic.sidecar.istio.io/excludeOutboundPorts: "5432, 6379"
        traffic.sidecar.istio.io/excludeOutboundIPRanges: 169.254.0.0/16
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: web
        command: [web-server]
        args: [--port, "8080"]
        env: [{name: MODE, value: fast}]
        ports: [{containerPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata:
      labels: {app: client}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers:
      - {name: sleep, image: sleep, command: [sleep, infinity]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web}}]}]
"#;

#[test]
fn deployments_become_pods_and_services_get_virtual_ips() {
    let plan = plan(resources(APP), services()).unwrap();
    let names: Vec<&str> = plan.pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-v1-0", "web-v1-1", "client-0"]);
    let web = &plan.pods[0];
    assert_eq!(web.namespace, "shop");
    assert_eq!(web.workload, "web-v1");
    assert_eq!(web.role, PodRole::Sidecar);
    assert_eq!(web.service_account, "web");
    assert_eq!(
        web.labels.get(TLS_MODE_LABEL).map(String::as_str),
        Some("istio")
    );
    assert_eq!(web.containers[0].command, ["web-server", "--port", "8080"]);
    assert_eq!(
        web.containers[0].env,
        [("MODE".to_owned(), "fast".to_owned())]
    );
    assert_eq!(web.ports, [8080]);
    assert_eq!(web.exclude_outbound_ports, [5432, 6379]);
    assert_eq!(
        web.exclude_outbound_ranges,
        ["169.254.0.0/16".parse::<Cidr>().unwrap()]
    );

    let client = &plan.pods[2];
    assert_eq!(client.role, PodRole::Plain);
    assert_eq!(client.service_account, "default");
    assert!(
        !client.labels.contains_key(TLS_MODE_LABEL),
        "no sidecar, no mutual TLS"
    );

    // Virtual IPs in namespace/name order, written into the Services the control plane reads.
    let vips: Vec<(&str, String)> = plan
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.vip.to_string()))
        .collect();
    assert_eq!(
        vips,
        [
            ("db", "10.96.0.1".to_owned()),
            ("web", "10.96.0.2".to_owned())
        ]
    );
    let kinds: Vec<&str> = plan.config.iter().map(|r| r.kind().name()).collect();
    assert_eq!(kinds, ["VirtualService", "Service", "Service"]);
    let Resource::Service(web) = &plan.config[2] else {
        panic!("a service")
    };
    assert_eq!(web.spec.cluster_ip.as_deref(), Some("10.96.0.2"));
}

#[test]
fn service_names_resolve_as_kubernetes_dns_answers_them() {
    let plan = plan(resources(APP), services()).unwrap();
    let web = &plan.services[1];
    assert_eq!(
        web.names("shop"),
        [
            "web",
            "web.shop",
            "web.shop.svc",
            "web.shop.svc.cluster.local"
        ]
    );
    assert_eq!(
        web.names("default"),
        ["web.shop", "web.shop.svc", "web.shop.svc.cluster.local"],
        "the short name is the service's own namespace's"
    );
}

#[test]
fn what_cannot_run_locally_is_named_with_its_field() {
    let yaml = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: image-only}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata:
      labels: {app: a}
      annotations: {traffic.sidecar.istio.io/excludeInboundPorts: "80,http"}
    spec:
      containers:
      - name: a
        image: nginx
        env: [{name: SECRET, valueFrom: {secretKeyRef: {name: s, key: k}}}]
"#;
    let errors = plan(resources(yaml), services()).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].starts_with("Deployment default/image-only: spec.template.spec.containers[0].command: the local mesh runs"), "{}", errors[0]);
    assert!(
        errors[1].contains("containers[0].env[0].valueFrom: not available"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("annotations[traffic.sidecar.istio.io/excludeInboundPorts]: \"http\" is not a port number"), "{}", errors[2]);
}

#[test]
fn a_full_service_range_is_an_error() {
    assert!(
        plan(resources(APP), "10.96.0.0/30".parse().unwrap()).is_ok(),
        "a /30 has two hosts, for two services"
    );
    let mut three = APP.to_owned();
    three.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: cache}\nspec:\n  selector: {app: cache}\n  ports: [{port: 6379}]\n");
    let errors = plan(resources(&three), "10.96.0.0/30".parse().unwrap()).unwrap_err();
    assert_eq!(
        errors,
        [
            "Service shop/web: the service range 10.96.0.0/30 has no address left; give a larger --service-cidr"
        ]
    );
}
