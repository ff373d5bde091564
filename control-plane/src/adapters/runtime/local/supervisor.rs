//! The client side of the local supervisor protocol (`domain::remediate::supervisor`): one
//! request per connection to the supervisor's Unix socket, one JSON line each way, with a
//! deadline, so a hung supervisor costs one action and not the remediation loop.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    time::Duration,
};

use serde_json::{json, Value};

use crate::domain::{
    entity::EntityId,
    remediate::{
        ports::RuntimeError,
        supervisor::{Op, Reply, Request, Status, Supervised, MAX_LINE, VERSION},
        ActionClass, Applied, Step,
    },
};

/// Long enough for a restart with a grace period (the supervisor's SIGTERM wait), short
/// enough that a hung supervisor is named within one verification window.
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Supervisor {
    socket: PathBuf,
}

/// The supervisor's name for a `cgroup/…` workload: its cgroup's last part.
fn workload(target: &EntityId) -> Option<&str> {
    target
        .as_str()
        .strip_prefix("cgroup/")
        .and_then(|p| p.rsplit('/').next())
        .filter(|w| !w.is_empty() && *w != "." && *w != "..")
}

fn workload_of(target: &EntityId, class: ActionClass) -> Result<&str, RuntimeError> {
    workload(target).ok_or_else(|| RuntimeError::Unsupported {
        runtime: "local",
        action: class.as_str(),
        why: format!("{target} is not a cgroup/<path> workload of this host"),
    })
}

impl Supervisor {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    fn call(&self, request: &Request, target: &EntityId) -> Result<Reply, RuntimeError> {
        let class = request.action;
        let failed = |why: String| RuntimeError::Failed {
            action: class.as_str(),
            target: target.clone(),
            why,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| {
            failed(format!(
                "cannot reach the supervisor at {}: {e} (is it running? [remediation.local] supervisor names its socket)",
                self.socket.display()
            ))
        })?;
        let _ = stream.set_read_timeout(Some(DEADLINE));
        let _ = stream.set_write_timeout(Some(DEADLINE));
        let mut line = serde_json::to_vec(request)
            .map_err(|e| failed(format!("encoding the request: {e}")))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .map_err(|e| failed(format!("writing to the supervisor: {e}")))?;
        let mut answer = String::new();
        BufReader::new(stream.take(MAX_LINE as u64))
            .read_line(&mut answer)
            .map_err(|e| {
                failed(format!(
                    "no answer from the supervisor within {DEADLINE:?}: {e}"
                ))
            })?;
        serde_json::from_str(answer.trim()).map_err(|e| {
            failed(format!(
                "the supervisor's answer is not a protocol v{VERSION} reply ({e}): {:?}",
                answer.chars().take(200).collect::<String>()
            ))
        })
    }

    fn outcome(reply: Reply, class: ActionClass, target: &EntityId) -> Result<Reply, RuntimeError> {
        let why = reply.error.clone();
        match reply.status {
            Status::Done if reply.ok => Ok(reply),
            Status::Unsupported => Err(RuntimeError::Unsupported {
                runtime: "local",
                action: class.as_str(),
                why,
            }),
            Status::Refused => Err(RuntimeError::Refused {
                action: class.as_str(),
                target: target.clone(),
                why,
            }),
            _ => Err(RuntimeError::Failed {
                action: class.as_str(),
                target: target.clone(),
                why: if why.is_empty() {
                    "the supervisor answered with no error".into()
                } else {
                    why
                },
            }),
        }
    }

    pub fn apply(&self, target: &EntityId, step: &Step) -> Result<Applied, RuntimeError> {
        let class = step.action;
        let workload = workload_of(target, class)?;
        let request = Request {
            v: VERSION,
            op: Op::Apply,
            action: class,
            workload: workload.to_string(),
            params: step.params.clone(),
            inverse: Value::Null,
        };
        let reply = Self::outcome(self.call(&request, target)?, class, target)?;
        Ok(Applied {
            detail: reply.detail,
            // Tagged as the supervisor's, so an undo goes back to it.
            inverse: json!({"class": class, "supervisor": reply.inverse}),
        })
    }

    /// The workloads the supervisor runs: which are replicas of one service, which serve.
    pub fn fleet(&self) -> Result<Vec<Supervised>, RuntimeError> {
        let target = EntityId::new("supervisor");
        let request = Request {
            v: VERSION,
            op: Op::Fleet,
            action: ActionClass::RestartProcess,
            workload: String::new(),
            params: Default::default(),
            inverse: Value::Null,
        };
        Self::outcome(self.call(&request, &target)?, request.action, &target).map(|r| r.workloads)
    }

