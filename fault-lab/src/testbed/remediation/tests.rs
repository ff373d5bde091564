//! The supervisor's file actions and their inverses on a testbed's files in a temporary
//! directory (restarts, replicas and pools need the running testbed: `tests/lab/acting.rs`).

use std::{os::unix::fs::PermissionsExt, time::Duration};

use serde_json::{json, Value};
use vigil_domain::remediate::{
    supervisor::{Op, Reply, Request, Status, VERSION},
    ActionClass,
};

use super::{Pool, Release};
use crate::testbed::{supervisor::Supervisor, tls::TlsFiles, token, Files, Testbed, APP_CONF};

fn bed(dir: &std::path::Path) -> Testbed {
    let files = Files {
        dir: dir.to_path_buf(),
        dnsmasq_conf: dir.join("dnsmasq.conf"),
        tls: TlsFiles::create(&dir.join("tls"), vec!["web.lab".into()]).expect("tls"),
        nginx_pid: dir.join("nginx.pid"),
    };
    std::fs::write(&files.dnsmasq_conf, "host-record=redis.lab,10.0.0.30\n").expect("dns");
    for app in ["app1", "app2"] {
        let f = files.app(app);
        std::fs::write(&f.conf, APP_CONF).expect("conf");
        std::fs::write(&f.secret, token(u64::MAX / 2)).expect("secret");
        std::fs::set_permissions(&f.secret, std::fs::Permissions::from_mode(0o644)).expect("mode");
        std::os::unix::fs::symlink("/bin/true", &f.bin).expect("link");
        std::fs::create_dir_all(&f.data).expect("data");
    }
    let release = Release::read(&files).expect("release");
    Testbed {
        client: crate::testbed::health::client(&files.tls.ca_cert).expect("client"),
        supervisor: Supervisor::start(Vec::new()).expect("supervisor"),
        release,
        pool: Pool {
            members: std::sync::Mutex::new(vec!["app1".into(), "app2".into()]),
            conf: dir.join("nginx.conf"),
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:80".into(),
            tls_listen: "127.0.0.1:443".into(),
        },
        baseline: Duration::from_millis(5),
        files,
    }
}

/// One request of the protocol for `workload`.
fn ask_as(
    bed: &Testbed,
    workload: &str,
    op: Op,
    action: ActionClass,
    params: Value,
    inverse: Value,
) -> Reply {
    let params = serde_json::from_value(params).expect("params");
    bed.remediate(&Request {
        v: VERSION,
        op,
        action,
        workload: workload.into(),
        params,
        inverse,
    })
}

/// One request of the protocol for app1.
fn ask(bed: &Testbed, op: Op, action: ActionClass, params: Value, inverse: Value) -> Reply {
    ask_as(bed, "vigil-lab-app1", op, action, params, inverse)
}

/// The undo of an action on app1 with `inverse`.
fn undo(bed: &Testbed, action: ActionClass, inverse: Value) -> Reply {
    ask(bed, Op::Undo, action, json!({}), inverse)
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o7777
}

#[test]
fn a_revoked_mode_is_restored_and_the_inverse_revokes_it_again() {
    let dir = tempfile::tempdir().expect("dir");
    let bed = bed(dir.path());
    let secret = bed.files.app("app1").secret;
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::RestoreFileMode,
        json!({}),
        Value::Null,
    );
    assert_eq!(r.status, Status::Refused, "nothing differs yet: {r:?}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).expect("revoke");
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::RestoreFileMode,
        json!({}),
        Value::Null,
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(mode(&secret), 0o644);
    assert!(r.detail.contains("app1.token: 0 -> 644"), "{}", r.detail);
    let u = undo(&bed, ActionClass::RestoreFileMode, r.inverse.clone());
    assert!(u.ok, "{u:?}");
    assert_eq!(mode(&secret), 0);
    // Changed by someone since: their mode stands.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let r2 = ask(
        &bed,
        Op::Apply,
        ActionClass::RestoreFileMode,
        json!({}),
        Value::Null,
    );
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let u = undo(&bed, ActionClass::RestoreFileMode, r2.inverse);
    assert_eq!(u.status, Status::Refused, "{u:?}");
    assert_eq!(mode(&secret), 0o640);
}

#[test]
fn a_credential_is_reapplied_without_its_value_reaching_the_inverse() {
    let dir = tempfile::tempdir().expect("dir");
    let bed = bed(dir.path());
    let secret = bed.files.app("app1").secret;
    let expired = token(1);
    std::fs::write(&secret, &expired).expect("expire");
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::ReapplyCredential,
        json!({}),
        Value::Null,
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(&secret).expect("read"),
        token(u64::MAX / 2)
    );
    let wire = serde_json::to_string(&r).expect("encode");
    assert!(
        !wire.contains("expires = 1\n") && !wire.contains("token = lab"),
        "{wire}"
    );
    // Rotated again by someone since: the undo leaves their credential alone.
    std::fs::write(&secret, token(7)).expect("someone's rotation");
    let u = undo(&bed, ActionClass::ReapplyCredential, r.inverse.clone());
    assert_eq!(u.status, Status::Refused, "{u:?}");
    assert_eq!(std::fs::read_to_string(&secret).expect("read"), token(7));
    std::fs::write(&secret, token(u64::MAX / 2)).expect("as Vigil left it");
    let u = undo(&bed, ActionClass::ReapplyCredential, r.inverse);
    assert!(u.ok, "{u:?}");
    assert_eq!(std::fs::read_to_string(&secret).expect("read"), expired);
}

