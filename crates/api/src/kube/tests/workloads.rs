//! `Deployment`, `Pod` and `Namespace`: full objects, and each rule at its field.

use super::{accepted, as_written, errors};
use crate::resource::Resource;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  labels: {app: reviews, version: v1}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%}}
  revisionHistoryLimit: 3
  minReadySeconds: 5
  progressDeadlineSeconds: 600
  paused: false
  selector:
    matchLabels: {app: reviews}
    matchExpressions:
    - {key: version, operator: In, values: [v1]}
  template:
    metadata:
      labels: {app: reviews, version: v1}
      annotations: {prometheus.io/scrape: 'true'}
    spec:
      serviceAccountName: bookinfo-reviews
      hostNetwork: false
      securityContext: {runAsUser: 1000, fsGroup: 2000, seccompProfile: {type: RuntimeDefault}}
      initContainers:
      - name: init
        image: busybox
        command: [sh, -c, 'true']
      containers:
      - name: reviews
        image: registry.istio.io/release/examples-bookinfo-reviews-v1:1.20.3
        imagePullPolicy: IfNotPresent
        args: [--verbose]
        workingDir: /app
        env:
        - {name: LOG_DIR, value: /tmp/logs}
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        envFrom: [{configMapRef: {name: settings}}]
        ports:
        - {containerPort: 9080, name: http, protocol: TCP}
        - {containerPort: 9090, name: metrics, hostPort: 9090, hostIP: 0.0.0.0}
        resources: {limits: {cpu: 500m}}
        volumeMounts: [{name: tmp, mountPath: /tmp}]
        readinessProbe: {httpGet: {path: /health, port: 9080}}
        securityContext:
          runAsUser: 1337
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
      volumes: [{name: tmp, emptyDir: {}}]
      nodeSelector: {kubernetes.io/os: linux}
      tolerations: [{key: dedicated, operator: Exists}]
      affinity: {}
      terminationGracePeriodSeconds: 30
      dnsPolicy: ClusterFirst
      priorityClassName: high
      topologySpreadConstraints: []
      setHostnameAsFQDN: false
      hostPID: false
      hostIPC: false
      restartPolicy: Always
";

#[test]
fn a_full_deployment_loads_and_round_trips() {
    let (resource, warnings) = accepted(DEPLOYMENT);
    assert!(warnings.is_empty(), "{warnings:?}");
    let Resource::Deployment(deployment) = &resource else {
        panic!("not a deployment: {resource:?}")
    };
    let pod = &deployment.spec.template.spec;
    assert_eq!(deployment.spec.replicas, Some(2));
    assert_eq!(pod.service_account(), Some("bookinfo-reviews"));
    assert_eq!(
        pod.all_containers()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["init", "reviews"]
    );
    assert_eq!(pod.run_as_user(&pod.containers[0]), Some(1337));
    assert_eq!(pod.run_as_user(&pod.init_containers[0]), Some(1000));
    assert_eq!(pod.containers[0].ports[0].container_port.get(), 9080);
    assert_eq!(resource.to_value()["spec"], as_written(DEPLOYMENT)["spec"]);
}

#[test]
fn deployment_selector_must_match_template_labels() {
    let text = DEPLOYMENT.replace("values: [v1]", "values: [v2]");
    let found = errors(&text);
    assert_eq!(
        found,
        [
            "spec.template.metadata.labels: selector does not match template labels: the template's pods (app=reviews,version=v1) would not belong to the deployment"
        ]
    );
}

#[test]
fn deployment_selector_and_template_are_required() {
    let text = "apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 1
";
    assert_eq!(
        errors(text),
        [
            "spec.selector: is required: a deployment selects its pods with matchLabels or matchExpressions",
            "spec.template.spec.containers: a pod needs at least one container",
        ]
    );
    let text = "apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: -1
  selector: {}
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: app, image: app}]
";
    assert_eq!(
        errors(text),
        [
            "spec.replicas: cannot be negative (got -1)",
            "spec.selector: is required: a deployment selects its pods with matchLabels or matchExpressions",
            "spec.template.spec.restartPolicy: a deployment's pods must use Always",
        ]
    );
}

#[test]
fn template_metadata_needs_no_name_but_valid_labels() {
    let text = DEPLOYMENT.replace(
        "labels: {app: reviews, version: v1}\n      annotations",
        "labels: {app: reviews, version: v1, bad/key/x: y}\n      annotations",
    );
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .starts_with("spec.template.metadata.labels[\"bad/key/x\"]: label key \"bad/key/x\""),
        "{found:?}"
    );
}

fn pod_with(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n{spec}")
}

