//! HTTP/2, and so gRPC: a connection opens with the client's preface; after it, each
//! message's first frame that is not a control frame is read, as far as the first bytes
//! reach. Streams
//! are multiplexed, so nothing is timed: a client's `HEADERS` is a request (a stream), a
//! server's `HEADERS` that starts with `:status` is a response (a gRPC trailer block starts
//! with `grpc-status` and is not), and `RST_STREAM` or `GOAWAY` with an error code fails
//! the request. HPACK is read only where that is cheap: a `:status` from the static table
//! or as a plain (not Huffman) literal; `grpc-status` (a literal with its own name) is not.

use super::{Peek, PEEK};

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4).
pub const PREFACE_LEN: usize = 24;
const PREFACE: [u64; 3] = [
    u64::from_le_bytes(*b"PRI * HT"),
    u64::from_le_bytes(*b"TP/2.0\r\n"),
    u64::from_le_bytes(*b"\r\nSM\r\n\r\n"),
];

/// Frames read per message, after up to [`MAX_SKIPPED`] control frames.
pub const MAX_FRAMES: usize = 1;
/// Small control frames (SETTINGS and its ack, WINDOW_UPDATE, PING) often come before the
/// frame that matters in one write.
pub const MAX_SKIPPED: usize = 3;

const PRIORITY: u8 = 0x2;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// What failed, as [`super::Reply::code`] packs it for HTTP/2: the `:status` (4xx, 5xx) as
/// is, or the error code of a `RST_STREAM` or a `GOAWAY` with these tags above it.
pub const CODE_RST_STREAM: u64 = 1 << 32;
pub const CODE_GOAWAY: u64 = 2 << 32;

/// Three 8-byte words of fixed offsets: three comparisons, no per-byte checks.
#[inline(always)]
pub fn is_preface(p: &Peek) -> bool {
    let w = |at: usize| {
        let mut v = 0u64;
        let mut i = 0;
        while i < 8 {
            v |= u64::from(p.bytes[at + i]) << (8 * i);
            i += 1;
        }
        v
    };
    p.len >= PREFACE_LEN && w(0) == PREFACE[0] && w(8) == PREFACE[1] && w(16) == PREFACE[2]
}

/// The frames of one message, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frames {
    /// Streams the client opened (its `HEADERS`).
    pub requests: u64,
    /// The server's response header blocks.
    pub responses: u64,
    /// Responses with a 5xx status, and streams or connections ended with an error code.
    pub errors: u64,
    /// Responses with a 4xx status.
    pub client_errors: u64,
    /// The last failure's code (see [`CODE_RST_STREAM`]).
    pub code: u64,
}

