//! Names and identifiers.
//!
//! User-chosen names (networks, containers, aliases) follow Docker's rule
//! `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}`. Because names end up in `/etc/hosts`,
//! in nft comments and in log lines, anything outside that set is refused here,
//! once, before it can reach a script or a command line.

use crate::{CoreError, Result};

/// Checks a network, container or alias name.
pub fn validate_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..].iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidName(name.to_string()))
    }
}

/// Checks a hostname (RFC 1123 labels joined by dots).
pub fn validate_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidHostname(name.to_string()))
    }
}

/// Turns 32 random bytes into a 64-character hex id (Docker's id format).
pub fn id_from_bytes(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks an id or id prefix: lowercase hex only.
pub fn is_id_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_docker_style_names() {
        for n in ["a", "web", "web-1", "my_net.v2", "A9", &"x".repeat(63)] {
            validate_name(n).unwrap();
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in ["", "-a", ".a", "_a", "a b", "a;rm", "a\"b", "a/b", "ä", &"x".repeat(64), "a{b}"] {
            assert_eq!(validate_name(n), Err(CoreError::InvalidName(n.to_string())), "{n}");
        }
    }

    #[test]
    fn hostnames() {
        validate_hostname("web-1.example").unwrap();
        assert!(validate_hostname("-bad").is_err());
        assert!(validate_hostname("a..b").is_err());
        assert!(validate_hostname("a_b").is_err());
    }

    proptest! {
        #[test]
        fn valid_names_only_contain_safe_bytes(s in "\\PC{0,80}") {
            if validate_name(&s).is_ok() {
                prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
                prop_assert!(s.len() <= 63);
            }
        }
    }
}
