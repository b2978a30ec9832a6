//! The configuration store: the resources of a directory of YAML files, validated, versioned,
//! and kept current as the files change.
//!
//! Each file is read on its own. A file with any error (a YAML syntax error, or a document
//! that fails validation) is reported, with the line and field of each error, and the last good
//! version of *that file* stays in force; the other files are unaffected. A file that was never
//! good contributes nothing. Removing a file removes its resources.
//!
//! The directory is polled (every [`POLL`]) for files whose length or modification time
//! changed, rather than watched through inotify: polling works on every filesystem, including
//! bind mounts and editors that replace files by renaming, at the cost of a stat per file per
//! poll. Changes found within [`DEBOUNCE`] of each other are published together. A change
//! that leaves the resources equal (a comment edited, a file touched) publishes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use trellis_api::fs::{Found, collect, load_paths};
use trellis_api::{LoadOptions, Resource};

/// How often the directory is looked at.
pub const POLL: Duration = Duration::from_millis(200);
/// How long a change waits for others before it is published.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The configuration in force.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    /// Counts accepted changes, from 1 for the first load.
    pub version: u64,
    /// One definition per kind, namespace and name (a later file's wins).
    pub resources: Arc<Vec<Resource>>,
    /// Files whose current text is refused, with why; their last good version is in force.
    pub errors: BTreeMap<PathBuf, Vec<String>>,
}

/// What the store knows of one file.
#[derive(Debug, Clone)]
struct FileState {
    stamp: Stamp,
    /// The resources of its last good version.
    good: Vec<Resource>,
    errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

/// The files of a directory, as last read.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    published: watch::Sender<Arc<ConfigSnapshot>>,
}

impl Store {
    /// Reads `dir` once; the first snapshot is version 1 even when empty.
    pub fn open(dir: &Path) -> Self {
        let (published, _) = watch::channel(Arc::new(ConfigSnapshot::default()));
        let mut store = Self {
            dir: dir.to_owned(),
            files: BTreeMap::new(),
            published,
        };
        store.rescan();
        store.publish(true);
        store
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<ConfigSnapshot>> {
        self.published.subscribe()
    }

    pub fn current(&self) -> Arc<ConfigSnapshot> {
        self.published.borrow().clone()
    }

    /// Polls the directory until `shutdown` resolves.
    pub async fn watch(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(POLL) => {}
            }
            if self.rescan() {
                // Let an editor finish writing (or a batch of files land) before publishing.
                tokio::time::sleep(DEBOUNCE).await;
                self.rescan();
                self.publish(false);
            }
        }
    }

    /// Re-reads files whose stamp changed, forgets removed ones; whether anything changed.
    fn rescan(&mut self) -> bool {
        let stamps = stamps(&self.dir);
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|path, _| stamps.contains_key(path));
        changed |= self.files.len() != before;
        for (path, stamp) in stamps {
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            changed = true;
            let (mut loads, unreadable) =
                load_paths(std::slice::from_ref(&path), &LoadOptions::default());
            let mut errors: Vec<String> = unreadable
                .iter()
                .map(|u| format!("{}: cannot read: {}", u.path.display(), u.error))
                .collect();
            let load = loads.pop().unwrap_or_default();
            errors.extend(load.errors());
            let previous = self.files.remove(&path);
            let good = if errors.is_empty() {
                load.loaded.into_iter().map(|l| l.resource).collect()
            } else {
                for error in &errors {
                    tracing::error!(file = %path.display(), "{error}");
                }
                tracing::warn!(
                    file = %path.display(),
                    "refused; its last good version stays in force"
                );
                previous.map(|p| p.good).unwrap_or_default()
            };
            self.files.insert(
                path,
                FileState {
                    stamp,
                    good,
                    errors,
                },
            );
        }
        changed
    }

    /// Publishes the resources as a new version, if they changed (or `always`).
    fn publish(&mut self, always: bool) {
        let resources =
            trellis_api::latest_definitions(self.files.values().flat_map(|f| f.good.clone()));
        let errors: BTreeMap<PathBuf, Vec<String>> = self
            .files
            .iter()
            .filter(|(_, f)| !f.errors.is_empty())
            .map(|(path, f)| (path.clone(), f.errors.clone()))
            .collect();
        let current = self.current();
        if !always && *current.resources == resources {
            if current.errors != errors {
                // Only the reports changed: same version, new errors.
                self.published.send_replace(Arc::new(ConfigSnapshot {
                    errors,
                    ..(*current).clone()
                }));
            }
            return;
        }
        let version = current.version + 1;
        tracing::info!(
            version,
            resources = resources.len(),
            "configuration accepted"
        );
        self.published.send_replace(Arc::new(ConfigSnapshot {
            version,
            resources: Arc::new(resources),
            errors,
        }));
    }
}

/// The configuration files under `dir` (as `trellis analyze` finds them), with their stamps.
fn stamps(dir: &Path) -> BTreeMap<PathBuf, Stamp> {
    collect(&[dir.to_owned()])
        .into_iter()
        .filter_map(|found| match found {
            Found::File(path) => {
                let meta = std::fs::metadata(&path).ok()?;
                let stamp = Stamp {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                };
                Some((path, stamp))
            }
            Found::Unreadable(..) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
