//! Human names for numbers the kernel reports: syscalls, errnos, DNS rcodes.

/// The syscall's name on this architecture, or "" when unknown.
pub fn syscall_name(nr: u32) -> String {
    syscalls::Sysno::new(nr as usize)
        .map(|s| s.name().to_string())
        .unwrap_or_default()
}

/// e.g. "ENOSPC"; "" when unknown.
pub fn errno_name(errno: u32) -> String {
    let e = nix::errno::Errno::from_raw(errno as i32);
    if e == nix::errno::Errno::UnknownErrno {
        String::new()
    } else {
        format!("{e:?}")
    }
}

/// RFC 1035 / 2136 / 6895 response codes.
pub fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "UNKNOWN",
    }
}

/// Decodes a wire-format question (`3www7example3com0` + QTYPE) that may be truncated.
/// Returns the dotted name and the QTYPE when both fit.
pub fn dns_question(bytes: &[u8]) -> (String, Option<u16>) {
    let mut labels = Vec::new();
    let mut i = 0;
    while let Some(&len) = bytes.get(i) {
        if len == 0 {
            let qtype = bytes
                .get(i + 1..i + 3)
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
            return (labels.join("."), qtype);
        }
        // Compression pointers cannot appear in the first question name.
        if len & 0xc0 != 0 {
            break;
        }
        let Some(label) = bytes.get(i + 1..i + 1 + len as usize) else {
            // Truncated mid-label: keep what we have, marked.
            labels.push("…".to_string());
            break;
        };
        labels.push(String::from_utf8_lossy(label).into_owned());
        i += 1 + len as usize;
    }
    (labels.join("."), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(errno_name(28), "ENOSPC");
        assert_eq!(errno_name(111), "ECONNREFUSED");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(syscall_name(257), "openat");
    }

    #[test]
    fn question_decoding() {
        let q = b"\x05redis\x07default\x03svc\x00\x00\x01\x00\x01";
        assert_eq!(dns_question(q), ("redis.default.svc".into(), Some(1)));
        let (name, qtype) = dns_question(&q[..9]);
        assert_eq!((name.as_str(), qtype), ("redis.…", None));
        assert_eq!(dns_question(b""), (String::new(), None));
    }
}
