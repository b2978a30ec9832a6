//! What recording one request's metrics costs: `cargo bench -p trellis-proxy --bench record`.
//! Prints nanoseconds per request; a measurement, not a test.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use trellis_proxy::telemetry::{
    Metrics, ProxyIdentity, RequestOutcome, RequestProtocol, ResponseFlags,
};
use trellis_proxy_config::ServiceRef;

fn main() {
    let metrics = Metrics::new(&ProxyIdentity {
        workload: "productpage-v1".into(),
        namespace: "default".into(),
        ..ProxyIdentity::default()
    });
    let service = ServiceRef {
        host: "reviews.default.svc.cluster.local".into(),
        name: "reviews".into(),
        namespace: "default".into(),
        subset: None,
    };
    let edge = metrics.outbound(Some(&service), None);
    let codes = [200u16, 200, 200, 404, 503];
    let rounds: u32 = 2_000_000;
    let started = Instant::now();
    for i in 0..rounds {
        let outcome = RequestOutcome {
            protocol: RequestProtocol::Http,
            response_code: codes[i as usize % codes.len()],
            grpc_status: None,
            flags: ResponseFlags::NONE,
            duration: Duration::from_millis(u64::from(i % 300)),
            request_bytes: 120,
            response_bytes: 1200,
        };
        edge.record_request(std::hint::black_box(&outcome));
    }
    println!(
        "record_request: {:?} per request ({rounds} requests, one thread)",
        started.elapsed() / rounds
    );
}
