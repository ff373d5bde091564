//! HTTP/1.x: a request line starts with a method and a space; a reply with `HTTP/1.x NNN`.

use super::{Outcome, Peek, Reply};

/// A word of four ASCII bytes, as [`Peek::word`] reads them.
const fn w(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// RFC 9110 §9 methods (and PATCH, RFC 5789) followed by their space, as (first word, the
/// rest of the token and its space in the second word, mask of that rest, where the request
/// target starts).
const METHODS: [(u32, u32, u32, usize); 9] = [
    (w(b"GET "), 0, 0, 4),
    (w(b"PUT "), 0, 0, 4),
    (w(b"POST"), w(b" \0\0\0"), 0xff, 5),
    (w(b"HEAD"), w(b" \0\0\0"), 0xff, 5),
    (w(b"PATC"), w(b"H \0\0"), 0xffff, 6),
    (w(b"TRAC"), w(b"E \0\0"), 0xffff, 6),
    (w(b"DELE"), w(b"TE \0"), 0xff_ffff, 7),
    (w(b"OPTI"), w(b"ONS "), 0xffff_ffff, 8),
    (w(b"CONN"), w(b"ECT "), 0xffff_ffff, 8),
];

/// Whether `p` starts a request line: a method, a space, then a request target (`/path`,
/// `*`, or an absolute or authority form, which starts with a letter or digit).
#[inline(always)]
pub fn is_request(p: &Peek) -> bool {
    let (first, second) = (p.word(0), p.word(4));
    let mut target = 0;
    let mut i = 0;
    while i < METHODS.len() {
        let (w0, rest, mask, at) = METHODS[i];
        if first == w0 && second & mask == rest {
            target = at;
        }
        i += 1;
    }
    target != 0
        && match p.at(target) {
            Some(c) => c == b'/' || c == b'*' || c.is_ascii_alphanumeric(),
            None => false,
        }
}

/// `HTTP/1.0 503 …` or `HTTP/1.1 200 …`: the status code and what it means for the
/// request. The exact code is kept for 4xx and 5xx.
#[inline(always)]
pub fn reply(p: &Peek) -> Option<Reply> {
    if p.word(0) != w(b"HTTP") || p.word(4) & 0xff_ffff != w(b"/1.\0") {
        return None;
    }
    if !matches!(p.at(7), Some(b'0' | b'1')) || !p.is(8, b' ') {
        return None;
    }
    let digit = |i: usize| match p.at(i) {
        Some(c @ b'0'..=b'9') => Some(u64::from(c - b'0')),
        _ => None,
    };
    let status = digit(9)? * 100 + digit(10)? * 10 + digit(11)?;
    // The reason phrase may be empty: a space or the end of the line follows.
    if !matches!(p.at(12), Some(b' ' | b'\r') | None) {
        return None;
    }
    let outcome = match status {
        101 => Outcome::Upgraded,
        100..=199 => Outcome::Interim,
        200..=399 => Outcome::Ok,
        400..=499 => Outcome::ClientError,
        500..=599 => Outcome::Error,
        _ => return None,
    };
    let code = if status >= 400 { status } else { 0 };
    Some(Reply { outcome, code })
}