    /// Whether `applied` was this supervisor's to undo.
    pub fn owns(applied: &Applied) -> bool {
        applied.inverse.get("supervisor").is_some()
    }

    pub fn undo(&self, target: &EntityId, applied: &Applied) -> Result<(), RuntimeError> {
        let class: ActionClass =
            serde_json::from_value(applied.inverse["class"].clone()).map_err(|e| {
                RuntimeError::Failed {
                    action: "undo",
                    target: target.clone(),
                    why: format!("the recorded inverse names no action: {e}"),
                }
            })?;
        let workload = workload_of(target, class)?;
        let request = Request {
            v: VERSION,
            op: Op::Undo,
            action: class,
            workload: workload.to_string(),
            params: Default::default(),
            inverse: applied.inverse["supervisor"].clone(),
        };
        Self::outcome(self.call(&request, target)?, class, target).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use crate::domain::remediate::ports::Runtime as _;

    use super::*;

    /// A supervisor on a real socket answering each request line with `answer(request)`,
    /// keeping the requests it saw.
    fn serve(
        dir: &std::path::Path,
        answer: fn(&Request) -> String,
    ) -> (PathBuf, std::sync::mpsc::Receiver<Request>) {
        let path = dir.join("supervisor.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut line = String::new();
                let _ = BufReader::new(&stream).read_line(&mut line);
                let Ok(req) = serde_json::from_str::<Request>(&line) else {
                    return;
                };
                let mut out = answer(&req);
                out.push('\n');
                let _ = (&stream).write_all(out.as_bytes());
                let _ = tx.send(req);
            }
        });
        (path, rx)
    }

    fn step(yaml: &str) -> Step {
        serde_saphyr::from_str(yaml).expect("step")
    }

    #[test]
    fn an_action_and_its_undo_go_to_the_supervisor_with_the_inverse_it_gave() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, seen) = serve(dir.path(), |r| {
            let reply = match r.op {
                Op::Apply => Reply::done("restored app1.token", json!({"modes": [["/x", 0, 420]]})),
                _ => Reply::done("undone", Value::Null),
            };
            serde_json::to_string(&reply).expect("encode")
        });
        let rt = super::super::LocalRuntime::new(
            super::super::CgroupLimits::new(dir.path().join("m"), dir.path().join("c")),
            Some(path),
        );
        let target = EntityId::new("cgroup/system.slice/vigil-lab-app1");
        assert!(rt.supports(ActionClass::RestoreFileMode));
        let applied = rt
            .apply(&target, &step("action: restore_file_mode\n"))
            .expect("apply");
        assert_eq!(applied.detail, "restored app1.token");
        let req = seen.recv().expect("request");
        assert_eq!(
            (req.op, req.workload.as_str()),
            (Op::Apply, "vigil-lab-app1")
        );
        rt.undo(&target, &applied).expect("undo");
        let req = seen.recv().expect("request");
        assert_eq!(req.op, Op::Undo);
        assert_eq!(req.inverse, json!({"modes": [["/x", 0, 420]]}));
    }

    #[test]
    fn refusals_garbage_and_a_missing_supervisor_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, _seen) = serve(dir.path(), |r| {
            if r.action == ActionClass::RemoveReplica {
                serde_json::to_string(&Reply::not(Status::Refused, "the pool's last replica"))
                    .expect("encode")
            } else {
                "HTTP/1.1 400 Bad Request".into()
            }
        });
        let sup = Supervisor::new(path);
        let target = EntityId::new("cgroup/vigil-lab-app1");
        let e = sup
            .apply(&target, &step("action: remove_replica\nreplicas: 1\n"))
            .expect_err("refused");
        assert!(
            matches!(e, RuntimeError::Refused { .. }) && e.to_string().contains("last replica"),
            "{e}"
        );
        let e = sup
            .apply(&target, &step("action: restart_process\nreplicas: 1\n"))
            .expect_err("garbage");
        assert!(e.to_string().contains("not a protocol v1 reply"), "{e}");
        let gone = Supervisor::new(dir.path().join("nobody.sock"));
        let e = gone
            .apply(&target, &step("action: restart_process\nreplicas: 1\n"))
            .expect_err("no supervisor");
        assert!(e.to_string().contains("cannot reach the supervisor"), "{e}");
        let none = super::super::LocalRuntime::host(None);
        assert!(
            !none.supports(ActionClass::Rollback),
            "no supervisor, no rollback"
        );
        assert!(none.supports(ActionClass::RaiseMemoryLimit));
    }
}
