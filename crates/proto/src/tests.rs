//! Encoding then decoding gives back what was encoded, for every field of the model; decoding
//! refuses what breaks a rule and names the field.

use std::collections::BTreeSet;

use prost::Message;
use trellis_proxy_config::*;

use crate::{Resource, decode_resource, encode, type_url, wire};

fn d(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn every_route() -> Vec<Route> {
    let all_matches = RouteMatch {
        path: Some(StringMatch::Prefix("/api".into())),
        ignore_case: true,
        method: Some(StringMatch::Exact("GET".into())),
        authority: Some(StringMatch::Regex(Regex::new("a.*").unwrap())),
        scheme: Some(StringMatch::Any),
        headers: vec![HeaderMatch {
            name: "end-user".into(),
            value: StringMatch::Exact("jason".into()),
            absent: false,
        }],
        query: vec![QueryMatch {
            name: "q".into(),
            value: StringMatch::Any,
        }],
        port: Some(8080),
    };
    let headers = HeaderOperations {
        request: HeaderChanges {
            set: vec![("a".into(), "1".into())],
            add: vec![("b".into(), "2".into())],
            remove: vec!["c".into()],
        },
        response: HeaderChanges::default(),
    };
    let forward = Forward {
        destinations: vec![
            WeightedCluster {
                cluster: "v1".into(),
                weight: 90,
                headers: headers.clone(),
            },
            WeightedCluster {
                cluster: "v2".into(),
                weight: 0,
                headers: HeaderOperations::default(),
            },
        ],
        rewrite: Some(Rewrite {
            path_prefix: Some("/".into()),
            path_regex: Some((Regex::new("^/x/(.*)$").unwrap(), "/\\1".into())),
            authority: Some("other".into()),
        }),
        timeout: Some(d(1500)),
        retry: Some(RetryPolicy {
            attempts: 3,
            per_try_timeout: Some(d(200)),
            retry_on: BTreeSet::from([RetryOn::GatewayError, RetryOn::Retriable4xx]),
            retriable_status_codes: BTreeSet::from([409, 503]),
            backoff: d(25),
        }),
        mirrors: vec![Mirror {
            cluster: "shadow".into(),
            percent: 12.5,
        }],
    };
    vec![
        Route {
            name: "forward".into(),
            matches: vec![all_matches, RouteMatch::default()],
            action: Action::Forward(forward),
            headers,
            fault: Some(Fault {
                delay: Some(FaultDelay {
                    fixed: d(5000),
                    percent: 10.0,
                }),
                abort: Some(FaultAbort {
                    status: AbortStatus::Grpc(14),
                    percent: 0.1,
                }),
            }),
            cors: Some(CorsPolicy {
                allow_origins: vec![StringMatch::Exact("https://a.example".into())],
                allow_methods: vec!["GET".into()],
                allow_headers: vec!["x".into()],
                expose_headers: vec!["y".into()],
                max_age: Some(d(86_400_000)),
                allow_credentials: true,
                forward_unmatched_preflights: true,
            }),
            rate_limit: Some(RateLimit {
                bucket: "default/reviews".into(),
                requests_per_second: 0.5,
                burst: 3,
            }),
            source: Some("VirtualService default/reviews spec.http[0]".into()),
        },
        Route {
            name: "redirect".into(),
            matches: vec![],
            action: Action::Redirect(Redirect {
                status: 301,
                scheme: Some("https".into()),
                authority: Some("b".into()),
                port: Some(RedirectPort::FromScheme),
                path: Some("/p".into()),
                prefix: None,
            }),
            headers: HeaderOperations::default(),
            fault: Some(Fault {
                delay: None,
                abort: Some(FaultAbort {
                    status: AbortStatus::Http(503),
                    percent: 100.0,
                }),
            }),
            cors: None,
            rate_limit: None,
            source: None,
        },
        Route {
            name: "direct".into(),
            matches: vec![],
            action: Action::DirectResponse(DirectResponse {
                status: 418,
                body: Some("teapot".into()),
            }),
            headers: HeaderOperations::default(),
            fault: None,
            cors: None,
            rate_limit: None,
            source: None,
        },
    ]
}

fn every_cluster() -> Vec<Cluster> {
    let plain = Cluster {
        name: "plain".into(),
        load_balancer: LoadBalancer::RoundRobin,
        endpoints: vec![],
        protocol: UpstreamProtocol::Http1,
        connect_timeout: None,
        idle_timeout: None,
        service: None,
        outlier_detection: None,
        limits: None,
        tcp_keepalive: None,
        health_check: None,
        source: None,
        tls: None,
    };
    let full = Cluster {
        name: "outbound|9080|v1|reviews.default.svc.cluster.local".into(),
        load_balancer: LoadBalancer::RingHash {
            key: HashKey::Cookie {
                name: "user".into(),
                path: Some("/".into()),
                ttl: Some(d(60_000)),
            },
            minimum_ring_size: Some(2048),
        },
        endpoints: vec![
            Endpoint {
                address: "10.0.0.1:9080".parse().unwrap(),
                weight: 3,
                labels: (0..8)
                    .map(|i| (format!("label-{i}"), format!("{i}")))
                    .collect(),
            },
            Endpoint::new("[::1]:9080".parse().unwrap()),
        ],
        protocol: UpstreamProtocol::SameAsDownstream,
        connect_timeout: Some(d(10_000)),
        idle_timeout: Some(d(3_600_000)),
        service: Some(ServiceRef {
            host: "reviews.default.svc.cluster.local".into(),
            name: "reviews".into(),
            namespace: "default".into(),
            subset: Some("v1".into()),
        }),
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: None,
            interval: d(10_000),
            base_ejection_time: d(30_000),
            max_ejection_percent: 10,
            min_health_percent: 0,
        }),
        limits: Some(ConnectionLimits {
            max_connections: Some(100),
            max_pending_requests: None,
            max_requests: Some(1000),
            max_retries: Some(3),
            max_requests_per_connection: Some(1),
            retry_budget: Some(RetryBudget {
                percent: 20.0,
                min_concurrency: 3,
            }),
        }),
        tcp_keepalive: Some(TcpKeepalive {
            time: Some(d(7_200_000)),
            interval: None,
            probes: Some(9),
        }),
        health_check: Some(HealthCheck {
            check: HealthCheckKind::Grpc {
                service: String::new(),
            },
            interval: d(5000),
            timeout: d(1000),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }),
        source: Some("DestinationRule default/reviews".into()),
        tls: Some(UpstreamTls::Mesh {
            identities: vec![
                "spiffe://cluster.local/ns/default/sa/reviews".into(),
                "spiffe://cluster.local/ns/default/sa/reviews-v2".into(),
            ],
            automatic: true,
            sni: Some("outbound_.9080_.v1_.reviews.default.svc.cluster.local".into()),
        }),
    };
    let mutual = TlsOrigination {
        ca_certificates: Some("/etc/certs/root.pem".into()),
        client_certificate: Some("/etc/certs/client.pem".into()),
        private_key: Some("/etc/certs/client-key.pem".into()),
        subject_alt_names: vec![
            "reviews.example.com".into(),
            "spiffe://example.com/r".into(),
        ],
        sni: Some("reviews.example.com".into()),
        insecure_skip_verify: false,
    };
    let mut others = Vec::new();
    for (i, (load_balancer, check, tls)) in [
        (
            LoadBalancer::LeastRequest,
            HealthCheckKind::Tcp,
            Some(UpstreamTls::Mesh {
                identities: vec![],
                automatic: false,
                sni: None,
            }),
        ),
        (
            LoadBalancer::Random,
            HealthCheckKind::Http {
                path: "/healthz".into(),
            },
            Some(UpstreamTls::Origination(mutual)),
        ),
        (
            LoadBalancer::PeakEwma,
            HealthCheckKind::Tcp,
            Some(UpstreamTls::Origination(TlsOrigination::default())),
        ),
        (
            LoadBalancer::Maglev {
                key: HashKey::SourceIp,
                table_size: None,
            },
            HealthCheckKind::Tcp,
            Some(UpstreamTls::Origination(TlsOrigination {
                sni: Some("db.example.com".into()),
                insecure_skip_verify: true,
                ..TlsOrigination::default()
            })),
        ),
        (
            LoadBalancer::Maglev {
                key: HashKey::Header("x-user".into()),
                table_size: Some(65537),
            },
            HealthCheckKind::Tcp,
            None,
        ),
        (
            LoadBalancer::RingHash {
                key: HashKey::QueryParameter("id".into()),
                minimum_ring_size: None,
            },
            HealthCheckKind::Tcp,
            Some(UpstreamTls::Origination(TlsOrigination {
                ca_certificates: Some("/etc/certs/root.pem".into()),
                subject_alt_names: vec!["db.example.com".into()],
                ..TlsOrigination::default()
            })),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = full.clone();
        c.name = format!("other-{i}");
        c.load_balancer = load_balancer;
        c.protocol = UpstreamProtocol::Http2;
        c.health_check.as_mut().unwrap().check = check;
        c.tls = tls;
        others.push(c);
    }
    [vec![plain, full], others].concat()
}

