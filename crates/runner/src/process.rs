//! Processes: finding the programs a pod runs, signalling them, and reading what `/proc`
//! says of them (alive, which ports they listen on, whether we are root).

use std::path::{Path, PathBuf};

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Whether a process runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends a signal (`TERM`, `KILL`) to a process; whether it was delivered.
pub fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The TCP addresses a process's network namespace has listening (`/proc/<pid>/net/tcp`
/// shows the namespace of that process); IPv6 sockets as `[::]` with their port.
pub fn listening(pid: u32) -> Vec<std::net::SocketAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    let mut found = Vec::new();
    for file in ["tcp", "tcp6"] {
        let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
            continue;
        };
        for line in table.lines().skip(1) {
            let mut fields = line.split_whitespace();
            let (Some(local), Some(state)) = (fields.nth(1), fields.nth(1)) else {
                continue;
            };
            if state != "0A" {
                continue; // not LISTEN
            }
            let Some((ip, port)) = local.split_once(':') else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port, 16) else {
                continue;
            };
            // The kernel prints an IPv4 address's four bytes as a number in the machine's order.
            let ip = match (file, u32::from_str_radix(ip, 16)) {
                ("tcp", Ok(raw)) => IpAddr::V4(Ipv4Addr::from(raw.to_ne_bytes())),
                _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            found.push(SocketAddr::new(ip, port));
        }
    }
    found
}

/// Where a program is: a path as written, else beside this executable (where `cargo build`
/// and the release archive put Trellis's binaries), else on `PATH`; `None` when nowhere.
pub fn find_program(program: &str, beside: Option<&Path>) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path);
    }
    let here = beside.map(Path::to_path_buf).or_else(|| {
        std::env::current_exe()
            .ok()?
            .parent()
            .map(Path::to_path_buf)
    });
    if let Some(candidate) = here.map(|dir| dir.join(program)).filter(|p| p.is_file()) {
        return Some(candidate);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_listens_where_it_bound() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let pid = std::process::id();
        assert!(alive(pid));
        let ports = |pid| -> Vec<u16> { listening(pid).iter().map(|a| a.port()).collect() };
        assert!(ports(pid).contains(&port));
        assert!(listening(pid).contains(&listener.local_addr().unwrap()));
        drop(listener);
        assert!(!ports(pid).contains(&port));
    }

    #[test]
    fn a_finished_process_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
    }

    #[test]
    fn programs_are_found_beside_then_on_the_path() {
        let dir = std::env::temp_dir().join(format!("trellis-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sh"), "").unwrap();
        assert_eq!(find_program("sh", Some(&dir)), Some(dir.join("sh")));
        let on_path = find_program("true", Some(Path::new("/nonexistent"))).unwrap();
        assert!(on_path.ends_with("true"));
        assert_eq!(find_program("no-such-program-here", Some(&dir)), None);
        assert_eq!(find_program("/no/such/file", None), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
