//! The testbed's side of the local supervisor protocol: what Vigil's local runtime may ask the
//! lab's supervisor to do to a workload, each with the inverse that undoes it. The supervisor
//! knows what Vigil cannot see from the kernel: the release each service was deployed with
//! (binary, config, credential and their modes), its data volume, the load balancer's pool,
//! the DNS server's records.
//!
//! Replaced file contents (a credential among them) are kept in a stash beside the testbed
//! and named in the inverse by file name only, so no secret reaches Vigil's action records or
//! audit log.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde_json::{json, Value};
use vigil_domain::remediate::{
    supervisor::{Op, Reply, Request, Status, Supervised},
    ActionClass,
};

use super::{service_ip, AppFiles, Testbed, APP_REPLICAS, REDIS_PASSWORD};
use crate::{names::PREFIX, redis};

/// What each service was deployed with, read once the testbed is written and before any
/// fault: the release a rollback returns to.
#[derive(Debug, Clone)]
pub struct Release {
    apps: Vec<(String, AppRelease)>,
    dnsmasq_conf: String,
}

#[derive(Debug, Clone)]
struct AppRelease {
    files: AppFiles,
    conf: String,
    bin_target: PathBuf,
    secret: String,
    modes: Vec<(PathBuf, u32)>,
}

fn mode(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

impl Release {
    pub fn read(bed_files: &super::Files) -> crate::error::Result<Self> {
        let io = |what: &str| crate::error::LabError::io(format!("recording the release: {what}"));
        let mut apps = Vec::new();
        for app in APP_REPLICAS {
            let files = bed_files.app(app);
            let modes = [&files.conf, &files.secret]
                .into_iter()
                .map(|p| mode(p).map(|m| (p.clone(), m)))
                .collect::<std::io::Result<_>>()
                .map_err(io("modes"))?;
            apps.push((
                app.to_string(),
                AppRelease {
                    conf: std::fs::read_to_string(&files.conf).map_err(io("config"))?,
                    bin_target: std::fs::read_link(&files.bin).map_err(io("binary link"))?,
                    secret: std::fs::read_to_string(&files.secret).map_err(io("credential"))?,
                    modes,
                    files,
                },
            ));
        }
        Ok(Self {
            apps,
            dnsmasq_conf: std::fs::read_to_string(&bed_files.dnsmasq_conf)
                .map_err(io("DNS records"))?,
        })
    }

    fn app(&self, service: &str) -> Option<&AppRelease> {
        self.apps.iter().find(|(a, _)| a == service).map(|(_, r)| r)
    }
}

/// The app replicas web's nginx sends requests to, and what its config is made of.
pub struct Pool {
    pub members: Mutex<Vec<String>>,
    pub conf: PathBuf,
    pub dir: PathBuf,
    pub listen: String,
    pub tls_listen: String,
}

pub(super) type Outcome = std::result::Result<(String, Value), (Status, String)>;

pub(super) fn failed(what: impl std::fmt::Display) -> (Status, String) {
    (Status::Failed, what.to_string())
}

impl Testbed {
    /// Answers one supervisor-protocol request.
    pub fn remediate(&self, req: &Request) -> Reply {
        if req.op == Op::Fleet {
            return Reply {
                workloads: self.supervised(),
                ..Reply::done("", Value::Null)
            };
        }
        let Some(service) = req.workload.strip_prefix(PREFIX) else {
            return Reply::not(
                Status::Unsupported,
                format!("{} is not a lab workload", req.workload),
            );
        };
        let outcome = match req.op {
            Op::Apply => self.apply(req.action, service, req),
            Op::Undo => self.undo(req.action, service, &req.inverse),
            Op::Fleet => Ok((String::new(), Value::Null)),
        };
        match outcome {
            Ok((detail, inverse)) => Reply::done(detail, inverse),
            Err((status, why)) => Reply::not(status, why),
        }
    }

    /// The app replicas are one service's (`app`); every other service is its own.
    fn supervised(&self) -> Vec<Supervised> {
        let members = self
            .pool
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.supervisor
            .status()
            .into_iter()
            .map(|st| {
                let service = st.name.strip_prefix(PREFIX).unwrap_or(&st.name).to_string();
                let replica = APP_REPLICAS.contains(&service.as_str());
                Supervised {
                    group: if replica {
                        "app".into()
                    } else {
                        st.name.clone()
                    },
                    serving: st.running && (!replica || members.contains(&service)),
                    workload: st.name,
                }
            })
            .collect()
    }

    /// Redis's deployed credential is its `--requirepass`: a server that refuses it gets it
    /// back by a restart (the supervisor does not know the password that replaced it, which
    /// `CONFIG SET` would need).
    fn reapply_redis(&self, name: &str) -> Outcome {
        let addr = format!("{}:6379", service_ip("redis").map_err(failed)?);
        if redis::accepts(&addr, REDIS_PASSWORD).map_err(failed)? {
            return Err((
                Status::Refused,
                "redis accepts the credential it was deployed with".into(),
            ));
        }
        self.supervisor.restart(name).map_err(failed)?;
        Ok((
            format!(
                "restarted {name} with the credential it was deployed with (it persists no data: \
                 its cache starts empty)"
            ),
            json!({"nothing": "the credential it replaced was not the release's and is not kept"}),
        ))
    }

    fn app_release(
        &self,
        service: &str,
        action: ActionClass,
    ) -> Result<&AppRelease, (Status, String)> {
        self.release.app(service).ok_or_else(|| {
            (
                Status::Unsupported,
                format!(
                    "{service} has no release the supervisor deployed, so no {} for it",
                    action.as_str()
                ),
            )
        })
    }

    fn apply(&self, action: ActionClass, service: &str, req: &Request) -> Outcome {
        let name = format!("{PREFIX}{service}");
        match action {
            ActionClass::RestartProcess => {
                self.supervisor.restart(&name).map_err(failed)?;
                Ok((
                    format!("restarted {name}"),
                    json!({"nothing": "a restart changes no desired state"}),
                ))
            }
            ActionClass::Rollback => self.rollback(service, &name),
            ActionClass::RestoreFileMode => {
                let release = self.app_release(service, action)?;
                let mut changed: Vec<(PathBuf, u32, u32)> = Vec::new();
                for (path, want) in &release.modes {
                    let now = mode(path).map_err(failed)?;
                    if now != *want {
                        if let Err(e) = chmod(path, *want) {
                            // All or nothing: the modes already restored go back.
                            for (p, old, _) in &changed {
                                let _ = chmod(p, *old);
                            }
                            return Err(e);
                        }
                        changed.push((path.clone(), now, *want));
                    }
                }
                if changed.is_empty() {
                    return Err((
                        Status::Refused,
                        format!("every file {service} was deployed with has its deployed mode"),
                    ));
                }
                let detail = changed
                    .iter()
                    .map(|(p, a, b)| format!("{}: {a:o} -> {b:o}", file_name(p)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let modes: Vec<Value> = changed.iter().map(|(p, a, b)| json!([p, a, b])).collect();
                Ok((detail, json!({"modes": modes})))
            }
            ActionClass::ReapplyCredential if service == "redis" => self.reapply_redis(&name),
            ActionClass::ReapplyCredential => {
                let release = self.app_release(service, action)?;
                let path = &release.files.secret;
                let now = std::fs::read_to_string(path).map_err(failed)?;
                if now == release.secret {
                    return Err((
                        Status::Refused,
                        format!("{service}'s credential is the one it was deployed with"),
                    ));
                }
                let stash = self.stash(&now)?;
                write(path, &release.secret)?;
                Ok((
                    format!(
                        "re-applied {service}'s deployed credential ({})",
                        file_name(path)
                    ),
                    json!({"file": path, "stash": stash, "wrote": digest(release.secret.as_bytes())}),
                ))
            }
            ActionClass::RotateLog => self.rotate(service, req),
            ActionClass::RestartDns => {
                // The guardrails and the lock judged the workload named: only the DNS server's
                // own name restarts it.
                if service != "dns" {
                    return Err((
                        Status::Unsupported,
                        format!("{service} is not the DNS server ({PREFIX}dns is)"),
                    ));
                }
                let conf = &self.files.dnsmasq_conf;
                let now = std::fs::read_to_string(conf).map_err(failed)?;
                let good = &self.release.dnsmasq_conf;
                let inverse = if now == *good {
                    json!({"nothing": "the records were the last good ones"})
                } else {
                    let stash = self.stash(&now)?;
                    write(conf, good)?;
                    json!({"file": conf, "stash": stash, "wrote": digest(good.as_bytes()),
                           "restart": format!("{PREFIX}dns")})
                };
                if let Err(e) = self.supervisor.restart(&format!("{PREFIX}dns")) {
                    if now != *good {
                        write(conf, &now)?;
                    }
                    return Err(failed(e));
                }
                Ok((
                    "restarted the DNS server with its last good records".into(),
                    inverse,
                ))
            }
            ActionClass::AddReplica => {
                if !APP_REPLICAS.contains(&service) {
                    return Err((
                        Status::Unsupported,
                        format!("{service} has no replicas to add"),
                    ));
                }
                let stopped = self
                    .supervisor
                    .status()
                    .into_iter()
                    .filter(|s| !s.desired)
                    .map(|s| s.name)
                    .collect::<Vec<_>>();
                let pick = std::iter::once(name.clone())
                    .chain(APP_REPLICAS.iter().map(|a| format!("{PREFIX}{a}")))
                    .find(|n| stopped.contains(n))
                    .ok_or_else(|| {
                        (
                            Status::Refused,
                            "every app replica already runs".to_string(),
                        )
                    })?;
                self.supervisor.set_desired(&pick, true).map_err(failed)?;
                Ok((format!("started replica {pick}"), json!({"stop": pick})))
            }
            ActionClass::RemoveReplica => {
                let mut members = self.pool.members.lock().unwrap_or_else(|p| p.into_inner());
                if !members.iter().any(|m| m == service) {
                    return Err((
                        Status::Unsupported,
                        format!("{service} is in no load balancer's pool"),
                    ));
                }
                if members.len() <= 1 {
                    return Err((
                        Status::Refused,
                        format!("{service} is the pool's last replica"),
                    ));
                }
                // The pool changes only once web has taken the new config.
                let rest: Vec<String> = members.iter().filter(|m| *m != service).cloned().collect();
                self.write_pool(&rest).map_err(failed)?;
                *members = rest;
                Ok((
                    format!("took {service} out of web's pool ({} left)", members.len()),
                    json!({"add_back": service}),
                ))
            }
            ActionClass::RaiseBandwidthLimit => self.raise_bandwidth(&name, req),
            ActionClass::RenewCertificate => {
                if service != "web" {
                    return Err((
                        Status::Unsupported,
                        format!("{service} serves no certificate the supervisor issued"),
                    ));
                }
                let tls = &self.files.tls;
                let old = std::fs::read_to_string(&tls.cert).map_err(failed)?;
                let now = crate::state::now_unix_ms() as i64 / 1000;
                // What an issuer does: the same key and names, a new validity period.
                let pem = tls.issue(now - 3_600, now + 90 * 86_400).map_err(failed)?;
                let stash = self.stash(&old)?;
                write(&tls.cert, &pem)?;
                if let Err(e) = self.reload_web() {
                    // Nothing half-done: the certificate web has not loaded goes back.
                    write(&tls.cert, &old)?;
                    return Err(failed(format!(
                        "reloading web: {e}; the old certificate is back"
                    )));
                }
                Ok((
                    "re-issued web's certificate for 90 days from the lab CA and reloaded web"
                        .into(),
                    json!({"file": tls.cert, "stash": stash, "wrote": digest(pem.as_bytes()), "reload": "web"}),
                ))
            }
            other => Err((
                Status::Unsupported,
                format!("the lab's supervisor has no {}", other.as_str()),
            )),
        }
    }

    fn rollback(&self, service: &str, name: &str) -> Outcome {
        let release = self.app_release(service, ActionClass::Rollback)?;
        // A service the supervisor does not run is refused before any file changes.
        self.supervisor.pid(name).map_err(failed)?;
        let f = &release.files;
        let conf = std::fs::read_to_string(&f.conf).map_err(failed)?;
        let link = std::fs::read_link(&f.bin).ok();
        let mut inverse = json!({"restart": name});
        let mut parts = Vec::new();
        if conf != release.conf {
            inverse["conf"] = json!({"file": f.conf, "stash": self.stash(&conf)?,
                                     "wrote": digest(release.conf.as_bytes())});
            write(&f.conf, &release.conf)?;
            parts.push("config");
        }
        if link.as_ref() != Some(&release.bin_target) {
            inverse["bin"] = match &link {
                Some(t) => json!({"file": f.bin, "link": t}),
                None => {
                    let bytes = std::fs::read(&f.bin).map_err(failed)?;
                    json!({"file": f.bin, "stash": self.stash_bytes(&bytes)?})
                }
            };
            inverse["bin"]["wrote_link"] = json!(release.bin_target);
            let _ = std::fs::remove_file(&f.bin);
            if let Err(e) = std::os::unix::fs::symlink(&release.bin_target, &f.bin) {
                // Not left without a binary: what was there goes back.
                let _ = self.put_back(&f.bin, &inverse["bin"]);
                return Err(failed(format!("linking the deployed binary: {e}")));
            }
            parts.push("binary");
        }
        if parts.is_empty() {
            return Err((
                Status::Refused,
                format!("{service} runs its deployed release: nothing to roll back to"),
            ));
        }
        self.supervisor.restart(name).map_err(failed)?;
        Ok((
            format!(
                "rolled {service} back to its deployed {} and restarted it",
                parts.join(" and ")
            ),
            inverse,
        ))
    }

    /// Moves the older part of the volume's largest file to the archive, keeping its newest
    /// `keep_mib` — at most a quarter of the volume, or the rotation would free nothing.
    fn rotate(&self, service: &str, req: &Request) -> Outcome {
        let release = self.app_release(service, ActionClass::RotateLog)?;
        let volume = &release.files.data;
        let largest = std::fs::read_dir(volume)
            .map_err(failed)?
            .flatten()
            .filter_map(|e| Some((e.metadata().ok().filter(|m| m.is_file())?.len(), e.path())))
            .max()
            .ok_or_else(|| {
                (
                    Status::Refused,
                    format!("{} holds no file to rotate", volume.display()),
                )
            })?;
        let size = nix::sys::statvfs::statvfs(volume).map_err(failed)?;
        let capacity = size.blocks() as u64 * size.fragment_size() as u64;
        let keep_mib = req
            .params
            .get("keep_mib")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            .max(0.0);
        let keep = ((keep_mib * 1048576.0) as u64)
            .min(capacity / 4)
            .min(largest.0);
        let bytes = std::fs::read(&largest.1).map_err(failed)?;
        let cut = bytes.len().saturating_sub(keep as usize);
        let archive = self.stash_bytes(&bytes[..cut])?;
        write_bytes(&largest.1, &bytes[cut..])?;
        Ok((
            format!(
                "rotated {}: {} KiB to the archive, {} KiB kept",
                file_name(&largest.1),
                cut >> 10,
                keep >> 10
            ),
            json!({"file": largest.1, "prepend": archive, "wrote": digest(&bytes[cut..])}),
        ))
    }

    fn undo(&self, action: ActionClass, service: &str, inverse: &Value) -> Outcome {
        if inverse.get("nothing").is_some() {
            return Ok(("nothing to undo".into(), Value::Null));
        }
        let path = |v: &Value| {
            v.get("file")
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .ok_or_else(|| failed("the inverse names no file"))
        };
        let mut done = Vec::new();
        if let Some(modes) = inverse.get("modes").and_then(Value::as_array) {
            for m in modes {
                let (Some(p), Some(old), Some(set)) = (m[0].as_str(), m[1].as_u64(), m[2].as_u64())
                else {
                    return Err(failed("a mode in the inverse is not [file, old, set]"));
                };
                let p = self.regular_inside(Path::new(p))?;
                if mode(&p).map_err(failed)? != set as u32 {
                    return Err((
                        Status::Refused,
                        format!("{} changed mode since: left as it is", file_name(&p)),
                    ));
                }
                chmod(&p, old as u32)?;
                done.push(format!("{} back to {old:o}", file_name(&p)));
            }
        }
        for key in ["conf", "bin"] {
            if let Some(v) = inverse.get(key) {
                let p = self.inside(&path(v)?)?;
                self.still_vigils(&p, v)?;
                self.put_back(&p, v)?;
                done.push(format!("{} restored", file_name(&p)));
            }
        }
        if inverse.get("conf").is_none() && inverse.get("bin").is_none() {
            if let (Some(_), Some(s)) = (
                inverse.get("file"),
                inverse.get("stash").and_then(Value::as_str),
            ) {
                let p = self.regular_inside(&path(inverse)?)?;
                self.still_vigils(&p, inverse)?;
                write_bytes(&p, &self.unstash(s)?)?;
                done.push(format!("{} restored", file_name(&p)));
            }
        }
        if let Some(s) = inverse.get("prepend").and_then(Value::as_str) {
            let p = self.regular_inside(&path(inverse)?)?;
            self.still_vigils(&p, inverse)?;
            let mut bytes = self.unstash(s)?;
            bytes.extend(std::fs::read(&p).map_err(failed)?);
            write_bytes(&p, &bytes)?;
            done.push(format!("{} un-rotated", file_name(&p)));
        }
        if let Some(name) = inverse.get("stop").and_then(Value::as_str) {
            self.supervisor.set_desired(name, false).map_err(failed)?;
            done.push(format!("stopped {name}"));
        }
        if let Some(member) = inverse.get("add_back").and_then(Value::as_str) {
            let mut members = self.pool.members.lock().unwrap_or_else(|p| p.into_inner());
            if !members.iter().any(|m| m == member) {
                let mut all = members.clone();
                all.push(member.to_string());
                self.write_pool(&all).map_err(failed)?;
                *members = all;
            }
            done.push(format!("{member} back in web's pool"));
        }
        if inverse.get("reload").and_then(Value::as_str) == Some("web") {
            self.reload_web().map_err(failed)?;
            done.push("reloaded web".into());
        }
        if let Some(tbf) = inverse.get("tbf") {
            done.push(self.undo_bandwidth(tbf)?);
        }
        if let Some(name) = inverse.get("restart").and_then(Value::as_str) {
            self.supervisor.restart(name).map_err(failed)?;
            done.push(format!("restarted {name}"));
        }
        if done.is_empty() {
            return Err(failed(format!(
                "the inverse of {} on {service} says nothing to do",
                action.as_str()
            )));
        }
        Ok((done.join("; "), Value::Null))
    }

    /// A path a recorded inverse names, refused unless it is one of the testbed's own.
    fn inside(&self, p: &Path) -> Result<PathBuf, (Status, String)> {
        if p.starts_with(&self.files.dir)
            && !p.components().any(|c| c == std::path::Component::ParentDir)
        {
            Ok(p.to_path_buf())
        } else {
            Err((
                Status::Refused,
                format!("{} is outside the testbed", p.display()),
            ))
        }
    }

    /// A testbed path that is a file of its own, not a link (an inverse must not make the
    /// supervisor write or chmod what a link points at).
    fn regular_inside(&self, p: &Path) -> Result<PathBuf, (Status, String)> {
        let p = self.inside(p)?;
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err((
                Status::Refused,
                format!("{} is a link: not written through", p.display()),
            ));
        }
        Ok(p)
    }

    /// Refuses an undo over a change someone made since Vigil's: the file must still hold
    /// what Vigil wrote (`wrote`, a digest), or the link point where Vigil linked it.
    fn still_vigils(&self, p: &Path, v: &Value) -> Result<(), (Status, String)> {
        let changed = if let Some(want) = v.get("wrote").and_then(Value::as_str) {
            std::fs::read(p).map(|b| digest(&b)).ok().as_deref() != Some(want)
        } else if let Some(want) = v.get("wrote_link").and_then(Value::as_str) {
            std::fs::read_link(p).ok().as_deref() != Some(Path::new(want))
        } else {
            false
        };
        if changed {
            return Err((
                Status::Refused,
                format!(
                    "{} changed since Vigil's action: left as it is",
                    file_name(p)
                ),
            ));
        }
        Ok(())
    }

    /// Writes back what `v` recorded at `p`: a link, or a stashed content.
    fn put_back(&self, p: &Path, v: &Value) -> Result<(), (Status, String)> {
        match (
            v.get("link").and_then(Value::as_str),
            v.get("stash").and_then(Value::as_str),
        ) {
            (Some(t), _) => {
                let _ = std::fs::remove_file(p);
                std::os::unix::fs::symlink(t, p).map_err(failed)
            }
            (None, Some(s)) => {
                let bytes = self.unstash(s)?;
                let _ = std::fs::remove_file(p);
                write_bytes(p, &bytes)
            }
            _ => Err(failed("the inverse holds neither a link nor a stash")),
        }
    }

    fn stash(&self, text: &str) -> Result<String, (Status, String)> {
        self.stash_bytes(text.as_bytes())
    }

    fn stash_bytes(&self, bytes: &[u8]) -> Result<String, (Status, String)> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = self.files.dir.join("stash");
        std::fs::create_dir_all(&dir).map_err(failed)?;
        chmod(&dir, 0o700)?;
        let name = format!(
            "{}-{}",
            crate::state::now_unix_ms(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        write_bytes(&dir.join(&name), bytes)?;
        Ok(name)
    }

    fn unstash(&self, name: &str) -> Result<Vec<u8>, (Status, String)> {
        if name.contains('/') || name.starts_with('.') {
            return Err((Status::Refused, format!("{name:?} is not a stash entry")));
        }
        std::fs::read(self.files.dir.join("stash").join(name)).map_err(failed)
    }
}

/// A digest of what Vigil wrote, to know an undo would not overwrite someone's later change
/// (within one supervisor process: the hasher's keys are fixed).
fn digest(bytes: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn chmod(path: &Path, mode: u32) -> Result<(), (Status, String)> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| failed(format!("chmod {}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<(), (Status, String)> {
    write_bytes(path, text.as_bytes())
}

fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), (Status, String)> {
    std::fs::write(path, bytes).map_err(|e| failed(format!("writing {}: {e}", path.display())))
}

mod bandwidth;
mod pool;
#[cfg(test)]
mod tests;