fn roundtrip<W: Message>(type_url: &str, message: &W) -> Resource {
    decode_resource(type_url, &message.encode_to_vec()).unwrap()
}

#[test]
fn every_field_comes_back_as_it_went() {
    let table = RouteTable {
        name: "http.8080".into(),
        virtual_hosts: vec![VirtualHost {
            name: "reviews".into(),
            domains: vec!["reviews".into(), "*.example.com".into()],
            routes: every_route(),
        }],
        on_demand: false,
    };
    let back = roundtrip(type_url::ROUTE_TABLE, &encode::route_table(&table));
    assert_eq!(back, Resource::RouteTable(table));
    for cluster in every_cluster() {
        // Equal values encode to equal bytes (a resource's version is a hash of them).
        assert_eq!(
            encode::cluster(&cluster).encode_to_vec(),
            encode::cluster(&cluster.clone()).encode_to_vec()
        );
        let back = roundtrip(type_url::CLUSTER, &encode::cluster(&cluster));
        assert_eq!(back, Resource::Cluster(Box::new(cluster)));
    }
    for protocol in [
        ListenerProtocol::Http {
            route_table: "http.8080".into(),
        },
        ListenerProtocol::Tcp {
            cluster: "plain".into(),
        },
        ListenerProtocol::Detect {
            route_table: "http.8080".into(),
            tcp_cluster: Some("plain".into()),
            detection_timeout: Some(d(100)),
        },
    ] {
        for mtls in [None, Some(PeerMtls::Strict), Some(PeerMtls::Permissive)] {
            let listener = Listener {
                name: "0.0.0.0_8080".into(),
                address: "0.0.0.0:8080".parse().unwrap(),
                protocol: protocol.clone(),
                mtls,
                inbound: mtls.is_some(),
                captured: mtls.is_none(),
            };
            let back = roundtrip(type_url::LISTENER, &encode::listener(&listener));
            assert_eq!(back, Resource::Listener(listener));
        }
    }
}

