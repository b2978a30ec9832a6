//! `trellis-testkit`: support for Trellis's end-to-end tests and benchmarks.
//!
//! [`upstream`] is an HTTP server to put behind a proxy: fast enough not to be the bottleneck
//! of a benchmark, and with endpoints (echo, status, delay, streaming) that let a test see what
//! the proxy did to a request. The `trellis-upstream` binary runs it as a process. [`openssl`]
//! checks certificates with the `openssl` command.

pub mod openssl;
pub mod upstream;

pub use upstream::{Upstream, UpstreamConfig, serve};
