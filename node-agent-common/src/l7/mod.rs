//! Request-level protocols, recognised from the first bytes of a TCP segment's payload.
//!
//! The same code runs in the kernel (the cgroup_skb programs copy [`PEEK`] bytes of each data
//! segment and call these functions) and in user space (unit tests on captured bytes). So it
//! never panics and never indexes out of a fixed array: every read goes through
//! [`Peek::at`], every loop has a constant bound, and a message the parsers do not recognise
//! is `None` (counted as unparsed), never an error.
//!
//! Each connection is parsed as an alternation: a request from the client, then the first
//! segment of the server's reply. Segments in between (a request's body, the rest of a
//! large reply) are continuations and are not parsed at all, so a body that happens to look
//! like a message is never counted.

pub mod http;
pub mod http2;
pub mod maps;
pub mod postgres;
pub mod redis;

pub use maps::{
    L7Conn, L7EdgeKey, L7ErrorKey, L7Notice, L7Stats, TlsCall, TlsConn, TlsKey, TlsSocket,
    L7_MAX_MISSES, L7_STASH, NOTICE_ERROR_SAMPLE, NOTICE_TLS_SOCKET, TRANSPORT_TCP, TRANSPORT_TLS,
    TRANSPORT_TLS_SOCKET,
};

/// Bytes of a segment's payload the parsers see.
pub const PEEK: usize = 64;

/// The protocol is not known yet.
pub const PROTO_UNKNOWN: u8 = 0;
pub const PROTO_HTTP1: u8 = 1;
pub const PROTO_REDIS: u8 = 2;
pub const PROTO_POSTGRES: u8 = 3;
/// HTTP/2 and gRPC (see [`http2`]): counted per frame, never timed.
pub const PROTO_HTTP2: u8 = 4;
/// The connection carries something the parsers do not follow (TLS after a PostgreSQL
/// `SSLRequest`, an HTTP `101 Switching Protocols`, or no request-first protocol at all):
/// it is not parsed again.
pub const PROTO_OPAQUE: u8 = 0xff;

/// The first bytes of a segment's payload: `len` of `bytes` are valid, of `total` in the
/// segment.
#[derive(Clone, Copy, Debug)]
pub struct Peek {
    pub bytes: [u8; PEEK],
    pub len: usize,
    pub total: usize,
}

impl Peek {
    pub const EMPTY: Self = Self {
        bytes: [0; PEEK],
        len: 0,
        total: 0,
    };

    /// The first bytes of `payload` (user space and tests).
    pub fn of(payload: &[u8]) -> Self {
        let mut p = Self::EMPTY;
        let n = if payload.len() < PEEK {
            payload.len()
        } else {
            PEEK
        };
        let mut i = 0;
        while i < n {
            p.bytes[i] = payload[i];
            i += 1;
        }
        p.len = n;
        p.total = payload.len();
        p
    }

    #[inline(always)]
    pub fn at(&self, i: usize) -> Option<u8> {
        if i < self.len && i < PEEK {
            Some(self.bytes[i])
        } else {
            None
        }
    }

    /// The four bytes at `at` as a little-endian word (0 for bytes past `len`): prefixes
    /// compared a word at a time, not byte by byte in a loop, keep the verifier's paths few.
    #[inline(always)]
    pub fn word(&self, at: usize) -> u32 {
        let b = |i: usize| u32::from(self.at(at + i).unwrap_or(0));
        b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24
    }

    #[inline(always)]
    pub fn is(&self, i: usize, b: u8) -> bool {
        self.at(i) == Some(b)
    }

    /// The big-endian u32 at `at`.
    #[inline(always)]
    pub fn be32(&self, at: usize) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.at(at)?,
            self.at(at + 1)?,
            self.at(at + 2)?,
            self.at(at + 3)?,
        ]))
    }
}

/// How a reply ended its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The request was refused as the client's fault (HTTP 4xx).
    ClientError,
    /// The request failed (HTTP 5xx, a Redis error reply, a PostgreSQL `ErrorResponse`).
    Error,
    /// Not the final reply (HTTP 1xx): the request is still outstanding.
    Interim,
    /// The reply is final and the connection leaves the protocol (HTTP 101, PostgreSQL
    /// `S` to an `SSLRequest`): nothing after it is parsed.
    Upgraded,
}

/// A reply the parsers recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub outcome: Outcome,
    /// What failed, per protocol (see [`ErrorCode`]); 0 when the reply did not fail or did
    /// not say.
    pub code: u64,
}

impl Reply {
    pub const OK: Self = Self {
        outcome: Outcome::Ok,
        code: 0,
    };
}

/// The protocol of a connection whose client sent `p`, or [`PROTO_UNKNOWN`].
#[inline(always)]
pub fn detect(p: &Peek) -> u8 {
    if http2::is_preface(p) {
        PROTO_HTTP2
    } else if http::is_request(p) {
        PROTO_HTTP1
    } else if redis::is_command(p) {
        PROTO_REDIS
    } else if postgres::is_first_message(p) {
        PROTO_POSTGRES
    } else {
        PROTO_UNKNOWN
    }
}

/// Whether `p`, sent by the client of a `proto` connection, starts a request.
#[inline(always)]
pub fn is_request(proto: u8, p: &Peek) -> bool {
    match proto {
        PROTO_HTTP1 => http::is_request(p),
        PROTO_REDIS => redis::is_command(p),
        PROTO_POSTGRES => postgres::is_request(p),
        _ => false,
    }
}

/// The reply `p` starts, sent by the server of a `proto` connection; `None` when it is not
/// one the parser recognises.
#[inline(always)]
pub fn reply(proto: u8, p: &Peek) -> Option<Reply> {
    match proto {
        PROTO_HTTP1 => http::reply(p),
        PROTO_REDIS => redis::reply(p),
        PROTO_POSTGRES => postgres::reply(p),
        _ => None,
    }
}

/// Packs up to `max` (≤ 13) characters into one u64, starting at `at`; `digit` gives a
/// character's value in 1..radix, or 0 where the word ends (generic, not a function
/// pointer: BPF has no indirect calls): the codes of Redis error
/// prefixes and SQLSTATEs, general and without a table. [`unpack`] reverses it.
#[inline(always)]
pub fn pack(p: &Peek, at: usize, max: usize, radix: u64, digit: impl Fn(u8) -> u64) -> u64 {
    let mut acc = 0u64;
    let mut i = 0;
    while i < max && i < 13 {
        let d = match p.at(at + i) {
            Some(c) => digit(c),
            None => 0,
        };
        if d == 0 {
            break;
        }
        acc = acc * radix + d;
        i += 1;
    }
    acc
}

/// The string [`pack`] packed (user space): `symbol` maps a digit back to its character.
pub fn unpack(mut code: u64, radix: u64, symbol: fn(u64) -> u8, out: &mut [u8; 13]) -> usize {
    let mut n = 0;
    while code > 0 && n < out.len() {
        out[n] = symbol(code % radix);
        code /= radix;
        n += 1;
    }
    out[..n].reverse();
    n
}

#[cfg(test)]
mod tests;
