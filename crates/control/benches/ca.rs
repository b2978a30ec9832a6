//! How fast the CA signs workload certificates:
//!
//! ```text
//! cargo bench -p trellis-control --bench ca [-- --requests 4000]
//! ```
//!
//! Prints the rate of signing alone (`Ca::sign`, one thread: parsing and checking the CSR,
//! issuing and signing the certificate) and through the CA service (an in-process control
//! plane; clients on 16 gRPC connections with a bootstrap token, on the same two cores), with
//! the CSRs made beforehand so that only the CA's work is timed. A measurement, not a test.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tonic::metadata::MetadataValue;
use trellis_identity::{Ca, SpiffeId, new_workload_key};
use trellis_proto::ca::IstioCertificateRequest;
use trellis_proto::ca::istio_certificate_service_client::IstioCertificateServiceClient;

const CONNECTIONS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .map_or(4000, |n| n.parse().expect("--requests takes a count"));
    let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/bench"
        .parse()
        .unwrap();
    let csrs: Vec<String> = (0..requests)
        .map(|_| new_workload_key(&id).unwrap().csr)
        .collect();

    let ca = Ca::ephemeral().unwrap();
    let started = Instant::now();
    for csr in &csrs {
        ca.sign(csr, &id, Duration::from_secs(3600)).unwrap();
    }
    let alone = requests as f64 / started.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let over_grpc = runtime.block_on(through_grpc(&id, csrs));
    println!(
        "| CSRs | signing alone (1 thread) | through the CA service ({CONNECTIONS} connections, 2 cores) |"
    );
    println!("|--:|--:|--:|");
    println!("| {requests} | {alone:.0}/s | {over_grpc:.0}/s |");
}

async fn through_grpc(id: &SpiffeId, csrs: Vec<String>) -> f64 {
    let dir = std::env::temp_dir().join(format!("trellis-ca-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_stop, stopped) = watch::channel(false);
    let plane = trellis_control::ControlPlane::start(
        &trellis_control::Options::new(dir.clone()),
        stopped.clone(),
    )
    .unwrap();
    let address = plane
        .spawn_xds("127.0.0.1:0".parse().unwrap(), stopped)
        .await
        .unwrap();
    let token: MetadataValue<_> = format!(
        "Bearer {}",
        plane.identity.tokens.issue(id, Duration::from_secs(600))
    )
    .parse()
    .unwrap();
    let total = csrs.len();
    let queue = Arc::new(std::sync::Mutex::new(csrs));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (queue, token) = (queue.clone(), token.clone());
        let mut client = IstioCertificateServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(csr) = queue.lock().unwrap().pop() else {
                    return;
                };
                let mut request = tonic::Request::new(IstioCertificateRequest {
                    csr,
                    validity_duration: 3600,
                });
                request
                    .metadata_mut()
                    .insert("authorization", token.clone());
                client.create_certificate(request).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    rate
}
