//! Keys, signatures and hashes travel as lower-case hex.

pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from `2 * N` hex digits (surrounding whitespace allowed), or `None`.
pub fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_round_trip_and_a_wrong_length_or_digit_is_refused() {
        let hex = super::encode(&[0, 15, 255]);
        assert_eq!(hex, "000fff");
        assert_eq!(super::decode::<3>(&hex), Some([0, 15, 255]));
        assert_eq!(super::decode::<2>(&hex), None);
        assert_eq!(super::decode::<3>("00zfff"), None);
    }
}