#[test]
fn a_full_volume_is_rotated_and_the_rotation_undone() {
    let dir = tempfile::tempdir().expect("dir");
    let bed = bed(dir.path());
    let data = bed.files.app("app1").data;
    let fill: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("fill"), &fill).expect("fill");
    std::fs::write(data.join("requests.log"), b"GET /\n").expect("log");
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::RotateLog,
        json!({"keep_mib": 1}),
        Value::Null,
    );
    assert!(r.ok, "{r:?}");
    let kept = std::fs::read(data.join("fill")).expect("read");
    assert_eq!(kept.len(), 1 << 20, "{}", r.detail);
    assert_eq!(
        kept[..],
        fill[fill.len() - (1 << 20)..],
        "the newest MiB stays"
    );
    let u = undo(&bed, ActionClass::RotateLog, r.inverse);
    assert!(u.ok, "{u:?}");
    assert_eq!(std::fs::read(data.join("fill")).expect("read"), fill);
}

#[test]
fn a_renewal_web_cannot_load_leaves_the_old_certificate_and_a_rollback_no_file_changed() {
    let dir = tempfile::tempdir().expect("dir");
    let bed = bed(dir.path());
    let before = std::fs::read_to_string(&bed.files.tls.cert).expect("cert");
    let r = ask_as(
        &bed,
        "vigil-lab-web",
        Op::Apply,
        ActionClass::RenewCertificate,
        json!({}),
        Value::Null,
    );
    assert_eq!(r.status, Status::Failed, "no nginx to reload here: {r:?}");
    assert!(
        r.error.contains("the old certificate is back"),
        "{}",
        r.error
    );
    assert_eq!(
        std::fs::read_to_string(&bed.files.tls.cert).expect("cert"),
        before
    );
    // The supervisor runs no app1 here: the broken config stays as it is, nothing restored
    // behind a restart that cannot happen.
    let conf = bed.files.app("app1").conf;
    std::fs::write(&conf, "broken\n").expect("break");
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::Rollback,
        json!({}),
        Value::Null,
    );
    assert!(!r.ok, "{r:?}");
    assert_eq!(std::fs::read_to_string(&conf).expect("conf"), "broken\n");
}

#[test]
fn forged_inverses_and_unknown_workloads_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let bed = bed(dir.path());
    let forged = json!({"file": "/etc/passwd", "stash": "x"});
    let u = undo(&bed, ActionClass::ReapplyCredential, forged);
    assert_eq!(u.status, Status::Refused, "{u:?}");
    assert!(u.error.contains("outside the testbed"), "{}", u.error);
    // A link inside the testbed is not written or chmod-ed through.
    let link = bed.files.app("app1").bin.display().to_string();
    let u = undo(
        &bed,
        ActionClass::RestoreFileMode,
        json!({"modes": [[link, 0o4755, 0o755]]}),
    );
    assert_eq!(u.status, Status::Refused, "{u:?}");
    assert!(u.error.contains("is a link"), "{}", u.error);
    let inside = bed.files.app("app1").secret.display().to_string();
    let u = undo(
        &bed,
        ActionClass::ReapplyCredential,
        json!({"file": inside, "stash": "../../etc/shadow"}),
    );
    assert_eq!(u.status, Status::Refused, "{u:?}");
    let r = ask_as(
        &bed,
        "sshd",
        Op::Apply,
        ActionClass::RestartProcess,
        json!({}),
        Value::Null,
    );
    assert_eq!(r.status, Status::Unsupported, "{r:?}");
    std::fs::write(&bed.pool.conf, "# web's config as deployed\n").expect("conf");
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::RemoveReplica,
        json!({}),
        Value::Null,
    );
    assert!(!r.ok, "web's reload needs nginx: {r:?}");
    assert_eq!(
        bed.pool.members.lock().expect("pool").len(),
        2,
        "a failed reload changes no pool"
    );
    assert_eq!(
        std::fs::read_to_string(&bed.pool.conf).expect("conf"),
        "# web's config as deployed\n",
        "the config nginx did not take is written back"
    );
    bed.pool
        .members
        .lock()
        .expect("pool")
        .retain(|m| m == "app1");
    let r = ask(
        &bed,
        Op::Apply,
        ActionClass::RemoveReplica,
        json!({}),
        Value::Null,
    );
    assert_eq!(r.status, Status::Refused, "the pool's last replica: {r:?}");
}
