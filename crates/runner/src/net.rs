//! The pods' network: a bridge on the host, and per pod a network namespace joined to it by a
//! veth pair, with its own address, a default route through the bridge, and the iptables rules
//! that capture its TCP traffic for its sidecar, as Istio's init container writes them.
//!
//! Everything is named after the mesh (`<mesh>0` the bridge, `<mesh>v<N>` the host ends of the
//! veth pairs, `<mesh>-<namespace>-<pod>` the network namespaces), so that [`sweep`] finds and
//! removes all of it: after `trellis down`, on Ctrl-C, and before the next start after a crash.
//! The capture rules live inside the pods' namespaces and go with them; nothing is written to
//! the host's own tables.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The uid the sidecars run as: their own traffic is not captured (Istio's 1337).
pub const PROXY_UID: u32 = 1337;
/// Where captured outbound traffic arrives (the sidecar's outbound listener).
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// Where captured inbound traffic arrives.
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// The sidecar's admin port, reachable from the host and never captured.
pub const ADMIN_PORT: u16 = 15000;

/// An IPv4 network, `10.244.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.network)
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        let mask = self.mask() & other.mask();
        u32::from(self.network) & mask == u32::from(other.network) & mask
    }

    /// The addresses for hosts, in order: the network's first address after its own, up to
    /// the one before broadcast.
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 1;
        let last = (u32::from(self.network) | !self.mask()).saturating_sub(1);
        (first..=last).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IPv4 network (such as 10.244.0.0/16)");
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 30 {
            return Err(format!("{text:?}: a /{prefix} network is too small"));
        }
        let cidr = Self {
            network: address,
            prefix,
        };
        if u32::from(address) & !cidr.mask() != 0 {
            return Err(format!(
                "{text:?} has host bits set; the network is {}/{prefix}",
                Ipv4Addr::from(u32::from(address) & cidr.mask())
            ));
        }
        Ok(cidr)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<Cidr> for String {
    fn from(cidr: Cidr) -> String {
        cidr.to_string()
    }
}

/// The names of what the mesh creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub mesh: String,
}

impl Names {
    /// A mesh name: lowercase letters and digits, at most 9 (interface names are 15 bytes).
    pub fn new(mesh: &str) -> Result<Self, String> {
        let ok = !mesh.is_empty()
            && mesh.len() <= 9
            && mesh
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && mesh.starts_with(|c: char| c.is_ascii_lowercase());
        if !ok {
            return Err(format!(
                "mesh name {mesh:?}: use 1 to 9 lowercase letters and digits, starting with a letter"
            ));
        }
        Ok(Self {
            mesh: mesh.to_owned(),
        })
    }

    pub fn bridge(&self) -> String {
        format!("{}0", self.mesh)
    }

    pub fn veth(&self, index: usize) -> String {
        format!("{}v{index}", self.mesh)
    }

    pub fn netns(&self, namespace: &str, pod: &str) -> String {
        format!("{}-{namespace}-{pod}", self.mesh)
    }

    fn netns_prefix(&self) -> String {
        format!("{}-", self.mesh)
    }
}

