//! Watching the proxy from inside its test process: polling for a condition with a deadline,
//! the process's resident memory while a body streams through, and panics in the tasks a test
//! spawned (tokio catches them, so a test would otherwise never see one).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`eventually`] and the raw-socket helpers wait before calling it a failure: far
/// longer than anything should take, so a slow shared machine does not fail a test.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `condition` until it holds; panics with `what` when it has not after [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "still not true after {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// This process's resident memory (`VmRSS`), in bytes.
pub fn rss() -> u64 {
    let status =
        std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS is reported");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS is a number of kB");
    kib * 1024
}

/// Tests that measure memory take this first, so that two of them never stream at once in the
/// same process.
pub async fn memory_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The highest resident memory seen while it runs, sampled by a thread of its own, against the
/// memory when it started.
pub struct MemoryWatch {
    baseline: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
}

impl MemoryWatch {
    pub fn start() -> Self {
        let baseline = rss();
        let peak = Arc::new(AtomicU64::new(baseline));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self {
            baseline,
            peak,
            stop,
            sampler: Some(sampler),
        }
    }

    /// How far the memory rose above the baseline at its highest, in bytes.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            sampler.join().expect("the sampler thread ends");
        }
        self.peak.fetch_max(rss(), Ordering::Relaxed);
        self.peak
            .load(Ordering::Relaxed)
            .saturating_sub(self.baseline)
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

static PANICKED_THREADS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Starts recording panics. `#[tokio::test]` runs the test and every task it spawns (the
/// proxy's connections included) on the test's own thread, so a panic on that thread after
/// this call, other than the test's own failing assertion, is a task that panicked.
pub fn track_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name() {
                PANICKED_THREADS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(name.to_owned());
            }
            default(info);
        }));
    });
    let me = std::thread::current().name().map(str::to_owned);
    PANICKED_THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|name| Some(name) != me.as_ref());
}

/// Fails the test if a task on its thread panicked since [`track_panics`].
pub fn assert_no_task_panicked() {
    let me = std::thread::current().name().map(str::to_owned);
    let panicked = PANICKED_THREADS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|name| Some(name) == me.as_ref());
    assert!(
        !panicked,
        "a task of this test panicked (see the output above)"
    );
}
