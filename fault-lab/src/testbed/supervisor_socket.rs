//! The supervisor's Unix socket: Vigil's local runtime connects, sends one request line of
//! the local supervisor protocol, and reads one reply line. Requests are served one at a time
//! (an action on the testbed is never run beside another), and only root may connect (the
//! socket is 0600 in a root-owned directory).

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::{
        fs::PermissionsExt,
        net::{UnixListener, UnixStream},
    },
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tracing::{info, warn};
use vigil_domain::remediate::supervisor::{Reply, Request, Status, MAX_LINE, VERSION};

use super::Testbed;
use crate::error::{LabError, Result};

/// Binds `path` (replacing a stale socket) for `serve`.
pub fn bind(path: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).map_err(LabError::io(format!("binding {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(LabError::io("restricting the supervisor socket"))?;
    listener
        .set_nonblocking(true)
        .map_err(LabError::io("configuring the supervisor socket"))?;
    Ok(listener)
}

/// Answers requests until `stop` is set.
pub fn serve(bed: &Testbed, listener: &UnixListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => answer(bed, stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                warn!(error = %e, "supervisor socket: accept failed");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn answer(bed: &Testbed, stream: UnixStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let read = BufReader::new((&stream).take(MAX_LINE as u64)).read_line(&mut line);
    let reply = match read {
        Err(e) => Reply::not(Status::Failed, format!("reading the request: {e}")),
        Ok(_) if !line.ends_with('\n') => Reply::not(
            Status::Failed,
            format!("a request is one line of at most {MAX_LINE} bytes ending in a newline"),
        ),
        Ok(_) => match serde_json::from_str::<Request>(line.trim()) {
            Err(e) => Reply::not(Status::Failed, format!("not a supervisor request: {e}")),
            Ok(r) if r.v != VERSION => Reply::not(
                Status::Unsupported,
                format!("protocol v{} asked; this supervisor speaks v{VERSION}", r.v),
            ),
            Ok(r) => {
                let reply = bed.remediate(&r);
                info!(op = ?r.op, action = r.action.as_str(), workload = %r.workload, status = ?reply.status, detail = %reply.detail, error = %reply.error, "supervisor request");
                reply
            }
        },
    };
    let mut out = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    if let Err(e) = (&stream).write_all(&out) {
        warn!(error = %e, "supervisor socket: could not answer");
    }
}
