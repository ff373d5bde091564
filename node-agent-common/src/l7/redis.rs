//! Redis (RESP2 and RESP3): a command is an array of bulk strings (`*3\r\n$3\r\nSET…`); a
//! reply starts with its type byte, and an error reply (`-WRONGPASS invalid …`) with `-` and
//! an upper-case prefix that names the error class.

use super::{pack, Outcome, Peek, Reply};

/// Whether `p` starts a command: `*`, one to five digits, CRLF, then `$` (the first bulk
/// string: the command's name). Inline commands (`PING\r\n` typed into telnet) are not
/// counted: clients do not send them.
#[inline(always)]
pub fn is_command(p: &Peek) -> bool {
    if !p.is(0, b'*') {
        return false;
    }
    let mut i = 1;
    while i < 6 && matches!(p.at(i), Some(b'0'..=b'9')) {
        i += 1;
    }
    i > 1 && p.is(i, b'\r') && p.is(i + 1, b'\n') && p.is(i + 2, b'$')
}

/// An error prefix's letters as base-27 digits (A = 1 … Z = 26); anything else ends it.
#[inline(always)]
pub fn prefix_digit(c: u8) -> u64 {
    if c.is_ascii_uppercase() {
        u64::from(c - b'A' + 1)
    } else {
        0
    }
}

/// Longest error prefix kept (`CLUSTERDOWN`, `MASTERDOWN`, `NOREPLICAS` fit).
pub const PREFIX_MAX: usize = 13;

#[inline(always)]
pub fn reply(p: &Peek) -> Option<Reply> {
    match p.at(0)? {
        b'-' => Some(Reply {
            outcome: Outcome::Error,
            code: pack(p, 1, PREFIX_MAX, 27, prefix_digit),
        }),
        // RESP3 blob error: `!<len>\r\n<PREFIX> …`; its prefix is not read.
        b'!' => Some(Reply {
            outcome: Outcome::Error,
            code: 0,
        }),
        // Simple string, integer, bulk string, array, and RESP3's null, double, boolean,
        // big number, verbatim string, map, set, attribute and push.
        b'+' | b':' | b'$' | b'*' | b'_' | b',' | b'#' | b'(' | b'=' | b'%' | b'~' | b'|'
        | b'>' => Some(Reply::OK),
        _ => None,
    }
}

/// The prefix a code packs (user space).
pub fn prefix_of(code: u64, out: &mut [u8; 13]) -> usize {
    super::unpack(code, 27, |d| b'A' + d as u8 - 1, out)
}
