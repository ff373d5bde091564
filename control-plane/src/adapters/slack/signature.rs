//! Slack's request signature: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
//! "v0:<X-Slack-Request-Timestamp>:<body>")>`. A request whose timestamp is older (or newer)
//! than the allowed age is refused even when signed, so a captured request cannot be
//! replayed later.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::audit::hex;

/// The Slack app's signing secret; never printed.
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn new(secret: String) -> Self {
        Self(secret.into_bytes())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureError {
    #[error("the request carries no {0} header: only Slack's signed requests are taken here")]
    Missing(&'static str),
    #[error("the X-Slack-Request-Timestamp header is not a Unix time in seconds")]
    BadTimestamp,
    #[error("the request was signed {age_secs} s from now, beyond the {max_secs} s allowed: a replay, or a clock off")]
    Stale { age_secs: i64, max_secs: i64 },
    #[error(
        "the request's signature does not match: it was not signed with this app's signing secret"
    )]
    Mismatch,
}

/// Checks `signature` over `timestamp` and `body` at `now_secs`.
pub fn verify(
    secret: &SigningSecret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
    max_age_secs: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let age_secs = now_secs.saturating_sub(at);
    if age_secs.abs() > max_age_secs {
        return Err(SignatureError::Stale {
            age_secs,
            max_secs: max_age_secs,
        });
    }
    let given = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(hex::decode::<32>)
        .ok_or(SignatureError::Mismatch)?;
    // verify_slice compares in constant time.
    mac(secret, timestamp.trim(), body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

fn mac(secret: &SigningSecret, timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret.0)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// The signature Slack would send: for tests, and for anyone checking a receiver by hand.
pub fn sign(secret: &SigningSecret, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(&mac(secret, timestamp, body).finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's own worked example (api.slack.com/authentication/verifying-requests-from-slack).
    #[test]
    fn slack_s_documented_example_verifies() {
        let secret = SigningSecret::new("8f742231b10e8888abcd99yyyzzz85a5".into());
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(sign(&secret, "1531420618", body), sig);
        assert_eq!(
            verify(
                &secret,
                Some("1531420618"),
                Some(sig),
                body,
                1531420618 + 10,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn an_edited_body_a_wrong_secret_a_stale_or_missing_stamp_is_refused() {
        let secret = SigningSecret::new("s3cret".into());
        let sig = sign(&secret, "1000", b"payload=a");
        let check = |ts: Option<&str>, sig: Option<&str>, body: &[u8], now| {
            verify(&secret, ts, sig, body, now, 300)
        };
        assert_eq!(check(Some("1000"), Some(&sig), b"payload=a", 1000), Ok(()));
        assert_eq!(
            check(Some("1000"), Some(&sig), b"payload=b", 1000),
            Err(SignatureError::Mismatch)
        );
        let other = sign(&SigningSecret::new("other".into()), "1000", b"payload=a");
        assert_eq!(
            check(Some("1000"), Some(&other), b"payload=a", 1000),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            check(Some("1000"), Some(&sig), b"payload=a", 1301),
            Err(SignatureError::Stale { age_secs: 301, .. })
        ));
        assert!(matches!(
            check(Some("1000"), Some(&sig), b"payload=a", 699),
            Err(SignatureError::Stale { .. })
        ));
        assert_eq!(
            check(None, Some(&sig), b"payload=a", 1000),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            check(Some("1000"), Some("v0=zz"), b"payload=a", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some("soon"), Some(&sig), b"payload=a", 1000),
            Err(SignatureError::BadTimestamp)
        );
    }
}
