//! The local supervisor protocol: what Vigil's local runtime asks of the process supervisor
//! of a host it acts on (the fault lab's testbed is the first to speak it), and what it
//! answers. One JSON object per line over a Unix socket, one request per connection.
//!
//! The supervisor owns what only it knows about a workload: how to restart it, which release
//! (binary and config) last ran, which files and credentials it was deployed with and their
//! modes, where its logs are, which load-balancer pool it sits in. Vigil decides and verifies;
//! the supervisor carries the action out and returns the inverse it will need to undo it.
//!
//! ```text
//! → {"v":1,"op":"apply","action":"restore_file_mode","workload":"vigil-lab-app1","params":{}}
//! ← {"ok":true,"status":"done","detail":"app1.token: 0 -> 644","inverse":{"modes":[["/…/app1.token",0,420]]}}
//! → {"v":1,"op":"undo","action":"restore_file_mode","workload":"vigil-lab-app1","inverse":{…}}
//! ← {"ok":false,"status":"refused","error":"…"}
//! → {"v":1,"op":"fleet","action":"restart_process","workload":""}
//! ← {"ok":true,"status":"done","workloads":[{"workload":"vigil-lab-app1","group":"app",…}]}
//! ```
//!
//! `fleet` says which workloads are replicas of one service and which of them serve, so the
//! blast-radius guardrails count a host's replicas as they count a Deployment's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ActionClass;

/// The protocol version this side speaks.
pub const VERSION: u32 = 1;
/// The longest line either side reads: a request or reply is a few hundred bytes.
pub const MAX_LINE: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Apply,
    Undo,
    /// The workloads the supervisor runs (`action` and `workload` are ignored).
    Fleet,
}

/// One workload as its supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervised {
    pub workload: String,
    /// The service it is a replica of (itself when it has no other replicas).
    pub group: String,
    /// Running and, where a load balancer sends it requests, in its pool.
    pub serving: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    pub op: Op,
    pub action: ActionClass,
    /// The workload as the supervisor names it: the last part of its `cgroup/…` path.
    pub workload: String,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// For `undo`: what `apply` returned.
    #[serde(default)]
    pub inverse: Value,
}

/// Why an action did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    /// The supervisor has no such action for this workload (no pool, no earlier release).
    Unsupported,
    /// It could, and says no: the action would be unsafe (the pool's last replica) or is
    /// not Vigil's to undo any more (someone changed it since).
    Refused,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub status: Status,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub inverse: Value,
    /// For `fleet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<Supervised>,
}

impl Reply {
    pub fn done(detail: impl Into<String>, inverse: Value) -> Self {
        Self {
            ok: true,
            status: Status::Done,
            detail: detail.into(),
            error: String::new(),
            inverse,
            workloads: Vec::new(),
        }
    }

    pub fn not(status: Status, error: impl Into<String>) -> Self {
        Self {
            ok: false,
            status,
            detail: String::new(),
            error: error.into(),
            inverse: Value::Null,
            workloads: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_keep_their_wire_shape() {
        let r: Request = serde_json::from_str(
            r#"{"v":1,"op":"apply","action":"rotate_log","workload":"w","params":{"keep_mib":1}}"#,
        )
        .expect("request");
        assert_eq!(r.op, Op::Apply);
        assert_eq!(r.action, ActionClass::RotateLog);
        assert_eq!(r.inverse, Value::Null);
        let line =
            serde_json::to_string(&Reply::not(Status::Refused, "last replica")).expect("encode");
        assert!(line.contains(r#""status":"refused""#), "{line}");
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"op":"rm -rf","action":"x"}"#).is_err());
    }
}
