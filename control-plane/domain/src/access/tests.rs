//! Tokens: who is let in, who is refused and how, and the lock-out the service prevents.

use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;

use super::{
    hash_secret, ports::TokenStore, Access, AccessError, ApiToken, Denied, Principal, Role,
    FIRST_ADMIN,
};
use crate::{
    audit::{AuditKind, AuditLog, AuditParts, CheckpointPolicy},
    clock::ManualClock,
    store::StoreError,
    testing::{Key, MemoryAudit},
};

#[derive(Default)]
struct MemoryTokens(Mutex<Vec<ApiToken>>);

impl TokenStore for MemoryTokens {
    fn put_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let mut all = self.0.lock().expect("lock");
        all.retain(|t| t.name != token.name);
        all.push(token.clone());
        Ok(())
    }
    fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .iter()
            .find(|t| t.hash == hash)
            .cloned())
    }
    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        Ok(self.0.lock().expect("lock").clone())
    }
    fn delete_token(&self, name: &str) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        let before = all.len();
        all.retain(|t| t.name != name);
        Ok(all.len() < before)
    }
}

const ADMIN_SECRET: &str = "vigil_0123456789abcdef0123456789abcdef0123456789abcdef";

fn access() -> (Access, Arc<MemoryTokens>, Arc<MemoryAudit>) {
    let tokens = Arc::new(MemoryTokens::default());
    let records = Arc::new(MemoryAudit::default());
    let clock = Arc::new(ManualClock::at(1_000));
    let audit = AuditLog::open(AuditParts {
        store: records.clone(),
        signer: Arc::new(Key(SigningKey::from_bytes(&[7; 32]))),
        clock: clock.clone(),
        policy: CheckpointPolicy::default(),
    })
    .expect("audit");
    let access = Access::new(tokens.clone(), Arc::new(audit), clock);
    access.install_admin(ADMIN_SECRET).expect("admin");
    (access, tokens, records)
}

fn admin(access: &Access) -> Principal {
    access
        .authorize(Some(ADMIN_SECRET), Role::Admin)
        .expect("the admin token is an admin")
}

#[test]
fn roles_are_ordered_and_each_permits_the_ones_below() {
    assert!(Role::Admin.permits(Role::Approver) && Role::Admin.permits(Role::Viewer));
    assert!(Role::Approver.permits(Role::Viewer) && !Role::Approver.permits(Role::Admin));
    assert!(!Role::Viewer.permits(Role::Approver));
    assert_eq!("approver".parse::<Role>(), Ok(Role::Approver));
    let refused = "root".parse::<Role>().expect_err("no such role");
    assert!(refused.contains("viewer, approver or admin"), "{refused}");
}

#[test]
fn a_missing_or_unknown_token_is_unauthenticated_and_a_small_role_forbidden() {
    let (access, _, _) = access();
    let who = admin(&access);
    access
        .issue(&who, "ro", Role::Viewer, "vigil_viewer-secret")
        .expect("issue");
    let refused = |secret: Option<&str>, need| match access.authorize(secret, need) {
        Err(AccessError::Denied(d)) => d,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(matches!(refused(None, Role::Viewer), Denied::Missing));
    assert!(matches!(refused(Some("  "), Role::Viewer), Denied::Missing));
    assert!(matches!(
        refused(Some("vigil_guess"), Role::Viewer),
        Denied::Unknown
    ));
    let forbidden = refused(Some("vigil_viewer-secret"), Role::Approver);
    assert!(!forbidden.unauthenticated());
    assert_eq!(
        forbidden.to_string(),
        "token `ro` is a viewer; this needs the approver role or above"
    );
    let viewer = access
        .authorize(Some("vigil_viewer-secret"), Role::Viewer)
        .expect("a viewer reads");
    assert_eq!(viewer.name, "ro");
}

#[test]
fn only_hashes_are_kept_and_the_audit_log_names_tokens_never_secrets() {
    let (access, tokens, records) = access();
    access
        .issue(&admin(&access), "ci", Role::Approver, "vigil_ci-secret")
        .expect("issue");
    let stored = tokens.tokens().expect("tokens");
    assert!(stored.iter().all(|t| !t.hash.contains("vigil_")));
    assert!(stored
        .iter()
        .any(|t| t.hash == hash_secret("vigil_ci-secret")));
    let log = records.records.lock().expect("lock");
    assert_eq!(log.len(), 2, "the first admin and `ci`");
    assert!(log.iter().all(|r| r.kind == AuditKind::Access));
    let text = serde_json::to_string(&*log).expect("json");
    assert!(!text.contains("vigil_") && !text.contains(&hash_secret("vigil_ci-secret")));
    assert!(text.contains("issued the approver token `ci`"));
}

#[test]
fn names_are_unique_and_checked_and_the_last_admin_cannot_be_revoked() {
    let (access, _, _) = access();
    let who = admin(&access);
    assert!(matches!(
        access.issue(&who, "has space", Role::Viewer, "vigil_x"),
        Err(AccessError::BadName(_))
    ));
    access.issue(&who, "a", Role::Viewer, "vigil_a").expect("a");
    assert!(matches!(
        access.issue(&who, "a", Role::Admin, "vigil_b"),
        Err(AccessError::Exists(_))
    ));
    assert!(matches!(
        access.revoke(&who, FIRST_ADMIN),
        Err(AccessError::LastAdmin(_))
    ));
    access
        .issue(&who, "ops", Role::Admin, "vigil_ops")
        .expect("ops");
    access
        .revoke(&who, FIRST_ADMIN)
        .expect("another admin exists");
    assert!(matches!(
        access.authorize(Some(ADMIN_SECRET), Role::Viewer),
        Err(AccessError::Denied(Denied::Unknown))
    ));
    access.revoke(&who, "a").expect("revoke a");
    assert!(matches!(
        access.revoke(&who, "a"),
        Err(AccessError::NoSuchToken(_))
    ));
}

#[test]
fn the_admin_file_installs_once_rotates_and_refuses_a_weak_secret() {
    let (access, tokens, _) = access();
    assert!(
        !access.install_admin(ADMIN_SECRET).expect("again"),
        "unchanged"
    );
    let rotated = "vigil_ffffffffffffffffffffffffffffffffffffffffffffffffff";
    assert!(access.install_admin(rotated).expect("rotate"));
    assert_eq!(tokens.tokens().expect("tokens").len(), 1);
    assert!(access.authorize(Some(ADMIN_SECRET), Role::Viewer).is_err());
    assert!(access.authorize(Some(rotated), Role::Admin).is_ok());
    assert!(matches!(
        access.install_admin("short"),
        Err(AccessError::WeakSecret(5))
    ));
}
