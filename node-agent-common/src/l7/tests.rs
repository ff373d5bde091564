//! The parsers on byte sequences captured from real clients and servers (curl and nginx,
//! redis-cli and redis-server 7, psql and PostgreSQL 15), cut where segments cut them, and on
//! garbage.

use super::*;

fn reply_of(proto: u8, bytes: &[u8]) -> Option<Reply> {
    reply(proto, &Peek::of(bytes))
}

fn word(code: u64, f: fn(u64, &mut [u8; 13]) -> usize) -> std::string::String {
    let mut out = [0u8; 13];
    let n = f(code, &mut out);
    std::string::String::from_utf8_lossy(&out[..n]).into_owned()
}

#[test]
fn http_requests_and_replies() {
    let get =
        b"GET /health HTTP/1.1\r\nHost: app\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    assert_eq!(detect(&Peek::of(get)), PROTO_HTTP1);
    assert!(is_request(
        PROTO_HTTP1,
        &Peek::of(b"POST /v1/orders HTTP/1.1\r\n")
    ));
    assert!(is_request(
        PROTO_HTTP1,
        &Peek::of(b"OPTIONS * HTTP/1.1\r\n")
    ));
    assert!(is_request(
        PROTO_HTTP1,
        &Peek::of(b"CONNECT example.com:443 HTTP/1.1\r\n")
    ));
    // A body segment of a POST is not a request; nor is a method without its space.
    assert!(!is_request(PROTO_HTTP1, &Peek::of(b"{\"GET\": 1}")));
    assert!(!is_request(PROTO_HTTP1, &Peek::of(b"GETX / HTTP/1.1")));
    // Split inside the method: not recognised (counted by the caller, never mis-timed).
    assert!(!is_request(PROTO_HTTP1, &Peek::of(b"GE")));

    let ok = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(reply_of(PROTO_HTTP1, ok), Some(Reply::OK));
    let unavailable = b"HTTP/1.1 503 Service Unavailable\r\n";
    assert_eq!(
        reply_of(PROTO_HTTP1, unavailable),
        Some(Reply {
            outcome: Outcome::Error,
            code: 503
        })
    );
    assert_eq!(
        reply_of(PROTO_HTTP1, b"HTTP/1.0 404 Not Found\r\n"),
        Some(Reply {
            outcome: Outcome::ClientError,
            code: 404
        })
    );
    // An empty reason phrase, 1xx and 101.
    assert_eq!(
        reply_of(PROTO_HTTP1, b"HTTP/1.1 204\r\n\r\n").map(|r| r.outcome),
        Some(Outcome::Ok)
    );
    assert_eq!(
        reply_of(PROTO_HTTP1, b"HTTP/1.1 100 Continue\r\n\r\n").map(|r| r.outcome),
        Some(Outcome::Interim)
    );
    assert_eq!(
        reply_of(PROTO_HTTP1, b"HTTP/1.1 101 Switching Protocols\r\n").map(|r| r.outcome),
        Some(Outcome::Upgraded)
    );
    // Cut inside the status code, a body, HTTP/2 and garbage.
    for bad in [
        &b"HTTP/1.1 20"[..],
        b"HTTP/1.1 2000 OK",
        b"HTTP/2 200\r\n",
        b"<html><body>",
        b"\x16\x03\x01\x02\x00\x01",
        b"",
    ] {
        assert_eq!(reply_of(PROTO_HTTP1, bad), None, "{bad:?}");
    }
}

