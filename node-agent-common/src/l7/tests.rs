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
        let _ = (http2::frames(&p, true, 0), http2::frames(&p, false, 0));
    }
    assert!(
        detected < 5,
        "random bytes detected as a protocol {detected} times"
    );
    // Longer than the peek: only the first bytes count.
    let long = [b'a'; 200];
    assert_eq!(Peek::of(&long).len, PEEK);
}

/// An HTTP/2 frame: 24-bit length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> std::vec::Vec<u8> {
    let len = payload.len() as u32;
    let mut f = std::vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Captured from curl --http2-prior-knowledge against nginx: the preface, SETTINGS and
/// WINDOW_UPDATE in one write, then HEADERS; nginx's replies.
#[test]
fn http2_streams_statuses_and_resets() {
    let mut opening = http2::PREFACE_LEN;
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    assert_eq!(bytes.len(), opening);
    bytes.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100, 0, 4, 0, 0x10, 0, 0]));
    bytes.extend(frame(0x8, 0, 0, &[0, 0x3e, 0x7f, 0x01]));
    let p = Peek::of(&bytes);
    assert_eq!(detect(&p), PROTO_HTTP2);
    assert_eq!(http2::frames(&p, true, opening), http2::Frames::default());
    // The preface, then a HEADERS frame, in one write: one stream.
    bytes.truncate(opening);
    bytes.extend(frame(0x1, 0x5, 1, &[0x82, 0x86, 0x84, 0x41, 0x8a]));
    assert_eq!(http2::frames(&Peek::of(&bytes), true, opening).requests, 1);
    opening = 0;
    // A SETTINGS ack before the HEADERS: the walk reaches it.
    let mut headers = frame(0x4, 0x1, 0, &[]);
    headers.extend(frame(0x1, 0x5, 3, &[0x82, 0x86, 0x84]));
    assert_eq!(
        http2::frames(&Peek::of(&headers), true, opening).requests,
        1
    );
    // Responses: indexed :status 200, a literal 503 (as nginx writes it), a Huffman one.
    let ok = frame(0x1, 0x4, 1, &[0x88, 0x76, 0x84]);
    let f = http2::frames(&Peek::of(&ok), false, 0);
    assert_eq!((f.responses, f.errors, f.code), (1, 0, 0));
    let unavailable = frame(0x1, 0x4, 3, &[0x48, 0x03, b'5', b'0', b'3', 0x76]);
    let f = http2::frames(&Peek::of(&unavailable), false, 0);
    assert_eq!((f.responses, f.errors, f.code), (1, 1, 503));
    let not_found = frame(0x1, 0x4, 5, &[0x8d]);
    let f = http2::frames(&Peek::of(&not_found), false, 0);
    assert_eq!((f.client_errors, f.code), (1, 404));
    let huffman = frame(0x1, 0x4, 7, &[0x48, 0x82, 0x10, 0x01]);
    assert_eq!(http2::frames(&Peek::of(&huffman), false, 0).responses, 1);
    // A gRPC trailer block (grpc-status first) is not another response.
    let mut trailers = frame(0x0, 0, 1, &[0, 0, 0, 0, 2, 8, 1]);
    trailers.extend(frame(0x1, 0x5, 1, &[0x40, 0x0b, b'g', b'r', b'p', b'c']));
    assert_eq!(http2::frames(&Peek::of(&trailers), false, 0).responses, 0);
    // RST_STREAM(REFUSED_STREAM) and GOAWAY(ENHANCE_YOUR_CALM) fail; NO_ERROR does not.
    let refused = frame(0x3, 0, 9, &7u32.to_be_bytes());
    let f = http2::frames(&Peek::of(&refused), false, 0);
    assert_eq!((f.errors, f.code), (1, http2::CODE_RST_STREAM | 7));
    let mut goaway = std::vec![0, 0, 0, 9];
    goaway.extend_from_slice(&0xbu32.to_be_bytes());
    let f = http2::frames(&Peek::of(&frame(0x7, 0, 0, &goaway)), false, 0);
    assert_eq!((f.errors, f.code), (1, http2::CODE_GOAWAY | 0xb));
    assert_eq!(http2::error_name(0xb), "ENHANCE_YOUR_CALM");
    let clean = frame(0x3, 0, 9, &0u32.to_be_bytes());
    assert_eq!(http2::frames(&Peek::of(&clean), true, 0).errors, 0);
    // A frame cut off by the peek is not read past it; a truncated preface is no preface.
    assert_eq!(http2::frames(&Peek::of(&refused[..10]), false, 0).errors, 0);
    assert!(!http2::is_preface(&Peek::of(b"PRI * HTTP/2.0\r\n")));
    // A client's RST_STREAM(CANCEL) is not the server failing.
    let cancel = frame(0x3, 0, 9, &8u32.to_be_bytes());
    assert_eq!(http2::frames(&Peek::of(&cancel), true, 0).errors, 0);
    // Bytes in the middle of a large DATA frame that happen to hold a frame type: not
    // frames (a RST_STREAM is exactly 4 bytes on a stream, a HEADERS on one).
    let mut data = std::vec![0x12, 0x34, 0x56, 0x03, 0x00, 0, 0, 0, 1];
    data.extend_from_slice(&[0xff; 20]);
    assert_eq!(
        http2::frames(&Peek::of(&data), false, 0),
        http2::Frames::default()
    );
    let on_stream_0 = frame(0x1, 0x4, 0, &[0x8e, 0, 0, 0]);
    assert_eq!(
        http2::frames(&Peek::of(&on_stream_0), false, 0).responses,
        0
    );
    let even = frame(0x1, 0x5, 2, &[0x82, 0x86, 0x84, 0x41]);
    assert_eq!(http2::frames(&Peek::of(&even), true, 0).requests, 0);
}
