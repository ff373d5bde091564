//! Request-level aggregates: the kernel's per-edge counters and failing replies, plus the
//! requests outstanding past the timeout, found in each connection's parsing state.
//!
//! The kernel cannot notice a reply that never comes (a frozen server's kernel still ACKs
//! every segment), so user space reads the connections with a request outstanding each
//! interval and counts those older than the timeout, once per request.

use std::collections::{HashMap, HashSet};

use node_agent_common::{
    l7::{self, L7Conn, L7EdgeKey, L7ErrorKey, L7Stats, TlsKey},
    FlowKey,
};

use super::delta::{Counters, DeltaTracker};

impl Counters for L7Stats {
    fn delta(&self, prev: &Self) -> Option<Self> {
        Some(Self {
            requests: self.requests.checked_sub(prev.requests)?,
            responses: self.responses.checked_sub(prev.responses)?,
            errors: self.errors.checked_sub(prev.errors)?,
            client_errors: self.client_errors.checked_sub(prev.client_errors)?,
            pipelined: self.pipelined.checked_sub(prev.pipelined)?,
            unparsed: self.unparsed.checked_sub(prev.unparsed)?,
            closed_pending: self.closed_pending.checked_sub(prev.closed_pending)?,
            latency: self.latency.delta(&prev.latency)?,
        })
    }
    fn is_zero(&self) -> bool {
        self.requests == 0 && self.responses == 0 && self.unparsed == 0 && self.closed_pending == 0
    }
}

/// One edge's requests over an interval.
#[derive(Debug, Clone)]
pub struct EdgeRequests {
    pub stats: L7Stats,
    /// Failing replies by code (as the kernel packs it), with their counts.
    pub statuses: Vec<(u64, u64)>,
    pub timeouts: u64,
    /// Requests outstanding past the timeout now.
    pub stuck: u64,
    /// The first bytes of the first failing reply with a new code (as the kernel packs it).
    pub samples: Vec<(u64, String)>,
}

impl Default for EdgeRequests {
    fn default() -> Self {
        Self {
            stats: L7Stats::ZERO,
            statuses: Vec::new(),
            timeouts: 0,
            stuck: 0,
            samples: Vec::new(),
        }
    }
}

impl EdgeRequests {
    /// Adds another connection's requests on the same edge (TLS connections are counted
    /// one by one in the kernel).
    pub fn merge(&mut self, o: &Self) {
        let (s, t) = (&mut self.stats, &o.stats);
        s.requests += t.requests;
        s.responses += t.responses;
        s.errors += t.errors;
        s.client_errors += t.client_errors;
        s.pipelined += t.pipelined;
        s.unparsed += t.unparsed;
        s.closed_pending += t.closed_pending;
        super::kernel_maps::add_hist(&mut s.latency, &t.latency);
        for &(code, n) in &o.statuses {
            match self.statuses.iter_mut().find(|(c, _)| *c == code) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((code, n)),
            }
        }
        self.timeouts += o.timeouts;
        self.stuck += o.stuck;
        for (code, text) in &o.samples {
            if !self.samples.iter().any(|(c, _)| c == code) {
                self.samples.push((*code, text.clone()));
            }
        }
    }
}

/// Which connection a parsing state belongs to: a TCP connection's, or a TLS one's
/// (process, `SSL *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnId {
    Tcp(FlowKey),
    Tls(TlsKey),
}

/// One connection's parsing state and the edge its requests count on.
#[derive(Debug, Clone, Copy)]
pub struct OpenConn {
    pub id: ConnId,
    pub conn: L7Conn,
    pub edge: L7EdgeKey,
}

impl OpenConn {
    pub fn tcp(key: FlowKey, conn: L7Conn) -> Self {
        Self {
            id: ConnId::Tcp(key),
            edge: L7EdgeKey::of(&key, &conn),
            conn,
        }
    }
}

/// What one drain found, and which kernel entries the caller removes.
pub struct RequestDrain {
    pub edges: HashMap<L7EdgeKey, EdgeRequests>,
    pub idle_stats: Vec<L7EdgeKey>,
    pub idle_errors: Vec<L7ErrorKey>,
}

/// Per-edge deltas between drains and the requests already counted as timed out.
#[derive(Default)]
pub struct RequestTracker {
    pub stats: DeltaTracker<L7EdgeKey, L7Stats>,
    pub errors: DeltaTracker<L7ErrorKey, u64>,
    /// (connection, request time) of outstanding requests counted as timed out.
    timed_out: HashSet<(ConnId, u64)>,
    /// Requests counted as timed out since the agent started.
    pub timeouts: u64,
}

impl RequestTracker {
    pub fn drain(
        &mut self,
        stats: Vec<(L7EdgeKey, L7Stats)>,
        errors: Vec<(L7ErrorKey, u64)>,
        conns: Vec<OpenConn>,
        now_ktime: u64,
        timeout_ns: u64,
        idle: u32,
    ) -> RequestDrain {
        let mut edges: HashMap<L7EdgeKey, EdgeRequests> = HashMap::new();
        let observed = self.stats.observe(stats, idle);
        for (k, d) in observed.changed {
            edges.entry(k).or_default().stats = d;
        }
        let failed = self.errors.observe(errors, idle);
        for (k, n) in failed.changed {
            edges.entry(k.edge).or_default().statuses.push((k.code, n));
        }
        let mut still_out = HashSet::new();
        for OpenConn { id, conn: c, edge } in conns {
            if c.pending == 0 || c.proto == l7::PROTO_UNKNOWN || c.proto == l7::PROTO_OPAQUE {
                continue;
            }
            let request = (id, c.request_ns);
            if now_ktime.saturating_sub(c.request_ns) < timeout_ns {
                continue;
            }
            let edge = edges.entry(edge).or_default();
            edge.stuck += 1;
            if !self.timed_out.contains(&request) {
                edge.timeouts += 1;
                self.timeouts += 1;
            }
            still_out.insert(request);
        }
        // A request answered (or its connection gone) since is forgotten.
        self.timed_out = still_out;
        RequestDrain {
            edges,
            idle_stats: observed.idle,
            idle_errors: failed.idle,
        }
    }
}

