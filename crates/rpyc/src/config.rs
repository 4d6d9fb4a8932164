//! Connection settings.

use crate::expose::Exposed;
use rpyc_wire::conn::{defaults, Config as WireConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Settings of one connection. The defaults are the Python package's (`DEFAULT_CONFIG`):
/// the protocol limits come from the shared connection core (`rpyc_wire::conn::Config`).
#[derive(Clone)]
pub struct Config {
    /// How long a synchronous request waits for its answer (`None`: forever). Default 30 s.
    pub sync_request_timeout: Option<Duration>,
    /// How long connecting may take (`None`: the system's limit). Default 3 s, as
    /// upstream's `rpyc.connect`.
    pub connect_timeout: Option<Duration>,
    /// How long a write may wait while the peer reads nothing (`None`: forever). Default 60 s.
    pub send_stall_timeout: Option<Duration>,
    /// Frame, nesting, pending-request and object-table limits, compression, `bind_threads`.
    pub wire: WireConfig,
    /// How long a thread waiting for an answer polls the socket before it blocks (the
    /// Python package's `busy_poll_us`, 50 us): an answer that comes within it saves the
    /// wake-up of a blocked thread. Zero: block at once.
    pub busy_poll: Duration,
    /// Negotiate rpyc-rs extensions (the Python package's `rpyc_rs_extensions`, default
    /// on): a connecting side sends a hello that upstream peers simply echo; with an
    /// rpyc-rs peer, releases are not answered (`quiet_del`) and a server's root class comes
    /// with the answer (`root_class`, one round trip less for a Python client's `conn.root`).
    pub rpyc_rs_extensions: bool,
    /// Disable Nagle's algorithm on TCP sockets (default on: calls are small and
    /// latency-bound).
    pub nodelay: bool,
    /// What this side exposes to the peer as its root (`conn.root` over there). Default:
    /// nothing. A server sets its service here.
    pub service: Option<Arc<dyn Exposed>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sync_request_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Some(Duration::from_secs(3)),
            send_stall_timeout: Some(Duration::from_secs_f64(defaults::SEND_STALL_TIMEOUT)),
            wire: WireConfig::default(),
            busy_poll: Duration::from_micros(defaults::BUSY_POLL_US),
            rpyc_rs_extensions: true,
            nodelay: true,
            service: None,
        }
    }
}

impl Config {
    /// The default settings with `service` as the root this side exposes.
    pub fn with_service(service: impl Exposed) -> Config {
        Config {
            service: Some(Arc::new(service)),
            ..Config::default()
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("sync_request_timeout", &self.sync_request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("send_stall_timeout", &self.send_stall_timeout)
            .field("wire", &self.wire)
            .field("busy_poll", &self.busy_poll)
            .field("rpyc_rs_extensions", &self.rpyc_rs_extensions)
            .field("nodelay", &self.nodelay)
            .field("service", &self.service.as_ref().map(|s| s.type_name()))
            .finish()
    }
}