/// Runs a command to its end; its standard error becomes the error.
pub fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: format!("cannot run it: {e}"),
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Runs a command with `input` on its standard input.
fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<(), Error> {
    use std::io::Write as _;
    let command = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: command(),
            detail: format!("cannot run it: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let output = child.wait_with_output().map_err(|e| Error::Command {
        command: command(),
        detail: e.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: command(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The bridge, with the first address of the pod range: the pods' gateway, and where they
/// reach the control plane.
pub fn create_bridge(names: &Names, address: Ipv4Addr, cidr: Cidr) -> Result<(), Error> {
    let bridge = names.bridge();
    run("ip", &["link", "add", &bridge, "type", "bridge"])?;
    run(
        "ip",
        &[
            "addr",
            "add",
            &format!("{address}/{}", cidr.prefix),
            "dev",
            &bridge,
        ],
    )?;
    run("ip", &["link", "set", &bridge, "up"])?;
    Ok(())
}

/// How a pod's network is laid out.
#[derive(Debug, Clone)]
pub struct PodNetwork<'a> {
    pub netns: &'a str,
    pub veth: &'a str,
    pub address: Ipv4Addr,
    pub cidr: Cidr,
    pub gateway: Ipv4Addr,
    /// `/etc/hosts` inside the pod.
    pub hosts: &'a str,
    /// The capture rules (`iptables-restore` input), if the pod has a sidecar.
    pub capture: Option<&'a str>,
}

/// Creates the pod's namespace, joins it to the bridge, addresses it, routes it through the
/// bridge, lets unprivileged processes bind any port (as a pod's sidecar binds 80), writes its
/// hosts file and installs its capture rules.
pub fn create_pod(names: &Names, pod: &PodNetwork<'_>) -> Result<(), Error> {
    let ns = pod.netns;
    run("ip", &["netns", "add", ns])?;
    let peer = format!("{}p", pod.veth);
    run(
        "ip",
        &[
            "link", "add", pod.veth, "type", "veth", "peer", "name", &peer, "netns", ns,
        ],
    )?;
    run("ip", &["link", "set", pod.veth, "master", &names.bridge()])?;
    run("ip", &["link", "set", pod.veth, "up"])?;
    let inside = |args: &[&str]| {
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        run("ip", &all)
    };
    inside(&["ip", "link", "set", &peer, "name", "eth0"])?;
    inside(&[
        "ip",
        "addr",
        "add",
        &format!("{}/{}", pod.address, pod.cidr.prefix),
        "dev",
        "eth0",
    ])?;
    inside(&["ip", "link", "set", "eth0", "up"])?;
    inside(&["ip", "link", "set", "lo", "up"])?;
    inside(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &pod.gateway.to_string(),
    ])?;
    inside(&[
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_unprivileged_port_start=0",
    ])?;
    let etc = etc_dir(ns);
    std::fs::create_dir_all(&etc)
        .map_err(|e| Error::io(format!("creating {}", etc.display()), e))?;
    // Names resolve from the hosts file; there is no DNS server a pod could reach, so any
    // other lookup fails at once (rather than after the host resolver's timeouts).
    for (file, text) in [("hosts", pod.hosts), ("resolv.conf", RESOLV_CONF)] {
        let path = etc.join(file);
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    if let Some(rules) = pod.capture {
        run_with_input("ip", &["netns", "exec", ns, "iptables-restore"], rules)?;
    }
    Ok(())
}

/// A pod's `/etc/resolv.conf`: a server on the pod's own loopback, where nothing listens, so
/// a name the hosts file lacks is refused at once.
const RESOLV_CONF: &str = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n";

/// Where `ip netns exec` finds the files it puts over `/etc` inside a namespace.
fn etc_dir(netns: &str) -> PathBuf {
    PathBuf::from("/etc/netns").join(netns)
}

/// What Istio's capture looks like for one pod.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    pub exclude_inbound_ports: Vec<u16>,
    pub exclude_outbound_ports: Vec<u16>,
    pub exclude_outbound_ranges: Vec<Cidr>,
}

/// The capture rules as `iptables-restore` reads them, in the pod's `nat` table: inbound TCP
/// (but the sidecar's admin port and excluded ports) to 15006; outbound TCP of everything but
/// the sidecar (uid 1337) to 15001, except loopback and excluded ports and ranges; the sidecar's
/// own calls to the pod's address go through inbound, as the application's would.
pub fn capture_rules(capture: &Capture) -> String {
    let mut rules = String::from(
        "*nat\n\
         :TRELLIS_INBOUND - [0:0]\n\
         :TRELLIS_IN_REDIRECT - [0:0]\n\
         :TRELLIS_OUTPUT - [0:0]\n\
         :TRELLIS_REDIRECT - [0:0]\n\
         -A PREROUTING -p tcp -j TRELLIS_INBOUND\n\
         -A OUTPUT -p tcp -j TRELLIS_OUTPUT\n",
    );
    let mut inbound_excluded = vec![ADMIN_PORT];
    inbound_excluded.extend(&capture.exclude_inbound_ports);
    for port in inbound_excluded {
        rules.push_str(&format!(
            "-A TRELLIS_INBOUND -p tcp --dport {port} -j RETURN\n"
        ));
    }
    rules.push_str("-A TRELLIS_INBOUND -p tcp -j TRELLIS_IN_REDIRECT\n");
    rules.push_str(&format!(
        "-A TRELLIS_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_CAPTURE_PORT}\n"
    ));
    for port in &capture.exclude_outbound_ports {
        rules.push_str(&format!(
            "-A TRELLIS_OUTPUT -p tcp --dport {port} -j RETURN\n"
        ));
    }
    let uid = PROXY_UID;
    rules.push_str(&format!(
        "-A TRELLIS_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner {uid} -j TRELLIS_IN_REDIRECT\n\
         -A TRELLIS_OUTPUT -o lo -m owner ! --uid-owner {uid} -j RETURN\n\
         -A TRELLIS_OUTPUT -m owner --uid-owner {uid} -j RETURN\n\
         -A TRELLIS_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
    ));
    for range in &capture.exclude_outbound_ranges {
        rules.push_str(&format!("-A TRELLIS_OUTPUT -d {range} -j RETURN\n"));
    }
    rules.push_str(&format!(
        "-A TRELLIS_OUTPUT -j TRELLIS_REDIRECT\n\
         -A TRELLIS_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_CAPTURE_PORT}\n\
         COMMIT\n"
    ));
    rules
}

/// `/etc/hosts` for a pod: its own name, and every service's names at its virtual IP.
pub fn hosts_file(pod: &str, address: Ipv4Addr, entries: &[(Ipv4Addr, Vec<String>)]) -> String {
    let mut text =
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{address}\t{pod}\n");
    for (vip, names) in entries {
        text.push_str(&format!("{vip}\t{}\n", names.join(" ")));
    }
    text
}

/// What the mesh's name left on this machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Leftovers {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    pub hosts_dirs: Vec<String>,
    /// Processes inside the namespaces.
    pub processes: Vec<u32>,
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} namespaces, {} links, {} processes",
            self.namespaces.len(),
            self.links.len(),
            self.processes.len()
        )
    }
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
            && self.links.is_empty()
            && self.hosts_dirs.is_empty()
            && self.processes.is_empty()
    }
}

