//! API keys: 256 random bits, shown once when made, stored only as their
//! SHA-256 digest (a key is as strong as a random secret, so a fast digest
//! is enough; there is nothing to stretch).

use anyhow::bail;
use sha2::{Digest, Sha256};

/// The marker every key starts with, so leaked keys are easy to grep for.
const PREFIX: &str = "brisk_";

/// A key just made, with what to put in the configuration.
pub struct Issued {
    pub name: String,
    pub role: String,
    /// The key itself: shown once, never stored.
    pub key: String,
    pub sha256: String,
}

/// Makes a new key for `role`, named `name` (or the role and a random
/// suffix).
pub fn issue(role: &str, name: Option<&str>) -> anyhow::Result<Issued> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !plain(role) {
        bail!("--role '{role}' is not a role name (letters, digits, '_' and '-')");
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system provides random bytes");
    let key = format!("{PREFIX}{}", hex(&secret));
    let name = match name {
        Some(name) if plain(name) => name.to_string(),
        Some(name) => bail!("--name '{name}' is not a key name (letters, digits, '_' and '-')"),
        None => format!("{role}-{}", &hex(&secret[..3])),
    };
    Ok(Issued {
        sha256: hex(&digest(&key)),
        name,
        role: role.to_string(),
        key,
    })
}

/// The digest a key is stored and looked up by.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Issued {
    pub fn instructions(&self) -> String {
        format!(
            "API key (shown only now; brisk keeps only its digest):\n\n    {key}\n\n\
             Send it as `Authorization: Bearer {key}` (or in auth.api_key_header, X-Api-Key by default).\n\
             Add these lines to brisk.toml, next to a [roles.{role}] section:\n\n\
             [auth.keys.{name}]\nrole = \"{role}\"\nsha256 = \"{sha}\"\n",
            key = self.key,
            role = self.role,
            name = self.name,
            sha = self.sha256,
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_stored_as_their_digest() {
        let a = issue("reader", None).unwrap();
        let b = issue("reader", Some("ci")).unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with("brisk_") && a.key.len() == 6 + 64);
        assert_eq!(a.sha256, hex(&digest(&a.key)));
        assert_eq!(b.name, "ci");
        assert!(a.name.starts_with("reader-"));
        let text = b.instructions();
        assert!(text.contains(&b.key) && text.contains(&format!("sha256 = \"{}\"", b.sha256)));
        assert!(issue("no spaces", None).is_err());
        assert!(issue("reader", Some("a b")).is_err());
    }
}