/// A failing reply's code as text: "503", "WRONGPASS", "28P01"; empty when it did not say.
pub fn status_name(proto: u8, code: u64) -> String {
    if code == 0 {
        return String::new();
    }
    let mut out = [0u8; 13];
    let n = match proto {
        l7::PROTO_REDIS => l7::redis::prefix_of(code, &mut out),
        l7::PROTO_POSTGRES => l7::postgres::sqlstate_of(code, &mut out),
        l7::PROTO_HTTP2 if code >= l7::http2::CODE_RST_STREAM => {
            let frame = if code >= l7::http2::CODE_GOAWAY {
                "GOAWAY"
            } else {
                "RST_STREAM"
            };
            return format!("{frame} {}", l7::http2::error_name(code as u32));
        }
        _ => return code.to_string(),
    };
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_agent_common::{l7::Peek, ROLE_CLIENT, ROLE_SERVER};

    fn flow(port: u16) -> FlowKey {
        FlowKey {
            local_addr: [1; 16],
            remote_addr: [2; 16],
            local_port: port,
            remote_port: 6379,
            _pad: 0,
        }
    }

    fn pending(since: u64) -> L7Conn {
        L7Conn {
            request_ns: since,
            cgroup_id: 7,
            proto: l7::PROTO_REDIS,
            role: ROLE_CLIENT,
            pending: 1,
            misses: 0,
            stash_len: 0,
            _pad: [0; 3],
            stash: [0; 16],
        }
    }

    #[test]
    fn a_request_outstanding_past_the_timeout_counts_once() {
        let mut t = RequestTracker::default();
        let s = 1_000_000_000;
        let conns = || {
            vec![
                OpenConn::tcp(flow(40000), pending(s)),
                OpenConn::tcp(flow(40001), pending(9 * s)),
            ]
        };
        let d = t.drain(vec![], vec![], conns(), 10 * s, 5 * s, 30);
        let edge = L7EdgeKey::of(&flow(40000), &pending(s));
        assert_eq!(edge.server_port, 6379);
        assert_eq!(
            d.edges.get(&edge).map(|e| e.timeouts),
            Some(1),
            "one of two is late"
        );
        // Still outstanding next interval: not counted again, but still stuck.
        let d = t.drain(vec![], vec![], conns(), 11 * s, 5 * s, 30);
        let e = d.edges.get(&edge).expect("the stuck request's edge");
        assert_eq!((e.timeouts, e.stuck), (0, 1));
        // Answered, then a new request on the connection times out: counted.
        let d = t.drain(
            vec![],
            vec![],
            vec![OpenConn::tcp(flow(40000), pending(12 * s))],
            18 * s,
            5 * s,
            30,
        );
        assert_eq!(d.edges.get(&edge).map(|e| e.timeouts), Some(1));
        assert_eq!(t.timeouts, 2);
        // A server's outstanding request is on its own edge, keyed by its listening port.
        let mut server = pending(s);
        server.role = ROLE_SERVER;
        assert_eq!(L7EdgeKey::of(&flow(8080), &server).server_port, 8080);
    }

    #[test]
    fn deltas_and_status_names() {
        let mut t = RequestTracker::default();
        let edge = L7EdgeKey::of(&flow(40000), &pending(0));
        let mut total = L7Stats::ZERO;
        total.requests = 10;
        total.responses = 9;
        total.errors = 3;
        let code = l7::reply(
            l7::PROTO_REDIS,
            &Peek::of(b"-WRONGPASS invalid username-password pair\r\n"),
        )
        .map(|r| r.code)
        .unwrap_or(0);
        let err = L7ErrorKey { edge, code };
        t.drain(vec![(edge, total)], vec![(err, 3)], vec![], 0, 1, 30);
        total.requests = 15;
        total.responses = 15;
        let d = t.drain(vec![(edge, total)], vec![(err, 3)], vec![], 0, 1, 30);
        let e = d.edges.get(&edge).expect("the edge changed");
        assert_eq!(
            (e.stats.requests, e.stats.responses, e.stats.errors),
            (5, 6, 0)
        );
        assert!(e.statuses.is_empty(), "no new failures");
        assert_eq!(status_name(l7::PROTO_REDIS, code), "WRONGPASS");
        assert_eq!(status_name(l7::PROTO_HTTP1, 503), "503");
        let pg = l7::reply(
            l7::PROTO_POSTGRES,
            &Peek::of(b"E\x00\x00\x00\x20SFATAL\x00VFATAL\x00C28P01\x00M\x00\x00"),
        )
        .map(|r| r.code)
        .unwrap_or(0);
        assert_eq!(status_name(l7::PROTO_POSTGRES, pg), "28P01");
        assert_eq!(status_name(l7::PROTO_REDIS, 0), "");
    }
}
