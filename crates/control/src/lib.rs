//! The control plane (`trellis control`): it watches the configuration and the services, turns
//! them into each proxy's configuration, and pushes it over delta xDS as it changes.
//!
//! - [`store`]: the configuration directory, validated file by file and versioned.
//! - [`registry`]: workload sources behind one trait (files, the API).
//! - [`mesh`]: configuration and registry combined into one versioned view, rebuilt on change.
//! - [`proxies`]: who a proxy is, and its translation (gateway or sidecar), encoded per
//!   resource.
//! - [`xds`]: the delta ADS server.
//! - [`ca`]: the CA service (workload certificates for bootstrap tokens), on the xDS port.
//! - [`debug`]: the HTTP debug API (`trellis proxy-status`, `trellis proxy-config` read it).
//!
//! Threads: the store's poller and the mesh builder are tasks; each connected proxy's stream is
//! a task that translates for that proxy when the mesh changes.

pub mod ca;
pub mod debug;
pub mod mesh;
pub mod proxies;
pub mod registry;
pub mod store;
pub mod xds;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use trellis_proto::ca::istio_certificate_service_server::IstioCertificateServiceServer;
use trellis_proto::xds::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;

use crate::mesh::Mesh;
use crate::proxies::ProxyStatus;
use crate::registry::{Registered, WorkloadSource};

/// What `trellis control` is started with.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_dir: PathBuf,
    /// Where the CA (`ca/`, laid out as Istio's `cacerts`) and the token key (`token-key`)
    /// are kept; `None` keeps new ones in memory (tests, benchmarks).
    pub state_dir: Option<PathBuf>,
    /// The mesh's trust domain: workload identities are `spiffe://<it>/ns/<ns>/sa/<sa>`.
    pub trust_domain: String,
    /// The longest lifetime of a workload certificate.
    pub max_cert_ttl: Duration,
}

impl Options {
    /// The defaults for a configuration directory, with the CA kept in memory.
    pub fn new(config_dir: impl Into<PathBuf>) -> Self {
        Self {
            config_dir: config_dir.into(),
            state_dir: None,
            trust_domain: trellis_identity::DEFAULT_TRUST_DOMAIN.to_owned(),
            max_cert_ttl: trellis_identity::WORKLOAD_TTL,
        }
    }
}

/// The state every part of the control plane shares.
#[derive(Debug)]
pub struct ControlPlane {
    mesh: watch::Receiver<Arc<Mesh>>,
    /// Workloads registered through the API.
    pub registered: Registered,
    proxies: Mutex<BTreeMap<u64, ProxyStatus>>,
    next_key: AtomicU64,
    /// Responses sent to proxies, and the bytes of the resources in them.
    pushed: AtomicU64,
    pushed_bytes: AtomicU64,
    /// Translations shared by proxies alike, for the mesh version in force.
    shared: Mutex<proxies::Shared>,
    /// The CA and the token key.
    pub identity: Arc<ca::Identity>,
    pub trust_domain: String,
}

impl ControlPlane {
    /// Reads the configuration and starts keeping it and the mesh current until `shutdown`
    /// turns true. The directory must exist.
    pub fn start(options: &Options, shutdown: watch::Receiver<bool>) -> std::io::Result<Arc<Self>> {
        if !options.config_dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a directory", options.config_dir.display()),
            ));
        }
        let identity = Arc::new(ca::Identity::open(options)?);
        let store = store::Store::open(&options.config_dir);
        let config = store.subscribe();
        let registered = Registered::default();
        let sources: Vec<Arc<dyn WorkloadSource>> = vec![Arc::new(registered.clone())];
        let first = Mesh::build(1, store.current(), &sources, &options.trust_domain);
        let (published, mesh) = watch::channel(Arc::new(first));
        tokio::spawn(store.watch(stopped(shutdown.clone())));
        tokio::spawn(mesh::maintain(
            config,
            sources,
            options.trust_domain.clone(),
            published,
            stopped(shutdown),
        ));
        Ok(Arc::new(Self {
            mesh,
            registered,
            proxies: Mutex::new(BTreeMap::new()),
            next_key: AtomicU64::new(1),
            pushed: AtomicU64::new(0),
            pushed_bytes: AtomicU64::new(0),
            shared: Mutex::default(),
            identity,
            trust_domain: options.trust_domain.clone(),
        }))
    }

    /// The mesh in force.
    pub fn mesh(&self) -> Arc<Mesh> {
        self.mesh.borrow().clone()
    }

    /// A receiver of every new mesh.
    pub fn mesh_changes(&self) -> watch::Receiver<Arc<Mesh>> {
        self.mesh.clone()
    }

    /// Connected proxies, by connection.
    pub fn proxies(&self) -> Vec<ProxyStatus> {
        self.proxies
            .lock()
            .expect("proxy table lock")
            .values()
            .cloned()
            .collect()
    }

    /// Responses pushed so far, and the bytes of the resources they carried.
    pub fn pushed(&self) -> (u64, u64) {
        (
            self.pushed.load(Ordering::Relaxed),
            self.pushed_bytes.load(Ordering::Relaxed),
        )
    }

    fn count_push(&self, bytes: usize) {
        self.pushed.fetch_add(1, Ordering::Relaxed);
        self.pushed_bytes
            .fetch_add(u64::try_from(bytes).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn connected(&self, status: ProxyStatus) -> u64 {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.proxies
            .lock()
            .expect("proxy table lock")
            .insert(key, status);
        key
    }

    fn update(&self, key: u64, change: impl FnOnce(&mut ProxyStatus)) {
        if let Some(status) = self.proxies.lock().expect("proxy table lock").get_mut(&key) {
            change(status);
        }
    }

    fn disconnected(&self, key: u64) {
        self.proxies.lock().expect("proxy table lock").remove(&key);
    }

    /// Serves the debug API on `debug` and delta ADS on `xds` until `shutdown` turns true.
    pub async fn serve(
        self: Arc<Self>,
        xds: TcpListener,
        debug: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), tonic::transport::Error> {
        tokio::spawn(debug::serve(self.clone(), debug, shutdown.clone()));
        self.serve_xds(xds, shutdown).await
    }

    /// Binds `address` and serves delta ADS and the CA service there, on a task of their own,
    /// until `shutdown` turns true; the address bound (a free port for port 0).
    pub async fn spawn_xds(
        self: &Arc<Self>,
        address: std::net::SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<std::net::SocketAddr> {
        let listener = TcpListener::bind(address).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(self.clone().serve_xds(listener, shutdown));
        Ok(bound)
    }

    /// Serves delta ADS and the CA service on `listener` until `shutdown` turns true.
    pub async fn serve_xds(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), tonic::transport::Error> {
        // Without TCP_NODELAY a small answer waits for the client's delayed ACK (~40 ms).
        let incoming = TcpListenerStream::new(listener).map(|accepted| {
            if let Ok(stream) = &accepted {
                let _ = stream.set_nodelay(true);
            }
            accepted
        });
        tonic::transport::Server::builder()
            .add_service(IstioCertificateServiceServer::new(ca::CaService(
                self.identity.clone(),
            )))
            .add_service(AggregatedDiscoveryServiceServer::new(xds::Ads(self)))
            .serve_with_incoming_shutdown(incoming, stopped(shutdown))
            .await
    }
}

/// Resolves when `shutdown` turns true (or its sender is gone).
pub async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