#[test]
fn an_on_demand_table_goes_without_its_hosts_and_each_host_on_its_own() {
    let host = VirtualHost {
        name: "reviews.default.svc.cluster.local:9080".into(),
        domains: vec!["reviews:9080".into()],
        routes: every_route(),
    };
    let table = RouteTable {
        name: "outbound".into(),
        virtual_hosts: vec![host.clone()],
        on_demand: true,
    };
    let back = roundtrip(type_url::ROUTE_TABLE, &encode::route_table(&table));
    let Resource::RouteTable(back) = back else {
        panic!("{back:?}")
    };
    assert!(back.on_demand && back.virtual_hosts.is_empty());
    let (name, message) = encode::on_demand_host("outbound", &host);
    assert_eq!(name, "outbound/reviews.default.svc.cluster.local:9080");
    let back = roundtrip(type_url::ON_DEMAND_HOST, &message);
    assert_eq!(back.name(), name);
    assert_eq!(
        back,
        Resource::OnDemandHost(crate::OnDemandHost {
            name,
            route_table: "outbound".into(),
            host: host.clone(),
        })
    );

    let mut with_hosts = encode::route_table(&table);
    with_hosts.virtual_hosts.push(encode::virtual_host(&host));
    assert_eq!(
        refused(type_url::ROUTE_TABLE, &with_hosts),
        "virtual_hosts: an on-demand table's hosts come on their own"
    );
    let mut hostless = message.clone();
    hostless.virtual_host = None;
    assert_eq!(
        refused(type_url::ON_DEMAND_HOST, &hostless),
        "virtual_host: is required"
    );
    let mut tableless = message;
    tableless.route_table.clear();
    assert_eq!(
        refused(type_url::ON_DEMAND_HOST, &tableless),
        "route_table: is empty"
    );
}

