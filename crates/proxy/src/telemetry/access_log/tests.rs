//! The exact text line, the JSON keys, and the writer's drop-instead-of-block behaviour.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc as std_mpsc};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::telemetry::ResponseFlags;

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().expect("test address"))
}

fn sample() -> AccessLogEntry<'static> {
    AccessLogEntry {
        duration: Duration::from_micros(4_700),
        request: Some(HttpRequestInfo {
            method: "GET",
            path: "/status/418",
            version: http::Version::HTTP_11,
            authority: Some("httpbin:8000"),
            x_forwarded_for: None,
            user_agent: Some("curl/7.73.0-DEV"),
            request_id: Some("84961386-6d84-929d-98bd-c5aee93b5c88"),
        }),
        response_code: 418,
        response_code_details: Some("via_upstream"),
        bytes_sent: 135,
        upstream_service_time: Some(Duration::from_millis(4)),
        upstream_host: addr("10.44.1.27:80"),
        upstream_cluster: Some("outbound|8000||httpbin.foo.svc.cluster.local"),
        upstream_local_address: addr("10.44.1.23:37652"),
        downstream_local_address: addr("10.0.45.184:8000"),
        downstream_remote_address: addr("10.44.1.23:46520"),
        route_name: Some("default"),
        ..AccessLogEntry::new(UNIX_EPOCH + Duration::from_millis(1_606_339_578_409))
    }
}

fn tcp_sample() -> AccessLogEntry<'static> {
    AccessLogEntry {
        duration: Duration::from_millis(5),
        response_flags: ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        upstream_transport_failure_reason: Some("delayed connect error: 111"),
        bytes_received: 10,
        upstream_cluster: Some("outbound|3306||mysql.default.svc.cluster.local"),
        downstream_local_address: addr("10.0.0.1:3306"),
        downstream_remote_address: addr("10.0.0.2:5000"),
        ..AccessLogEntry::new(UNIX_EPOCH)
    }
}

fn text(entry: &AccessLogEntry<'_>) -> String {
    let mut line = String::new();
    entry::write_text(&mut line, entry).expect("formats");
    line
}

#[test]
fn text_line_is_istios_default_format() {
    assert_eq!(
        text(&sample()),
        "[2020-11-25T21:26:18.409Z] \"GET /status/418 HTTP/1.1\" 418 - via_upstream - \"-\" \
         0 135 4 4 \"-\" \"curl/7.73.0-DEV\" \"84961386-6d84-929d-98bd-c5aee93b5c88\" \
         \"httpbin:8000\" \"10.44.1.27:80\" outbound|8000||httpbin.foo.svc.cluster.local \
         10.44.1.23:37652 10.0.45.184:8000 10.44.1.23:46520 - default\n"
    );
    assert_eq!(
        text(&tcp_sample()),
        "[1970-01-01T00:00:00.000Z] \"- - -\" 0 UF - - \"delayed connect error: 111\" 10 0 5 - \
         \"-\" \"-\" \"-\" \"-\" \"-\" outbound|3306||mysql.default.svc.cluster.local - \
         10.0.0.1:3306 10.0.0.2:5000 - -\n"
    );
}

