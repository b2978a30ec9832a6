//! Access logs: one line per request or TCP connection, in Istio's default text format or as
//! JSON (mesh config `accessLogEncoding: TEXT | JSON`), or off.
//!
//! The request path renders its entry into a `String` and hands it to a dedicated writer thread
//! through a bounded channel, so it never waits on stdout. A slot is reserved before the line is
//! rendered: when the writer has fallen behind and the channel is full, the entry is dropped
//! without being formatted and counted in `trellis_proxy_access_log_dropped_total`.

mod entry;
mod time;

use std::io::{self, BufWriter, Write};
use std::str::FromStr;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

pub use entry::{AccessLogEntry, HttpRequestInfo};
pub use time::Rfc3339Millis;

/// How entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    /// No access log (Istio's default when `accessLogFile` is empty).
    #[default]
    Off,
    /// Istio's default text line.
    Text,
    /// One JSON object per line.
    Json,
}

/// The format name is not `text`, `json` or `off`.
#[derive(Debug, thiserror::Error)]
#[error("unknown access log format {0:?}: expected TEXT, JSON or OFF")]
pub struct UnknownFormat(String);

impl FromStr for AccessLogFormat {
    type Err = UnknownFormat;

    /// Accepts Istio's `accessLogEncoding` values (`TEXT`, `JSON`) in any case, and `off`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            "off" | "" => Ok(Self::Off),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// The request path's side of the access log; cheap to share (`Arc`) or to swap on a config
/// change (dropping the last handle lets the writer finish the queue and stop).
#[derive(Debug)]
pub struct AccessLog {
    format: AccessLogFormat,
    lines: Option<mpsc::Sender<String>>,
    dropped: Counter,
}

impl AccessLog {
    /// Entries that may wait for the writer before new ones are dropped.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// No access log: [`AccessLog::log`] does nothing.
    pub fn off() -> Self {
        Self {
            format: AccessLogFormat::Off,
            lines: None,
            dropped: Counter::default(),
        }
    }

    /// Writes to the process's stdout (Istio's `accessLogFile: /dev/stdout`).
    pub fn stdout(format: AccessLogFormat, dropped: Counter) -> io::Result<Self> {
        Self::spawn(format, io::stdout(), Self::DEFAULT_CAPACITY, dropped)
    }

    /// Writes to `sink` from a new thread, with `capacity` entries of slack. `dropped` counts
    /// entries lost to a full queue (pass [`crate::telemetry::Metrics::access_log_dropped`]).
    pub fn spawn(
        format: AccessLogFormat,
        sink: impl Write + Send + 'static,
        capacity: usize,
        dropped: Counter,
    ) -> io::Result<Self> {
        if format == AccessLogFormat::Off {
            return Ok(Self {
                dropped,
                ..Self::off()
            });
        }
        let (lines, queue) = mpsc::channel(capacity.max(1));
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(queue, sink))?;
        Ok(Self {
            format,
            lines: Some(lines),
            dropped,
        })
    }

    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// Whether entries are written: when not, callers may skip building them.
    pub fn is_enabled(&self) -> bool {
        self.lines.is_some()
    }

    /// Queues `entry` for writing, or drops and counts it if the writer is behind. Never blocks.
    pub fn log(&self, entry: &AccessLogEntry<'_>) {
        let Some(lines) = &self.lines else { return };
        let Ok(slot) = lines.try_reserve() else {
            self.dropped.inc();
            return;
        };
        // Rendering into a `String` cannot fail with these field types; if it ever did, the
        // entry would be counted as dropped rather than written half-formed.
        let line = match self.format {
            AccessLogFormat::Json => entry::to_json(entry).ok(),
            AccessLogFormat::Text | AccessLogFormat::Off => {
                let mut line = String::with_capacity(384);
                entry::write_text(&mut line, entry).ok().map(|()| line)
            }
        };
        match line {
            Some(line) => slot.send(line),
            None => {
                self.dropped.inc();
            }
        }
    }
}

/// The writer thread: writes lines as they come, in batches, flushing whenever the queue is
/// empty. Ends when every [`AccessLog`] handle is gone.
fn write_lines(mut queue: mpsc::Receiver<String>, sink: impl Write) {
    let mut out = BufWriter::with_capacity(64 * 1024, sink);
    let mut failing = false;
    while let Some(line) = queue.blocking_recv() {
        let mut result = out.write_all(line.as_bytes());
        while result.is_ok() {
            match queue.try_recv() {
                Ok(line) => result = out.write_all(line.as_bytes()),
                Err(_) => break,
            }
        }
        match result.and_then(|()| out.flush()) {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                tracing::warn!(%error, "writing the access log failed; entries are being lost");
                failing = true;
            }
            Err(_) => {}
        }
    }
    if let Err(error) = out.flush() {
        tracing::warn!(%error, "flushing the access log failed");
    }
}

#[cfg(test)]
mod tests;
