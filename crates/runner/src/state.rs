//! What a running mesh tells other commands (`trellis status`, `down`, `logs`, `apply`,
//! `exec`): `state.json` in its run directory, rewritten as pods change.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::net::Cidr;
use crate::plan::{PodRole, ServiceVip};

/// How pods are kept apart and their traffic reaches their sidecars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A network namespace per pod, and iptables capture (needs root).
    Namespaces,
    /// Loopback addresses and no capture: applications listen on their own address and reach
    /// services through their sidecar's outbound listener, named in `HTTP_PROXY`.
    Loopback,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Namespaces => "network namespaces with traffic capture",
            Mode::Loopback => "loopback addresses, no capture",
        })
    }
}

/// A process the mesh started, to find it again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub pid: u32,
    pub program: PathBuf,
}

impl Recorded {
    /// Kills the process if it is still the one recorded (its command line names the
    /// program), not another that took its pid; whether it was.
    pub fn kill(&self) -> bool {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid)).unwrap_or_default();
        let program = self.program.as_os_str().as_encoded_bytes();
        let ours = cmdline.split(|b| *b == 0).any(|arg| arg == program);
        ours && crate::process::alive(self.pid) && crate::process::signal(self.pid, "KILL")
    }
}

/// A pod's phase, as `kubectl get pods` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "phase")]
pub enum Phase {
    Starting,
    Running,
    /// The application exited (its sidecar was drained and stopped).
    Exited {
        code: Option<i32>,
    },
    Failed {
        reason: String,
    },
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Starting => f.write_str("Starting"),
            Phase::Running => f.write_str("Running"),
            Phase::Exited { code: Some(code) } => write!(f, "Exited({code})"),
            Phase::Exited { code: None } => f.write_str("Exited(signal)"),
            Phase::Failed { reason } => write!(f, "Failed: {reason}"),
        }
    }
}

/// One pod of a running mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodState {
    pub name: String,
    pub namespace: String,
    pub workload: String,
    pub role: PodRole,
    pub labels: trellis_api::types::Labels,
    /// Where other pods reach it (its sidecar, when it has one).
    pub address: IpAddr,
    /// Its processes, once started.
    #[serde(default)]
    pub processes: Vec<Recorded>,
    pub netns: String,
    /// Its containers, in order.
    pub containers: Vec<String>,
    #[serde(flatten)]
    pub phase: Phase,
}

/// A running mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub mesh: String,
    pub mode: Mode,
    /// The `trellis up` process.
    pub pid: u32,
    pub config_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub pod_cidr: Cidr,
    pub service_cidr: Cidr,
    /// Where proxies reach the control plane.
    pub xds: SocketAddr,
    /// The control plane's debug API (`trellis proxy-status --control`).
    pub debug: SocketAddr,
    /// The ingress gateway, published on the host.
    pub ingress: SocketAddr,
    pub services: Vec<ServiceVip>,
    pub pods: Vec<PodState>,
}

impl State {
    pub fn file(run_dir: &Path) -> PathBuf {
        run_dir.join("state.json")
    }

    /// The state of the mesh whose run directory this is, if one was started there.
    pub fn read(run_dir: &Path) -> Result<Option<Self>, Error> {
        let file = Self::file(run_dir);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("reading {}", file.display()), e)),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Other(format!("{}: {e}", file.display())))
    }

    /// Writes the state whole (a reader never sees half of it).
    pub fn write(&self, run_dir: &Path) -> Result<(), Error> {
        let file = Self::file(run_dir);
        let partial = run_dir.join("state.json.partial");
        let text = serde_json::to_string_pretty(self).expect("the state serialises");
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &file))
            .map_err(|e| Error::io(format!("writing {}", file.display()), e))
    }

    /// Kills the processes it records that are still running (after a crash); how many.
    pub fn kill_recorded(&self) -> usize {
        self.pods
            .iter()
            .flat_map(|p| &p.processes)
            .filter(|p| p.kill())
            .count()
    }

    /// Whether the `trellis up` that wrote it still runs.
    pub fn is_live(&self) -> bool {
        crate::process::alive(self.pid)
    }

    /// The pods `name` stands for: a pod's name, else a workload's (all its replicas), else
    /// an `app` label's (all its versions).
    pub fn pods_named(&self, name: &str) -> Vec<&PodState> {
        let by = |matches: &dyn Fn(&PodState) -> bool| -> Vec<&PodState> {
            self.pods.iter().filter(|p| matches(p)).collect()
        };
        let exact = by(&|p| p.name == name);
        if !exact.is_empty() {
            return exact;
        }
        let workload = by(&|p| p.workload == name);
        if !workload.is_empty() {
            return workload;
        }
        by(&|p| p.labels.get("app").is_some_and(|app| app == name))
    }
}

/// Where a mesh keeps its state, configuration and logs: `/run/trellis/<mesh>` for root,
/// else under `$XDG_RUNTIME_DIR` (or the temporary directory).
pub fn default_run_dir(mesh: &str) -> PathBuf {
    let base = if crate::process::is_root() {
        PathBuf::from("/run/trellis")
    } else if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        PathBuf::from(dir).join("trellis")
    } else {
        std::env::temp_dir().join("trellis")
    };
    base.join(mesh)
}