/// Reads the frames of a message sent by the client (`from_client`) or the server,
/// starting `at` bytes in (past the preface, or 0). Each frame's bytes are bounds-checked
/// once, then read by masked index: the kernel's verifier follows far fewer paths than
/// through a checked read per byte.
#[inline(always)]
pub fn frames(p: &Peek, from_client: bool, at: usize) -> Frames {
    let mut f = Frames::default();
    let len = if p.len < PEEK { p.len } else { PEEK };
    let b = |i: usize| usize::from(p.bytes[i & (PEEK - 1)]);
    // Control frames (SETTINGS, PING, WINDOW_UPDATE, PRIORITY) before the one that counts
    // are stepped over without reading them: a loop that only moves `at` costs the
    // verifier little, where a second full frame read multiplied its paths past its limit.
    let mut at = at;
    let mut skipped = 0;
    while skipped < MAX_SKIPPED && at + 9 <= len {
        if !matches!(b(at + 3) as u8, SETTINGS | PING | WINDOW_UPDATE | PRIORITY) {
            break;
        }
        at += 9 + (((b(at) << 16) | (b(at + 1) << 8) | b(at + 2)) & 0xff_ffff);
        skipped += 1;
    }
    let mut i = 0;
    while i < MAX_FRAMES {
        if at + 9 > len {
            break;
        }
        let size = (b(at) << 16) | (b(at + 1) << 8) | b(at + 2);
        let (kind, flags, body) = (b(at + 3) as u8, b(at + 4) as u8, at + 9);
        let word = |i: usize| (b(i) << 24 | b(i + 1) << 16 | b(i + 2) << 8 | b(i + 3)) as u64;
        // A message is read as if a frame starts it; one that starts mid-frame (the rest of
        // a large DATA frame) must not pass for one. Frames that count are checked as RFC
        // 9113 has them: a HEADERS on a stream (a client's odd) within the default 16 KiB
        // frame size, a RST_STREAM of exactly 4 bytes on a stream, a GOAWAY of at least 8
        // on stream 0. Random bytes pass about once in 10^6 messages, not once in 256.
        let stream = word(at + 5) & 0x7fff_ffff;
        let headers = kind == HEADERS && stream != 0 && size <= 16_384;
        if headers && from_client && stream & 1 == 1 {
            f.requests += 1;
        } else if headers && !from_client {
            let block = body
                + usize::from(flags & FLAG_PADDED != 0)
                + 5 * usize::from(flags & FLAG_PRIORITY != 0);
            let status = if block < len {
                // Past the end, 0: a literal :status cut short reads as none.
                let byte = |i: usize| if i < len { b(i) } else { 0 };
                status(
                    b(block) as u8,
                    byte(block + 1) as u8,
                    [byte(block + 2), byte(block + 3), byte(block + 4)],
                )
            } else {
                None
            };
            if let Some(status) = status {
                f.responses += 1;
                if status >= 400 {
                    f.code = status;
                    if status >= 500 {
                        f.errors += 1;
                    } else {
                        f.client_errors += 1;
                    }
                }
            }
        } else if from_client {
            // A client's RST_STREAM (a cancelled call) is its own choice, not a failure of
            // the server, and its bytes are never sampled.
        } else if kind == RST_STREAM
            && size == 4
            && stream != 0
            && body + 4 <= len
            && word(body) != 0
        {
            f.errors += 1;
            f.code = CODE_RST_STREAM | word(body);
        } else if kind == GOAWAY
            && size >= 8
            && stream == 0
            && body + 8 <= len
            && word(body + 4) != 0
        {
            // GOAWAY: last stream id, then the error code.
            f.errors += 1;
            f.code = CODE_GOAWAY | word(body + 4);
        }
        at = body + (size & 0xff_ffff);
        i += 1;
    }
    f
}

/// Static-table `:status` values, indexed from 0x88 (RFC 7541 appendix A, indices 8 to 14).
const STATIC_STATUS: [u64; 8] = [200, 204, 206, 304, 400, 404, 500, 0];

/// The `:status` a header block starts with, from its first bytes: 0 when it is there but
/// Huffman-coded (a response all the same), `None` when the block starts with something
/// else (a gRPC trailer block).
#[inline(always)]
fn status(first: u8, len: u8, digits: [usize; 3]) -> Option<u64> {
    if (0x88..=0x8e).contains(&first) {
        return Some(STATIC_STATUS[usize::from(first - 0x88) & 7]);
    }
    // A literal whose name is static index 8 (`:status`): with incremental indexing (0x48),
    // without (0x08), never indexed (0x18); then the value's length and the digits.
    if first != 0x48 && first != 0x08 && first != 0x18 {
        return None;
    }
    if len & 0x80 != 0 {
        return Some(0); // Huffman-coded digits
    }
    let d = |c: usize| c.wrapping_sub(usize::from(b'0'));
    if len != 3 || d(digits[0]) > 9 || d(digits[1]) > 9 || d(digits[2]) > 9 {
        return None;
    }
    Some((d(digits[0]) * 100 + d(digits[1]) * 10 + d(digits[2])) as u64)
}

/// The name of an HTTP/2 error code (RFC 9113 §7).
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "UNKNOWN",
    }
}