#[test]
fn pods_need_named_containers_with_images() {
    assert_eq!(
        errors(&pod_with("  hostNetwork: true\n")),
        ["spec.containers: a pod needs at least one container"]
    );
    let text = pod_with(
        "  initContainers:
  - {name: app, image: init}
  containers:
  - {name: app, image: app}
  - {name: Sidecar, image: ' proxy'}
  - {name: '', image: x}
  - name: noimage
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.containers[0].name: container name \"app\" is used twice; names must be unique across containers and initContainers",
            "spec.containers[1].name: \"Sidecar\" is not a valid container name: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
            "spec.containers[1].image: must not start or end with whitespace",
            "spec.containers[2].name: is required",
            "spec.containers[3].image: is required: name the container image to run",
        ]
    );
}

#[test]
fn container_ports_are_checked() {
    let text = pod_with(
        "  hostNetwork: true
  containers:
  - name: app
    image: app
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 8081, name: http}
    - {containerPort: 8082, name: HTTP, hostPort: 9000}
    - {containerPort: 8083, hostIP: localhost}
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.containers[0].ports[1].name: port name \"http\" is used twice in this container",
            "spec.containers[0].ports[2].name: \"HTTP\" is not a valid port name: only lowercase letters, digits and '-' are allowed; use 1-15 lowercase letters, digits and '-', with at least one letter",
            "spec.containers[0].ports[2].hostPort: must be the same as containerPort (8082) when hostNetwork is true",
            "spec.containers[0].ports[3].hostIP: \"localhost\" is not an IP address",
        ]
    );
    let found = errors(&pod_with(
        "  containers:\n  - {name: app, image: app, ports: [{containerPort: 0}]}\n",
    ));
    assert_eq!(
        found,
        ["spec.containers[0].ports[0].containerPort: port must be between 1 and 65535 (got 0)"]
    );
}

#[test]
fn env_vars_and_user_ids_are_checked() {
    let text = pod_with(
        "  securityContext: {runAsUser: -1}
  containers:
  - name: app
    image: app
    securityContext: {runAsUser: 4294967296}
    env:
    - {name: '', value: x}
    - {name: A=B}
    - name: C
      value: x
      valueFrom: {secretKeyRef: {name: s, key: k}}
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.containers[0].env[0].name: is required",
            "spec.containers[0].env[1].name: \"A=B\" is not a valid variable name: it cannot contain '='",
            "spec.containers[0].env[2].valueFrom: cannot be combined with a non-empty value; use one or the other",
            "spec.containers[0].securityContext.runAsUser: must be between 0 and 2147483647 (got 4294967296)",
            "spec.securityContext.runAsUser: must be between 0 and 2147483647 (got -1)",
        ]
    );
}

#[test]
fn misspelt_container_fields_are_unknown() {
    let text = pod_with(
        "  containers:
  - name: app
    image: app
    imagePullPolcy: Always
    securityContext: {runAsUsr: 1}
",
    );
    assert_eq!(
        errors(&text),
        [
            "spec.containers[0].imagePullPolcy: unknown field \"imagePullPolcy\"",
            "spec.containers[0].securityContext.runAsUsr: unknown field \"runAsUsr\"",
        ]
    );
}

#[test]
fn service_account_spellings() {
    let (_, warnings) = accepted(&pod_with(
        "  serviceAccountName: a\n  serviceAccount: b\n  containers: [{name: app, image: app}]\n",
    ));
    assert_eq!(
        warnings,
        [
            "spec.serviceAccount: is the deprecated spelling of serviceAccountName, which wins (\"a\"); remove it"
        ]
    );
    assert_eq!(
        errors(&pod_with(
            "  serviceAccountName: My_SA\n  containers: [{name: app, image: app}]\n"
        )),
        [
            "spec.serviceAccountName: \"My_SA\" is not a valid service account name: use lowercase letters, digits, '-' and '.'"
        ]
    );
}

#[test]
fn namespaces() {
    let (resource, _) = accepted(
        "apiVersion: v1
kind: Namespace
metadata:
  name: bookinfo
  labels: {istio-injection: enabled}
spec:
  finalizers: [kubernetes]
",
    );
    assert_eq!(resource.namespace(), "", "a namespace is not namespaced");
    assert_eq!(
        errors(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: book.info}\nspec: {finalizers: ['a/b/c']}\n"
        ),
        [
            "spec.finalizers[0]: finalizer \"a/b/c\": prefix \"a/b\" must be a DNS subdomain",
            "metadata.name: \"book.info\" is not a valid namespace name: use at most 63 lowercase letters, digits and '-' (no dots)",
        ]
    );
}
