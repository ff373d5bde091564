//! Auth faults: a revoked credential, an expired token, a revoked file permission.

use std::time::Duration;

use super::{FaultClass, FaultCtx, Info, Params, Scenario};
use crate::{
    error::{LabError, Result},
    redis,
    state::{now_unix_ms, Undo},
    testbed::{service_ip, token, APP_REPLICAS, REDIS_PASSWORD},
};

pub struct RevokedCredential;

impl Scenario for RevokedCredential {
    fn info(&self) -> Info {
        Info {
            name: "revoked-credential",
            class: FaultClass::CredentialFailure,
            about: "redis's password changes under the apps: every AUTH fails",
            targets: &["redis"],
            default_target: "redis",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "rotate-credential",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        let addr = format!("{}:6379", service_ip("redis")?);
        let revoked = "vigil-lab-rotated";
        ctx.will_undo(Undo::RedisPassword {
            addr: addr.clone(),
            current: revoked.into(),
            restore: REDIS_PASSWORD.into(),
        })?;
        redis::set_password(&addr, REDIS_PASSWORD, revoked)
    }
}

pub struct ExpiredToken;

impl Scenario for ExpiredToken {
    fn info(&self) -> Info {
        Info {
            name: "expired-token",
            class: FaultClass::CredentialFailure,
            about: "the app's access token expires",
            targets: APP_REPLICAS,
            default_target: "app1",
            intensity: "seconds since expiry",
            default_intensity: 60.0,
            default_duration: Duration::from_secs(8),
            expected_action: "rotate-credential",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, p: &Params) -> Result<()> {
        let path = ctx.bed.files.app(ctx.service()).secret;
        let original = std::fs::read_to_string(&path).map_err(LabError::io("reading the token"))?;
        ctx.will_undo(Undo::WriteFile {
            path: path.clone(),
            value: original,
        })?;
        let expired = (now_unix_ms() / 1000).saturating_sub(p.intensity.max(1.0) as u64);
        std::fs::write(&path, token(expired)).map_err(LabError::io("writing an expired token"))
    }
}

pub struct PermissionDenied;

impl Scenario for PermissionDenied {
    fn info(&self) -> Info {
        Info {
            name: "permission-denied",
            class: FaultClass::PermissionDenied,
            about: "the file the app reads on every request loses its permissions (EACCES)",
            targets: APP_REPLICAS,
            default_target: "app1",
            intensity: "unused",
            default_intensity: 1.0,
            default_duration: Duration::from_secs(8),
            expected_action: "restore-permissions",
        }
    }

    fn inject(&self, ctx: &mut FaultCtx<'_>, _p: &Params) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = ctx.bed.files.app(ctx.service()).secret;
        let mode = std::fs::metadata(&path)
            .map_err(LabError::io("reading the token's mode"))?
            .permissions()
            .mode()
            & 0o7777;
        ctx.will_undo(Undo::Chmod {
            path: path.clone(),
            mode,
        })?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000))
            .map_err(LabError::io("revoking the token's permissions"))
    }
}