/// Finds what the mesh `names` created and is still here.
pub fn leftovers(names: &Names) -> Leftovers {
    let prefix = names.netns_prefix();
    let namespaces: Vec<String> = run("ip", &["-o", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    let mut processes = Vec::new();
    for ns in &namespaces {
        processes.extend(
            run("ip", &["netns", "pids", ns])
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|pid| pid.parse::<u32>().ok()),
        );
    }
    let bridge = names.bridge();
    let veth = format!("{}v", names.mesh);
    let links = run("ip", &["-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name))
        .filter(|name| {
            *name == bridge
                || name
                    .strip_prefix(&veth)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned)
        .collect();
    let hosts_dirs = std::fs::read_dir("/etc/netns")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    Leftovers {
        namespaces,
        links,
        hosts_dirs,
        processes,
    }
}

/// Removes everything the mesh `names` created: kills the processes left in its namespaces,
/// deletes the namespaces (their capture rules and veth ends go with them), the bridge and the
/// hosts files. Returns what it found; what it could not remove is an error.
pub fn sweep(names: &Names) -> Result<Leftovers, Error> {
    let found = leftovers(names);
    for pid in &found.processes {
        let _ = run("kill", &["-KILL", &pid.to_string()]);
    }
    let mut failures = Vec::new();
    for ns in &found.namespaces {
        // A namespace's processes take a moment to die after SIGKILL.
        for attempt in 0..50 {
            match run("ip", &["netns", "del", ns]) {
                Ok(_) => break,
                Err(error) if attempt == 49 => failures.push(error.to_string()),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }
    for link in &found.links {
        if let Err(error) = run("ip", &["link", "del", link]) {
            // A veth end goes with its peer's namespace.
            if !error.to_string().contains("Cannot find device") {
                failures.push(error.to_string());
            }
        }
    }
    for dir in &found.hosts_dirs {
        let path = etc_dir(dir);
        if let Err(error) = std::fs::remove_dir_all(&path) {
            failures.push(format!("removing {}: {error}", path.display()));
        }
    }
    if failures.is_empty() {
        Ok(found)
    } else {
        Err(Error::Cleanup(failures))
    }
}

/// Whether the tools the runner needs are here; what is missing otherwise.
pub fn missing_tools() -> Vec<&'static str> {
    ["ip", "iptables-restore", "setpriv", "sysctl"]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect()
}

#[cfg(test)]
#[path = "net/tests.rs"]
mod tests;