#[test]
fn redis_commands_and_error_prefixes() {
    let auth = b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n";
    assert_eq!(detect(&Peek::of(auth)), PROTO_REDIS);
    assert!(is_request(
        PROTO_REDIS,
        &Peek::of(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n")
    ));
    assert!(is_request(
        PROTO_REDIS,
        &Peek::of(b"*12345\r\n$4\r\nMSET\r\n")
    ));
    assert!(!is_request(PROTO_REDIS, &Peek::of(b"*\r\n$4\r\n")));
    assert!(!is_request(PROTO_REDIS, &Peek::of(b"PING\r\n")));
    assert!(
        !is_request(PROTO_REDIS, &Peek::of(b"*2\r\n")),
        "split after the count"
    );

    for ok in [
        &b"+OK\r\n"[..],
        b":42\r\n",
        b"$5\r\nhello\r\n",
        b"*0\r\n",
        b"_\r\n",
        b"%1\r\n",
    ] {
        assert_eq!(reply_of(PROTO_REDIS, ok), Some(Reply::OK), "{ok:?}");
    }
    for (bytes, prefix) in [
        (
            &b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"[..],
            "WRONGPASS",
        ),
        (b"-NOAUTH Authentication required.\r\n", "NOAUTH"),
        (
            b"-ERR unknown command 'FOO', with args beginning with: \r\n",
            "ERR",
        ),
        (
            b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
            "OOM",
        ),
        (
            b"-READONLY You can't write against a read only replica.\r\n",
            "READONLY",
        ),
        (
            b"-LOADING Redis is loading the dataset in memory\r\n",
            "LOADING",
        ),
        (b"-CLUSTERDOWN The cluster is down\r\n", "CLUSTERDOWN"),
        (
            b"-MISCONF Redis is configured to save RDB snapshots\r\n",
            "MISCONF",
        ),
    ] {
        let r = reply_of(PROTO_REDIS, bytes).expect("an error reply");
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(word(r.code, redis::prefix_of), prefix);
    }
    // An error split right after its dash still fails the request, with no prefix.
    assert_eq!(
        reply_of(PROTO_REDIS, b"-"),
        Some(Reply {
            outcome: Outcome::Error,
            code: 0
        })
    );
    assert_eq!(reply_of(PROTO_REDIS, b"hello"), None);
}

/// psql's startup message (user postgres, database lab), as sent.
const STARTUP: &[u8] =
    b"\x00\x00\x00\x26\x00\x03\x00\x00user\x00postgres\x00database\x00lab\x00\x00";

#[test]
fn postgres_messages_and_sqlstates() {
    assert_eq!(detect(&Peek::of(STARTUP)), PROTO_POSTGRES);
    let ssl = b"\x00\x00\x00\x08\x04\xd2\x16\x2f";
    assert_eq!(detect(&Peek::of(ssl)), PROTO_POSTGRES);
    let query = b"Q\x00\x00\x00\x0eSELECT 1;\x00";
    assert_eq!(detect(&Peek::of(query)), PROTO_POSTGRES);
    // An extended-protocol batch, a password message; not Terminate.
    assert!(is_request(
        PROTO_POSTGRES,
        &Peek::of(b"P\x00\x00\x00\x0e\x00SELECT 1\x00\x00\x00B\x00")
    ));
    assert!(is_request(
        PROTO_POSTGRES,
        &Peek::of(b"p\x00\x00\x00\x0bsecret\x00")
    ));
    assert!(!is_request(PROTO_POSTGRES, &Peek::of(b"X\x00\x00\x00\x04")));
    assert!(
        !is_request(PROTO_POSTGRES, &Peek::of(b"Q\x00\x00\x00\x02")),
        "length < 4"
    );

    // Authentication request, then a query's rows and ReadyForQuery.
    assert_eq!(
        reply_of(
            PROTO_POSTGRES,
            b"R\x00\x00\x00\x0c\x00\x00\x00\x05\x01\x02\x03\x04"
        ),
        Some(Reply::OK)
    );
    let rows = b"T\x00\x00\x00\x21\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011C\x00\x00\x00\x0dSELECT 1\x00Z\x00\x00\x00\x05I";
    assert_eq!(reply_of(PROTO_POSTGRES, rows), Some(Reply::OK));
    // A wrong password (FATAL 28P01), and a lock timeout after ParseComplete/BindComplete.
    let auth = b"E\x00\x00\x00\x65SFATAL\x00VFATAL\x00C28P01\x00Mpassword authentication failed for user \"lab\"\x00";
    let r = reply_of(PROTO_POSTGRES, auth).expect("an error");
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(word(r.code, postgres::sqlstate_of), "28P01");
    let locked = b"1\x00\x00\x00\x042\x00\x00\x00\x04E\x00\x00\x00\x50SERROR\x00VERROR\x00C55P03\x00Mcanceling";
    let r = reply_of(PROTO_POSTGRES, locked).expect("an error");
    // After other messages the request fails, its SQLSTATE unread (see `postgres::reply`).
    assert_eq!((r.outcome, r.code), (Outcome::Error, 0));
    let r = reply_of(PROTO_POSTGRES, &locked[10..]).expect("an error");
    assert_eq!(word(r.code, postgres::sqlstate_of), "55P03");
    // A localized severity (German) before the code.
    let de = b"E\x00\x00\x00\x30SFEHLER\x00VERROR\x00C42P01\x00MRelation";
    let r = reply_of(PROTO_POSTGRES, de).expect("an error");
    assert_eq!(word(r.code, postgres::sqlstate_of), "42P01");
    // An ErrorResponse whose code is past the peeked bytes still fails the request.
    let mut long = std::vec::Vec::from(&b"E\x00\x00\x01\x00S"[..]);
    long.extend(core::iter::repeat_n(b'x', 80));
    let r = reply_of(PROTO_POSTGRES, &long).expect("an error");
    assert_eq!((r.outcome, r.code), (Outcome::Error, 0));
    // The answers to an SSLRequest.
    assert_eq!(reply_of(PROTO_POSTGRES, b"N"), Some(Reply::OK));
    assert_eq!(
        reply_of(PROTO_POSTGRES, b"S").map(|r| r.outcome),
        Some(Outcome::Upgraded)
    );
    assert_eq!(reply_of(PROTO_POSTGRES, b"\x17\x03\x03\x00\x20"), None);
}

#[test]
fn garbage_is_never_a_protocol_and_never_panics() {
    // Every prefix of every sample and a sweep of pseudo-random bytes: the parsers return,
    // and random bytes are (almost) never taken for a protocol.
    let samples: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n",
        b"*2\r\n$4\r\nAUTH\r\n",
        STARTUP,
        b"E\x00\x00\x00\x10SERROR\x00C2",
    ];
    for s in samples {
        for n in 0..=s.len() {
            let p = Peek::of(&s[..n]);
            for proto in [PROTO_HTTP1, PROTO_REDIS, PROTO_POSTGRES, PROTO_OPAQUE] {
                let _ = (is_request(proto, &p), reply(proto, &p));
            }
        }
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut detected = 0;
    for _ in 0..20_000 {
        let mut bytes = [0u8; PEEK];
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let p = Peek::of(&bytes);
        if detect(&p) != PROTO_UNKNOWN {
            detected += 1;
        }
        for proto in [PROTO_HTTP1, PROTO_REDIS, PROTO_POSTGRES] {
            let _ = reply(proto, &p);
        }
    }
    assert!(
        detected < 5,
        "random bytes detected as a protocol {detected} times"
    );
    // Longer than the peek: only the first bytes count.
    let long = [b'a'; 200];
    assert_eq!(Peek::of(&long).len, PEEK);
}
