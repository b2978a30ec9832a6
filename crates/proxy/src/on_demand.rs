//! On-demand virtual hosts: a sidecar's outbound route table comes without its virtual hosts,
//! and a request whose authority none of the held ones serves asks the control plane for it
//! (docs/xds.md, "On-demand virtual hosts"). A proxy so holds the services its workload talks
//! to, not the whole mesh.
//!
//! The request path and the xDS client meet here. A request that misses sends the name
//! `<route table>/<authority>` to the client, which subscribes to it, and waits — at most
//! [`WAIT`] — until either a configuration in force serves the authority or the control plane
//! has said no virtual host does (the name is then *absent*, and later requests for it get
//! their 404 at once, until the control plane sends a host for it). Without a control plane
//! nothing is asked and a miss is a miss.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::state::{ConfigStore, Snapshot};

/// How long a request waits for the virtual host it asked for.
pub const WAIT: Duration = Duration::from_secs(3);

/// Asks not yet taken by the xDS client (while it reconnects, say); past this, a request that
/// misses gets its 404 at once.
const QUEUED_ASKS: usize = 1024;

/// Absent names kept, each a subscription the control plane answers again when the mesh
/// changes; past this, the client forgets them all (see [`OnDemand::take_absent_over`]).
pub const MAX_ABSENT: usize = 1024;

/// What requests ask for and what the control plane answered.
#[derive(Debug, Default)]
pub struct OnDemand {
    /// Where asked names go: the xDS client, once it runs.
    asks: OnceLock<mpsc::Sender<String>>,
    /// Changes whenever an answer arrives: a configuration applied, names found absent.
    answered: watch::Sender<u64>,
    /// Asked names the control plane said no virtual host serves.
    absent: Mutex<HashSet<String>>,
}

impl OnDemand {
    /// Where the xDS client receives the names requests ask for. Called once.
    pub fn asks(&self) -> mpsc::Receiver<String> {
        let (sender, receiver) = mpsc::channel(QUEUED_ASKS);
        let _ = self.asks.set(sender);
        receiver
    }

    /// Wakes the requests waiting for an answer.
    pub fn answered(&self) {
        self.answered.send_modify(|n| *n += 1);
    }

    /// Records what the control plane said of asked names: `true`, absent.
    pub fn set_absent<'a>(&self, names: impl IntoIterator<Item = (&'a str, bool)>) {
        let mut absent = self.absent.lock().expect("absent names lock");
        for (name, is_absent) in names {
            if is_absent {
                absent.insert(name.to_owned());
            } else {
                absent.remove(name);
            }
        }
    }

    /// Every absent name, forgotten, when there are more than `max` (for the client to
    /// unsubscribe from); else nothing. Requests for them ask again.
    pub fn take_absent_over(&self, max: usize) -> Vec<String> {
        let mut absent = self.absent.lock().expect("absent names lock");
        match absent.len() > max {
            true => absent.drain().collect(),
            false => Vec::new(),
        }
    }

    fn is_absent(&self, name: &str) -> bool {
        self.absent
            .lock()
            .expect("absent names lock")
            .contains(name)
    }

    /// Asks for the virtual host of `table` serving `authority`, without waiting for it; false
    /// when there is nobody to ask, or too many asks are waiting to be taken.
    pub fn ask(&self, table: &str, authority: &str) -> bool {
        self.send(name(table, authority))
    }

    fn send(&self, name: String) -> bool {
        self.asks
            .get()
            .is_some_and(|asks| asks.try_send(name).is_ok())
    }

    /// Asks for the virtual host of `table` serving `authority`; the snapshot that serves it,
    /// or `None` when none does, no answer came in time, or there is nobody to ask.
    pub async fn wait(
        &self,
        config: &ConfigStore,
        table: &str,
        authority: &str,
    ) -> Option<Arc<Snapshot>> {
        let serving = || {
            let snapshot = config.load();
            let serves = snapshot
                .routers
                .get(table)
                .is_some_and(|r| r.serves(authority));
            serves.then_some(snapshot)
        };
        // A host that serves the authority (its routes did not match the request, or it came
        // since the request missed): nothing to ask.
        let mut answers = self.answered.subscribe();
        if let Some(snapshot) = serving() {
            return Some(snapshot);
        }
        let name = name(table, authority);
        if self.is_absent(&name) || !self.send(name.clone()) {
            return None;
        }
        let deadline = tokio::time::sleep(WAIT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => {
                    tracing::debug!(%name, "no answer from the control plane in time");
                    return None;
                }
                changed = answers.changed() => changed.ok()?,
            }
            if let Some(snapshot) = serving() {
                return Some(snapshot);
            }
            if self.is_absent(&name) {
                return None;
            }
        }
    }
}

/// The name a host is asked for by: `<table>/<authority in lower case>`.
fn name(table: &str, authority: &str) -> String {
    trellis_proto::OnDemandHost::name_of(table, &authority.to_ascii_lowercase())
}