#[test]
fn json_line_has_istios_keys() {
    let line = entry::to_json(&sample()).expect("serializes");
    assert!(line.ends_with("}\n"));
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    let object = value.as_object().expect("an object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut want = vec![
        "start_time",
        "route_name",
        "method",
        "path",
        "protocol",
        "response_code",
        "response_flags",
        "response_code_details",
        "connection_termination_details",
        "upstream_transport_failure_reason",
        "bytes_received",
        "bytes_sent",
        "duration",
        "upstream_service_time",
        "x_forwarded_for",
        "user_agent",
        "request_id",
        "authority",
        "upstream_host",
        "upstream_cluster",
        "upstream_local_address",
        "downstream_local_address",
        "downstream_remote_address",
        "requested_server_name",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(object["start_time"], "2020-11-25T21:26:18.409Z");
    assert_eq!(object["method"], "GET");
    assert_eq!(object["protocol"], "HTTP/1.1");
    assert_eq!(object["response_code"], 418);
    assert_eq!(object["response_flags"], "-");
    assert_eq!(object["duration"], 4);
    assert_eq!(object["upstream_service_time"], "4");
    assert_eq!(object["upstream_host"], "10.44.1.27:80");
    assert!(object["x_forwarded_for"].is_null());

    let tcp: serde_json::Value =
        serde_json::from_str(&entry::to_json(&tcp_sample()).expect("serializes")).expect("JSON");
    assert!(tcp["method"].is_null() && tcp["protocol"].is_null());
    assert_eq!(tcp["response_flags"], "UF");
}

#[test]
fn formats_parse_like_istio_mesh_config() {
    assert_eq!(
        "TEXT".parse::<AccessLogFormat>().ok(),
        Some(AccessLogFormat::Text)
    );
    assert_eq!(
        "json".parse::<AccessLogFormat>().ok(),
        Some(AccessLogFormat::Json)
    );
    assert_eq!(
        "".parse::<AccessLogFormat>().ok(),
        Some(AccessLogFormat::Off)
    );
    assert!("xml".parse::<AccessLogFormat>().is_err());
    let off = AccessLog::off();
    off.log(&sample());
    assert!(!off.is_enabled());
}

/// A sink tests can read while the writer thread owns it.
#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Shared {
    fn lines(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|b| **b == b'\n')
            .count()
    }

    fn wait_for_lines(&self, want: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines() < want {
            assert!(
                Instant::now() < deadline,
                "only {} of {want} lines written",
                self.lines()
            );
            std::thread::yield_now();
        }
    }
}

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn writes_lines_in_the_background() {
    let sink = Shared::default();
    let log = AccessLog::spawn(AccessLogFormat::Json, sink.clone(), 16, Counter::default())
        .expect("writer thread starts");
    for _ in 0..3 {
        log.log(&sample());
    }
    sink.wait_for_lines(3);
    let written = String::from_utf8(sink.0.lock().expect("not poisoned").clone()).expect("UTF-8");
    for line in written.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
    }
}

/// A sink whose first write waits until the test opens it, as a stuck stdout would.
#[derive(Debug)]
struct Gated {
    entered: Arc<AtomicBool>,
    open: std_mpsc::Receiver<()>,
    waited: bool,
    out: Shared,
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.waited {
            self.entered.store(true, Ordering::SeqCst);
            let _ = self.open.recv();
            self.waited = true;
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stuck_writer_makes_entries_drop_not_block() {
    const CAPACITY: usize = 4;
    const EXTRA: u64 = 6;
    let (open, gate) = std_mpsc::channel();
    let entered = Arc::new(AtomicBool::new(false));
    let out = Shared::default();
    let sink = Gated {
        entered: Arc::clone(&entered),
        open: gate,
        waited: false,
        out: out.clone(),
    };
    let dropped = Counter::<u64>::default();
    let log = Arc::new(
        AccessLog::spawn(AccessLogFormat::Text, sink, CAPACITY, dropped.clone())
            .expect("writer thread starts"),
    );

    // The writer takes the first line and gets stuck writing it.
    log.log(&sample());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !entered.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the writer never started writing"
        );
        std::thread::yield_now();
    }

    // The queue takes CAPACITY more; the rest are dropped, and logging returns regardless.
    let (done, finished) = std_mpsc::channel();
    let logger = Arc::clone(&log);
    std::thread::spawn(move || {
        for _ in 0..CAPACITY as u64 + EXTRA {
            logger.log(&sample());
        }
        let _ = done.send(());
    });
    finished
        .recv_timeout(Duration::from_secs(30))
        .expect("logging blocked on a stuck writer");
    assert_eq!(dropped.get(), EXTRA);

    open.send(()).expect("writer is waiting");
    out.wait_for_lines(1 + CAPACITY);
    assert_eq!(dropped.get(), EXTRA);
}
