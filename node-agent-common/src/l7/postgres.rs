//! PostgreSQL's frontend/backend protocol 3: a startup message (length, then protocol
//! 3.x, or an `SSLRequest`/`GSSENCRequest`/`CancelRequest` code), then typed messages (a type
//! byte and a big-endian length that counts itself). An `ErrorResponse` (`E`) carries fields,
//! among them `C`, the SQLSTATE whose first two characters are its class (28 invalid
//! authorization, 53 insufficient resources, 57 operator intervention, 40 rollback, …).

use super::{pack, Outcome, Peek, Reply};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol 3.x in the startup message's version field.
const PROTOCOL_3: u32 = 3 << 16;
/// A startup packet longer than this is refused by the server (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP: u32 = 10_000;

/// A startup message: the first thing a client sends.
#[inline(always)]
fn is_startup(p: &Peek) -> bool {
    let (Some(len), Some(code)) = (p.be32(0), p.be32(4)) else {
        return false;
    };
    (8..=MAX_STARTUP).contains(&len)
        && (code >> 16 == PROTOCOL_3 >> 16
            || code == SSL_REQUEST
            || code == GSSENC_REQUEST
            || code == CANCEL_REQUEST)
}

/// A typed message's length is at least its own four bytes; a query is text.
#[inline(always)]
fn typed(p: &Peek) -> Option<(u8, u32)> {
    let t = p.at(0)?;
    let len = p.be32(1)?;
    (4..1 << 30).contains(&len).then_some((t, len))
}

/// The first message of a connection, or of one the agent joined mid-way: a startup message,
/// or a simple (`Q`) or extended (`P`, Parse) query whose text starts printable.
#[inline(always)]
pub fn is_first_message(p: &Peek) -> bool {
    if is_startup(p) {
        return true;
    }
    // Joined mid-way, only a message that fits its segment is believed (a type byte and a
    // length are too easily found in other bytes).
    let fits = |len: u32| (len as usize) < p.total;
    match typed(p) {
        // A query's text ends with its NUL.
        Some((b'Q', len)) if len > 5 && fits(len) => {
            matches!(p.at(5), Some(0x20..=0x7e)) && p.at(len as usize).is_none_or(|c| c == 0)
        }
        // Parse: a statement name (often empty: a NUL), then the query text.
        Some((b'P', len)) if len > 5 && fits(len) => matches!(p.at(5), Some(0 | 0x20..=0x7e)),
        _ => false,
    }
}

/// Whether the client's `p` starts something the server answers: a startup message, a
/// query, an extended-protocol batch (`P`/`B`/`D`/`E`/`C`, ended by `S`), a lone `Sync`,
/// `FunctionCall`, or an authentication reply (`p`). Not `Terminate` (`X`), `Flush` alone,
/// or copy data: they get no reply of their own.
#[inline(always)]
pub fn is_request(p: &Peek) -> bool {
    if is_startup(p) {
        return true;
    }
    matches!(
        typed(p),
        Some((
            b'Q' | b'P' | b'B' | b'D' | b'E' | b'C' | b'S' | b'F' | b'p',
            _
        ))
    )
}

/// A SQLSTATE character as a base-37 digit (0–9 = 1–10, A–Z = 11–36); anything else ends it.
#[inline(always)]
pub fn sqlstate_digit(c: u8) -> u64 {
    match c {
        b'0'..=b'9' => u64::from(c - b'0' + 1),
        b'A'..=b'Z' => u64::from(c - b'A' + 11),
        _ => 0,
    }
}

/// The SQLSTATE of an `ErrorResponse` whose fields start at `at`: the `C` field, found as
/// the first field boundary (a value's NUL) followed by `C` (a value never holds a NUL, so
/// this is exact). One short flat scan, not a walk field by field: the verifier follows
/// every exit of every loop into what comes after, so nested loops multiply its paths.
#[inline(always)]
fn sqlstate(p: &Peek, at: usize) -> u64 {
    if p.is(at, b'C') {
        return pack(p, at + 1, 5, 37, sqlstate_digit);
    }
    // The code follows the severity (localized, so of any length up to about 16 bytes) and
    // the non-localized severity (`VERROR`, `VFATAL`, `VPANIC`): within 32 bytes.
    let mut i = at + 1;
    while i < at + 32 && i + 1 < super::PEEK {
        if p.is(i, 0) && p.is(i + 1, b'C') {
            return pack(p, i + 2, 5, 37, sqlstate_digit);
        }
        i += 1;
    }
    0
}

/// Backend message types (protocol 3): anything else at a reply's start is not PostgreSQL.
#[inline(always)]
fn is_backend_type(t: u8) -> bool {
    matches!(
        t,
        b'R' | b'S'
            | b'K'
            | b'Z'
            | b'T'
            | b'D'
            | b'C'
            | b'I'
            | b'1'
            | b'2'
            | b'3'
            | b'n'
            | b's'
            | b't'
            | b'A'
            | b'N'
            | b'G'
            | b'H'
            | b'W'
            | b'V'
            | b'v'
            | b'E'
    )
}

/// The server's first segment after a request: an `ErrorResponse` among its first three
/// messages (after `ParseComplete` and `BindComplete`, say) fails the request with its SQLSTATE; a lone
/// `S`/`N` answers an `SSLRequest`.
#[inline(always)]
pub fn reply(p: &Peek) -> Option<Reply> {
    if p.len == 1 {
        return match p.at(0)? {
            // The server accepts TLS: what follows is encrypted.
            b'S' | b'G' => Some(Reply {
                outcome: Outcome::Upgraded,
                code: 0,
            }),
            b'N' => Some(Reply::OK),
            _ => None,
        };
    }
    let mut at = 0usize;
    let mut n = 0;
    while n < 3 {
        let Some(t) = p.at(at) else {
            break;
        };
        if !is_backend_type(t) {
            return if n == 0 { None } else { Some(Reply::OK) };
        }
        if t == b'E' {
            // The SQLSTATE is read from a leading ErrorResponse only (a failed login, a
            // failed simple query): reading it after other messages too would multiply the
            // verifier's paths past its limit. Later ones still fail the request.
            let code = if n == 0 { sqlstate(p, 5) } else { 0 };
            return Some(Reply {
                outcome: Outcome::Error,
                code,
            });
        }
        // The next message may start past the peeked bytes: the reply is still one.
        let Some(len) = p.be32(at + 1) else {
            return if n == 0 { None } else { Some(Reply::OK) };
        };
        if len < 4 {
            return None;
        }
        let len = len as usize;
        at = at.saturating_add(1 + len);
        n += 1;
    }
    Some(Reply::OK)
}

/// The SQLSTATE a code packs (user space).
pub fn sqlstate_of(code: u64, out: &mut [u8; 13]) -> usize {
    super::unpack(
        code,
        37,
        |d| match d as u8 {
            d @ 1..=10 => b'0' + d - 1,
            d => b'A' + d.saturating_sub(11),
        },
        out,
    )
}
