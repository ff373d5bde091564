//! The request-level parsers the kernel runs on every TCP segment (HTTP/1, HTTP/2, Redis,
//! PostgreSQL), compiled for the host, on arbitrary segments: they must never panic (in the
//! kernel a panic is a verifier rejection or worse), and what they report must be in the
//! bytes — an error code decodes to characters the segment carries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use node_agent_common::l7::{
    self, http2, postgres, redis, Outcome, Peek, PROTO_HTTP1, PROTO_HTTP2, PROTO_POSTGRES,
    PROTO_REDIS,
};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let p = Peek::of(data);
    let seen = &data[..data.len().min(l7::PEEK)];
    let detected = l7::detect(&p);
    assert!(matches!(
        detected,
        l7::PROTO_UNKNOWN
            | PROTO_HTTP1
            | PROTO_REDIS
            | PROTO_POSTGRES
            | PROTO_HTTP2
            | l7::PROTO_OPAQUE
    ));
    for proto in [PROTO_HTTP1, PROTO_REDIS, PROTO_POSTGRES] {
        let _ = l7::is_request(proto, &p);
        let Some(reply) = l7::reply(proto, &p) else {
            continue;
        };
        if reply.outcome == Outcome::Ok || reply.code == 0 {
            continue;
        }
        let mut out = [0u8; 13];
        match proto {
            PROTO_REDIS => {
                let n = redis::prefix_of(reply.code, &mut out);
                assert!(
                    contains(seen, &out[..n]),
                    "redis prefix {:?} not in {seen:?}",
                    &out[..n]
                );
            }
            PROTO_POSTGRES => {
                let n = postgres::sqlstate_of(reply.code, &mut out);
                assert!(
                    contains(seen, &out[..n]),
                    "SQLSTATE {:?} not in {seen:?}",
                    &out[..n]
                );
            }
            _ => {}
        }
    }
    let _ = http2::is_preface(&p);
    for at in [0, http2::PREFACE_LEN] {
        for from_client in [true, false] {
            let f = http2::frames(&p, from_client, at);
            // One frame that counts per message at most.
            assert!(
                f.requests + f.responses <= http2::MAX_FRAMES as u64,
                "{f:?}"
            );
            assert!(f.errors <= f.responses + 1, "{f:?}");
            let _ = http2::error_name(f.code as u32);
        }
    }
});
