//! A minimal Redis (RESP) client for the credential fault: AUTH and CONFIG SET.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    time::Duration,
};

use crate::error::{LabError, Result};

fn command(addr: &str, password: &str, parts: &[&str]) -> Result<String> {
    let fail = |detail: String| LabError::Command {
        command: format!("redis {addr} {}", parts.first().copied().unwrap_or("")),
        detail,
    };
    let mut s = TcpStream::connect(addr).map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| fail(e.to_string()))?;
    let mut reader = BufReader::new(s.try_clone().map_err(|e| fail(e.to_string()))?);
    let mut reply = String::new();
    for cmd in [&["AUTH", password][..], parts] {
        let mut wire = format!("*{}\r\n", cmd.len());
        for p in cmd {
            wire.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        s.write_all(wire.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        reply.clear();
        reader
            .read_line(&mut reply)
            .map_err(|e| fail(e.to_string()))?;
        if reply.starts_with('-') {
            return Err(fail(reply.trim_end().to_string()));
        }
    }
    Ok(reply.trim_end().to_string())
}

/// Changes the server's password from `from` to `to`.
pub fn set_password(addr: &str, from: &str, to: &str) -> Result<()> {
    command(addr, from, &["CONFIG", "SET", "requirepass", to]).map(|_| ())
}

/// Whether the server at `addr` takes `password`: `false` when it refuses it, an error when
/// it cannot be asked.
pub fn accepts(addr: &str, password: &str) -> Result<bool> {
    match command(addr, password, &["PING"]) {
        Ok(_) => Ok(true),
        Err(LabError::Command { detail, .. }) if detail.starts_with('-') => Ok(false),
        Err(e) => Err(e),
    }
}
