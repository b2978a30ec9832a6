//! Reading configuration from files and directories (the `fs` feature: the rest of the crate
//! does no I/O). Everything that reads configuration files (the CLI, the proxy's standalone
//! mode, the control plane's file source) reads them the same way, in the same order.

use std::path::{Path, PathBuf};

use crate::load::{FileLoad, LoadOptions, Loaded, load_text};

/// Extensions of files read from directories (a file named directly is read whatever its name).
pub const CONFIG_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// A path that could not be read, and why.
#[derive(Debug)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Reads every configuration file under `paths` (see [`collect`]), in order.
pub fn load_paths(paths: &[PathBuf], options: &LoadOptions) -> (Vec<FileLoad>, Vec<Unreadable>) {
    let mut loads = Vec::new();
    let mut unreadable = Vec::new();
    for found in collect(paths) {
        match found {
            Found::File(path) => match std::fs::read_to_string(&path) {
                Ok(text) => loads.push(load_text(&path.display().to_string(), &text, options)),
                Err(error) => unreadable.push(Unreadable { path, error }),
            },
            Found::Unreadable(path, error) => unreadable.push(Unreadable { path, error }),
        }
    }
    (loads, unreadable)
}

/// Reads every configuration file under `paths` whole: every resource, or every problem (a
/// path that cannot be read, a syntax error, a refused document), each with its file and line.
pub fn load_all(paths: &[PathBuf], options: &LoadOptions) -> Result<Vec<Loaded>, Vec<String>> {
    let (files, unreadable) = load_paths(paths, options);
    let mut problems: Vec<String> = unreadable
        .iter()
        .map(|u| format!("{}: cannot read: {}", u.path.display(), u.error))
        .collect();
    let mut loaded = Vec::new();
    for file in files {
        problems.extend(file.errors());
        loaded.extend(file.loaded);
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

/// A file to read, or a path that could not be read and why.
#[derive(Debug)]
pub enum Found {
    File(PathBuf),
    Unreadable(PathBuf, std::io::Error),
}

/// Expands `paths` into files: directories recursively (skipping hidden entries), each
/// directory's files in name order, so the same tree always reads in the same order.
pub fn collect(paths: &[PathBuf]) -> Vec<Found> {
    let mut found = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk(path, &mut found),
            Ok(_) => found.push(Found::File(path.clone())),
            Err(e) => found.push(Found::Unreadable(path.clone(), e)),
        }
    }
    found
}

fn walk(dir: &Path, found: &mut Vec<Found>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return found.push(Found::Unreadable(dir.to_owned(), e)),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, found);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CONFIG_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            found.push(Found::File(path));
        }
    }
}

/// The addresses the system resolver gives `host` (none when it does not resolve, which is
/// logged): what ServiceEntries with DNS resolution are resolved with outside tests.
pub fn resolve_host(host: &str) -> Vec<std::net::IpAddr> {
    use std::net::ToSocketAddrs;
    match (host, 0).to_socket_addrs() {
        Ok(addresses) => addresses.map(|a| a.ip()).collect(),
        Err(error) => {
            tracing::warn!(%host, %error, "cannot resolve");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_directories_in_order_and_skips_other_files() {
        let dir = std::env::temp_dir().join(format!("trellis-fs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b/.hidden")).unwrap();
        for name in [
            "b/2.yaml",
            "b/1.json",
            "a.yml",
            "notes.txt",
            "b/.hidden/x.yaml",
        ] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let found: Vec<String> = collect(std::slice::from_ref(&dir))
            .into_iter()
            .map(|f| match f {
                Found::File(p) => p.strip_prefix(&dir).unwrap().display().to_string(),
                Found::Unreadable(p, e) => panic!("{}: {e}", p.display()),
            })
            .collect();
        assert_eq!(found, vec!["a.yml", "b/1.json", "b/2.yaml"]);
        assert!(matches!(
            collect(&[dir.join("missing")])[0],
            Found::Unreadable(..)
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
