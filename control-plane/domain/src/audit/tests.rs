//! The chain and its checkpoints against each way a log can be tampered with.

use std::sync::Arc;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde_json::json;

use super::{
    ports::AuditStore, verify, AuditEntry, AuditKind, AuditLog, AuditParts, AuditRecord,
    Checkpoint, CheckpointPolicy, Tamper,
};
use crate::{
    clock::ManualClock,
    incident::IncidentId,
    testing::{Key, MemoryAudit},
};

const SEC: i64 = 1_000_000_000;

struct World {
    store: Arc<MemoryAudit>,
    clock: Arc<ManualClock>,
    log: AuditLog,
    key: VerifyingKey,
}

fn world(every_records: u64) -> World {
    let store = Arc::new(MemoryAudit::default());
    let clock = Arc::new(ManualClock::at(1_000 * SEC));
    let signing = SigningKey::from_bytes(&[7; 32]);
    let key = signing.verifying_key();
    let log = AuditLog::open(AuditParts {
        store: store.clone(),
        signer: Arc::new(Key(signing)),
        clock: clock.clone(),
        policy: CheckpointPolicy {
            every_records,
            every_ns: 60 * SEC,
        },
    })
    .expect("open");
    World {
        store,
        clock,
        log,
        key,
    }
}

fn entry(i: u64) -> AuditEntry {
    AuditEntry {
        kind: AuditKind::Diagnosis,
        incident: Some(IncidentId(i as i64)),
        actor: "vigil".into(),
        summary: format!("incident {i} diagnosed"),
        body: json!({"class": "oom_kill", "confidence": 0.9, "n": i}),
    }
}

fn filled(n: u64, every: u64) -> World {
    let w = world(every);
    for i in 1..=n {
        w.clock.advance(SEC);
        w.log.append(entry(i)).expect("append");
    }
    w
}

fn check(w: &World, records: &[AuditRecord]) -> super::Verification {
    verify(records, &w.store.checkpoints().expect("cps"), &w.key)
}

fn stored(w: &World) -> Vec<AuditRecord> {
    w.store.records(0, usize::MAX).expect("records")
}

#[test]
fn an_untouched_log_verifies_and_is_signed_every_n_records() {
    let w = filled(25, 10);
    let cps = w.store.checkpoints().expect("cps");
    assert_eq!(cps.iter().map(|c| c.size).collect::<Vec<_>>(), [10, 20]);
    let v = check(&w, &stored(&w));
    assert!(v.intact(), "{v:?}");
    assert_eq!((v.records, v.signed_through), (25, 20));
}

#[test]
fn an_edited_record_is_named() {
    let w = filled(25, 10);
    let mut records = stored(&w);
    records[6].body["class"] = json!("crash_loop");
    let v = check(&w, &records);
    assert_eq!(v.problems, [Tamper::Edited { seq: 7 }]);
}

#[test]
fn two_records_swapped_are_found() {
    let w = filled(25, 10);
    let mut records = stored(&w);
    records.swap(3, 4);
    let v = check(&w, &records);
    assert!(
        v.problems.contains(&Tamper::OutOfSequence {
            expected: 4,
            found: 5
        }),
        "{v:?}"
    );
    assert!(v.problems.contains(&Tamper::Unlinked { seq: 5 }), "{v:?}");
    // Renumbering them to hide the swap changes what was hashed.
    let mut renumbered = stored(&w);
    renumbered.swap(3, 4);
    renumbered[3].seq = 4;
    renumbered[4].seq = 5;
    let v = check(&w, &renumbered);
    assert!(v.problems.contains(&Tamper::Edited { seq: 4 }), "{v:?}");
    assert!(v.problems.contains(&Tamper::Unlinked { seq: 4 }), "{v:?}");
}

#[test]
fn a_tail_cut_after_a_checkpoint_is_found() {
    let w = filled(25, 10);
    let records = stored(&w);
    let v = check(&w, &records[..18]);
    assert_eq!(
        v.problems,
        [Tamper::Truncated {
            checkpoint_size: 20,
            log_size: 18
        }]
    );
    // Cutting back to exactly a checkpoint leaves nothing signed missing: that is as designed,
    // and why checkpoints are also signed on time and on shutdown.
    assert!(check(&w, &records[..20]).intact());
}

#[test]
fn a_rewritten_chain_does_not_match_its_checkpoints() {
    let w = filled(25, 10);
    let mut records = stored(&w);
    records[2].body["class"] = json!("crash_loop");
    // The forger rehashes and relinks everything after the edit.
    let mut prev = records[1].hash.clone();
    for r in records.iter_mut().skip(2) {
        r.prev_hash = prev.clone();
        r.hash = r.content_hash();
        prev = r.hash.clone();
    }
    let v = check(&w, &records);
    assert_eq!(
        v.problems,
        [
            Tamper::CheckpointMismatch { size: 10 },
            Tamper::CheckpointMismatch { size: 20 }
        ]
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let w = filled(10, 10);
    let forger = SigningKey::from_bytes(&[9; 32]);
    let mut cps = w.store.checkpoints().expect("cps");
    let c = &mut cps[0];
    c.public_key = super::hex::encode(&forger.verifying_key().to_bytes());
    let message = Checkpoint::message(c.size, &c.head_hash, c.at_unix_ns, &c.public_key);
    c.signature = super::hex::encode(&forger.sign(&message).to_bytes());
    let v = verify(&stored(&w), &cps, &w.key);
    assert_eq!(v.problems, [Tamper::BadSignature { size: 10 }]);
}

#[test]
fn an_idle_tail_is_signed_once_the_time_is_up_and_a_reopened_log_continues_the_chain() {
    let w = filled(3, 100);
    assert!(
        w.log.checkpoint_if_due().expect("tick").is_none(),
        "not yet"
    );
    w.clock.advance(61 * SEC);
    let c = w.log.checkpoint_if_due().expect("tick").expect("due");
    assert_eq!(c.size, 3);
    assert!(
        w.log.checkpoint_if_due().expect("tick").is_none(),
        "nothing new"
    );
    let reopened = AuditLog::open(AuditParts {
        store: w.store.clone(),
        signer: Arc::new(Key(SigningKey::from_bytes(&[7; 32]))),
        clock: w.clock.clone(),
        policy: CheckpointPolicy::default(),
    })
    .expect("reopen");
    let r = reopened.append(entry(4)).expect("append");
    assert_eq!(
        (r.seq, r.prev_hash.as_str()),
        (4, stored(&w)[2].hash.as_str())
    );
    assert!(check(&w, &stored(&w)).intact());
}