fn refused<W: Message>(type_url: &str, message: &W) -> String {
    decode_resource(type_url, &message.encode_to_vec())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_broken_resource_is_refused_naming_the_field() {
    let mut table = encode::route_table(&RouteTable {
        name: "t".into(),
        virtual_hosts: vec![VirtualHost {
            name: "h".into(),
            domains: vec!["*".into()],
            routes: every_route(),
        }],
        on_demand: false,
    });
    let route = &mut table.virtual_hosts[0].routes[0];
    let Some(wire::route::Action::Forward(forward)) = &mut route.action else {
        unreachable!()
    };
    forward.retry.as_mut().unwrap().retry_on.push(99);
    assert_eq!(
        refused(type_url::ROUTE_TABLE, &table),
        "virtual_hosts[0].routes[0].forward.retry.retry_on[2]: 99 is not a retry condition"
    );
    table.virtual_hosts[0].routes[1].action = None;
    table.virtual_hosts[0].routes[0] = table.virtual_hosts[0].routes[1].clone();
    assert_eq!(
        refused(type_url::ROUTE_TABLE, &table),
        "virtual_hosts[0].routes[0].action: is required"
    );

    let mut cluster = encode::cluster(&every_cluster()[1]);
    cluster.endpoints[1].address = "reviews:9080".into();
    assert_eq!(
        refused(type_url::CLUSTER, &cluster),
        "endpoints[1].address: \"reviews:9080\" is not an IP address and port"
    );
    let mut cluster = encode::cluster(&every_cluster()[1]);
    cluster.outlier_detection.as_mut().unwrap().interval = None;
    assert_eq!(
        refused(type_url::CLUSTER, &cluster),
        "outlier_detection.interval: is required"
    );
    let mut cluster = encode::cluster(&every_cluster()[1]);
    cluster.health_check.as_mut().unwrap().timeout = Some(prost_types::Duration {
        seconds: -1,
        nanos: 0,
    });
    assert_eq!(
        refused(type_url::CLUSTER, &cluster),
        "health_check.timeout: -1s is negative"
    );

    assert_eq!(
        refused(type_url::LISTENER, &wire::Listener::default()),
        "protocol: is required"
    );
    assert!(refused(type_url::LISTENER, &wire::Cluster::default()).starts_with("protocol"));
    assert_eq!(
        decode_resource(type_url::CLUSTER, &[0xff, 0xff])
            .unwrap_err()
            .path,
        ""
    );
    assert!(
        decode_resource("type.googleapis.com/x.Y", &[])
            .unwrap_err()
            .to_string()
            .contains("not a resource type")
    );
}

#[test]
fn broken_tls_is_refused_naming_the_field() {
    let listener = |mtls| wire::Listener {
        mtls,
        ..encode::listener(&Listener {
            name: "inbound|9080".into(),
            address: "0.0.0.0:15006".parse().unwrap(),
            protocol: ListenerProtocol::Tcp {
                cluster: "inbound|9080".into(),
            },
            mtls: Some(PeerMtls::Strict),
            inbound: true,
            captured: false,
        })
    };
    assert_eq!(
        refused(type_url::LISTENER, &listener(Some(0))),
        "mtls: 0 is not a peer mTLS mode"
    );
    assert_eq!(
        refused(type_url::LISTENER, &listener(Some(3))),
        "mtls: 3 is not a peer mTLS mode"
    );

    use wire::upstream_tls::Mode;
    // The cluster `every_cluster()[i]` with its TLS changed.
    let cluster = |i: usize, change: &dyn Fn(&mut Mode)| {
        let mut c = encode::cluster(&every_cluster()[i]);
        change(c.tls.as_mut().unwrap().mode.as_mut().unwrap());
        c
    };
    let mesh = |change: &dyn Fn(&mut wire::MeshTls)| {
        cluster(1, &|mode| match mode {
            Mode::Mesh(m) => change(m),
            Mode::Origination(_) => unreachable!(),
        })
    };
    let origination = |change: &dyn Fn(&mut wire::TlsOrigination)| {
        cluster(3, &|mode| match mode {
            Mode::Origination(o) => change(o),
            Mode::Mesh(_) => unreachable!(),
        })
    };
    let mut modeless = encode::cluster(&every_cluster()[1]);
    modeless.tls.as_mut().unwrap().mode = None;
    assert_eq!(
        refused(type_url::CLUSTER, &modeless),
        "tls.mode: is required"
    );
    for (broken, error) in [
        (
            mesh(&|m| m.identities[1].clear()),
            "tls.mesh.identities[1]: is empty",
        ),
        (
            mesh(&|m| m.sni = Some(String::new())),
            "tls.mesh.sni: is empty",
        ),
        (
            origination(&|o| o.client_certificate = None),
            "tls.origination.client_certificate: is required with a private_key",
        ),
        (
            origination(&|o| o.private_key = None),
            "tls.origination.private_key: is required with a client_certificate",
        ),
        (
            origination(&|o| o.ca_certificates = Some(String::new())),
            "tls.origination.ca_certificates: is empty",
        ),
        (
            origination(&|o| o.private_key = Some(String::new())),
            "tls.origination.private_key: is empty",
        ),
        (
            origination(&|o| o.subject_alt_names.push(String::new())),
            "tls.origination.subject_alt_names[2]: is empty",
        ),
        (
            origination(&|o| o.sni = Some(String::new())),
            "tls.origination.sni: is empty",
        ),
        (
            origination(&|o| {
                o.client_certificate = None;
                o.private_key = None;
                o.insecure_skip_verify = true;
            }),
            "tls.origination.ca_certificates: cannot be combined with insecure_skip_verify, \
             which verifies nothing",
        ),
        (
            origination(&|o| {
                o.ca_certificates = None;
                o.insecure_skip_verify = true;
            }),
            "tls.origination.subject_alt_names: cannot be combined with insecure_skip_verify, \
             which verifies nothing",
        ),
    ] {
        assert_eq!(refused(type_url::CLUSTER, &broken), error);
    }
}
