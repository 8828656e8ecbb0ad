//! JWT bearer tokens: checked once (signature, algorithm, `exp`, `nbf`,
//! `aud`, `iss`) with jsonwebtoken, then remembered until they expire, so a
//! caller that sends the same token again costs a map lookup, not a
//! signature check. Keys come from a shared secret (HS*), a PEM public key,
//! or a JWKS file that is read again when it changes on disk.

use super::claim_at;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// How tokens are checked.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    pub algorithms: Vec<Algorithm>,
    pub secret: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub jwks_file: Option<PathBuf>,
    /// Empty: `aud` is not checked.
    pub audience: Vec<String>,
    pub issuer: Option<String>,
    pub leeway: Duration,
    /// The dotted path of the role in the claims.
    pub role_claim: String,
}

/// A token that passed every check.
#[derive(Debug)]
pub struct VerifiedToken {
    pub claims: Arc<Map<String, Value>>,
    /// The value at the role claim, if the token has one.
    pub role: Option<String>,
    /// `sub`, a string or a number.
    pub subject: Option<Arc<str>>,
    /// Until when (seconds since the epoch, leeway included) it is good.
    pub expires_at: u64,
}

/// Why a token was refused; the message ends a 401's detail.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("it is not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("its signature does not match")]
    Signature,
    #[error("it is not a well-formed JWT")]
    Malformed,
    #[error("it is signed with {0:?}, which this server does not accept")]
    Algorithm(Algorithm),
    #[error("it is for another audience (aud)")]
    Audience,
    #[error("it is from another issuer (iss)")]
    Issuer,
    #[error("no key here matches it (kid {0})")]
    UnknownKey(String),
    #[error("it has no '{0}' claim")]
    Missing(String),
    #[error("its claim {0}")]
    Claim(String),
}

/// Tokens longer than this are refused before any work.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How many verified tokens are remembered.
const REMEMBERED: usize = 10_000;

/// HS* secrets shorter than this are refused at start-up (RFC 7518 §3.2
/// asks for at least the hash's size).
const MIN_SECRET_BYTES: usize = 32;

pub struct JwtVerifier {
    validation: Validation,
    keys: Keys,
    role_claim: String,
    leeway: u64,
    verified: quick_cache::sync::Cache<Box<str>, Arc<VerifiedToken>>,
}

/// The keys tokens may be signed with.
enum Keys {
    /// A secret and/or one PEM key, one per algorithm family.
    Fixed(Vec<(AlgorithmFamily, DecodingKey)>),
    /// A JWKS file, with the time it was last read.
    Jwks {
        path: PathBuf,
        loaded: RwLock<(Option<SystemTime>, Arc<Vec<JwksKey>>)>,
        /// When (in seconds) the file was last looked at.
        checked_at: AtomicU64,
    },
}

struct JwksKey {
    id: Option<String>,
    key: DecodingKey,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> anyhow::Result<JwtVerifier> {
        let mut families: Vec<AlgorithmFamily> = Vec::new();
        for family in settings.algorithms.iter().map(|a| a.family()) {
            if !families.contains(&family) {
                families.push(family);
            }
        }
        let keys = match &settings.jwks_file {
            Some(path) => {
                if settings.public_key_file.is_some() {
                    anyhow::bail!("auth.jwt: set public_key_file or jwks_file, not both");
                }
                let (modified, keys) = read_jwks(path)?;
                Keys::Jwks {
                    path: path.clone(),
                    loaded: RwLock::new((modified, Arc::new(keys))),
                    checked_at: AtomicU64::new(0),
                }
            }
            None => Keys::Fixed(fixed_keys(&settings, &families)?),
        };
        let mut validation = Validation::new(settings.algorithms[0]);
        validation.algorithms = settings.algorithms.clone();
        validation.leeway = settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.validate_aud = !settings.audience.is_empty();
        if !settings.audience.is_empty() {
            validation.set_audience(&settings.audience);
        }
        if let Some(issuer) = &settings.issuer {
            validation.set_issuer(&[issuer]);
        }
        Ok(JwtVerifier {
            validation,
            keys,
            role_claim: settings.role_claim,
            leeway: settings.leeway.as_secs(),
            verified: quick_cache::sync::Cache::new(REMEMBERED),
        })
    }

    /// The token's claims if every check passes.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Keys::Jwks {
            path,
            loaded,
            checked_at,
        } = &self.keys
            && checked_at.swap(now, Ordering::Relaxed) != now
        {
            // at most once a second, so a key removed revokes its tokens soon
            self.reload_if_changed(path, loaded);
        }
        if let Some(known) = self.verified.get(token) {
            if now <= known.expires_at {
                return Ok(known);
            }
            self.verified.remove(token);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(refusal)?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(header.alg));
        }
        let key = self.key_for(header.alg, header.kid.as_deref())?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(refusal)?;
        let claims = data.claims;
        let role = match claim_at(&claims, &self.role_claim) {
            None | Some(Value::Null) => None,
            Some(Value::String(role)) => Some(role.clone()),
            Some(_) => {
                return Err(TokenError::Claim(format!(
                    "{} (the role) is not a string",
                    self.role_claim
                )));
            }
        };
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) => Some(Arc::from(sub.as_str())),
            Some(Value::Number(sub)) => Some(Arc::from(sub.to_string())),
            _ => None,
        };
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map_or(now, |exp| exp.saturating_add(self.leeway));
        let verified = Arc::new(VerifiedToken {
            claims: Arc::new(claims),
            role,
            subject,
            expires_at,
        });
        self.verified.insert(token.into(), verified.clone());
        Ok(verified)
    }

    /// The key for a token signed with `alg`, named `kid`.
    fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, TokenError> {
        match &self.keys {
            Keys::Fixed(keys) => keys
                .iter()
                .find(|(family, _)| *family == alg.family())
                .map(|(_, key)| key.clone())
                .ok_or(TokenError::Algorithm(alg)),
            Keys::Jwks { loaded, .. } => {
                let keys = loaded.read().expect("lock").1.clone();
                let fits = |k: &&JwksKey| k.key.family() == alg.family();
                let found = match kid {
                    Some(kid) => keys
                        .iter()
                        .filter(fits)
                        .find(|k| k.id.as_deref() == Some(kid)),
                    // without a kid, only an unambiguous key will do
                    None => {
                        let mut fitting = keys.iter().filter(fits);
                        fitting.next().filter(|_| fitting.next().is_none())
                    }
                };
                found
                    .map(|k| k.key.clone())
                    .ok_or_else(|| TokenError::UnknownKey(kid.unwrap_or("none").to_string()))
            }
        }
    }

    /// Reads the JWKS again if the file changed; a file that no longer
    /// reads keeps the keys it held, and says so in the log. Tokens
    /// remembered are forgotten, since a key they used may be gone.
    fn reload_if_changed(
        &self,
        path: &PathBuf,
        loaded: &RwLock<(Option<SystemTime>, Arc<Vec<JwksKey>>)>,
    ) {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified == loaded.read().expect("lock").0 {
            return;
        }
        let mut loaded = loaded.write().expect("lock");
        if modified == loaded.0 {
            return;
        }
        match read_jwks(path) {
            Ok((modified, keys)) => {
                tracing::info!(path = %path.display(), keys = keys.len(), "read the JWKS again");
                *loaded = (modified, Arc::new(keys));
                self.verified.clear();
            }
            Err(error) => {
                tracing::warn!(%error, "keeping the JWKS read before");
                loaded.0 = modified;
            }
        }
    }
}

fn fixed_keys(
    settings: &JwtSettings,
    families: &[AlgorithmFamily],
) -> anyhow::Result<Vec<(AlgorithmFamily, DecodingKey)>> {
    let mut keys = Vec::new();
    let pem =
        match &settings.public_key_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("auth.jwt.public_key_file '{}': {e}", path.display())
            })?),
            None => None,
        };
    for family in families {
        let key = match (family, &settings.secret, &pem) {
            (AlgorithmFamily::Hmac, Some(secret), _) => {
                if secret.len() < MIN_SECRET_BYTES {
                    anyhow::bail!(
                        "auth.jwt.secret is {} bytes; HS* secrets must be at least {MIN_SECRET_BYTES} (RFC 7518 §3.2)",
                        secret.len()
                    );
                }
                DecodingKey::from_secret(secret.as_bytes())
            }
            (AlgorithmFamily::Hmac, None, _) => {
                anyhow::bail!(
                    "auth.jwt.algorithms names an HS* algorithm but auth.jwt.secret is not set"
                )
            }
            (_, _, None) => anyhow::bail!(
                "auth.jwt.algorithms names {family:?} algorithms: set auth.jwt.public_key_file (PEM) or auth.jwt.jwks_file"
            ),
            (family, _, Some(pem)) => {
                let parsed = match family {
                    AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
                    AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
                    _ => DecodingKey::from_ed_pem(pem),
                };
                parsed.map_err(|e| {
                    anyhow::anyhow!(
                        "auth.jwt.public_key_file holds no {family:?} public key in PEM, which the algorithms named need: {e}"
                    )
                })?
            }
        };
        keys.push((*family, key));
    }
    Ok(keys)
}

fn read_jwks(path: &PathBuf) -> anyhow::Result<(Option<SystemTime>, Vec<JwksKey>)> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("auth.jwt.jwks_file '{}': {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("auth.jwt.jwks_file '{}' is not a JWKS: {e}", path.display())
    })?;
    let keys = set
        .keys
        .iter()
        .map(|jwk| {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                anyhow::anyhow!(
                    "auth.jwt.jwks_file '{}': key {:?} is not usable: {e}",
                    path.display(),
                    jwk.common.key_id
                )
            })?;
            Ok(JwksKey {
                id: jwk.common.key_id.clone(),
                key,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if keys.is_empty() {
        anyhow::bail!("auth.jwt.jwks_file '{}' holds no keys", path.display());
    }
    Ok((modified, keys))
}

fn refusal(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::Missing(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => {
            TokenError::Claim(format!("{claim} has the wrong type"))
        }
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name)
    }

    fn settings(algorithms: &[Algorithm]) -> JwtSettings {
        JwtSettings {
            algorithms: algorithms.to_vec(),
            secret: None,
            public_key_file: None,
            jwks_file: None,
            audience: Vec::new(),
            issuer: None,
            leeway: Duration::from_secs(0),
            role_claim: "app.role".into(),
        }
    }

    fn sign(header: Header, claims: Value, key: &EncodingKey) -> String {
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims() -> Value {
        json!({"sub": 42, "app": {"role": "customer"}, "exp": jsonwebtoken::get_current_timestamp() + 600})
    }

    #[test]
    fn public_keys_of_each_family_verify_their_tokens() {
        let cases = [
            (
                Algorithm::RS256,
                "rsa.pub",
                EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.key")).unwrap()),
            ),
            (
                Algorithm::PS384,
                "rsa.pub",
                EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.key")).unwrap()),
            ),
            (
                Algorithm::ES256,
                "ec.pub",
                EncodingKey::from_ec_pem(&std::fs::read(fixture("ec.key")).unwrap()),
            ),
            (
                Algorithm::EdDSA,
                "ed.pub",
                EncodingKey::from_ed_pem(&std::fs::read(fixture("ed.key")).unwrap()),
            ),
        ];
        for (algorithm, public, private) in cases {
            let verifier = JwtVerifier::new(JwtSettings {
                public_key_file: Some(fixture(public)),
                ..settings(&[algorithm])
            })
            .unwrap();
            let token = sign(Header::new(algorithm), claims(), &private.unwrap());
            let verified = verifier.verify(&token).unwrap();
            assert_eq!(verified.role.as_deref(), Some("customer"), "{algorithm:?}");
            assert_eq!(verified.subject.as_deref(), Some("42"));
            // a changed payload under the same signature is refused
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &json!({"sub": 1}),
                &EncodingKey::from_secret(b"x"),
            )
            .unwrap();
            parts[1] = forged.split('.').nth(1).unwrap();
            assert!(
                matches!(
                    verifier.verify(&parts.join(".")),
                    Err(TokenError::Signature)
                ),
                "{algorithm:?}"
            );
        }
    }

    #[test]
    fn a_token_cannot_choose_another_algorithm() {
        // the classic confusion: HS256 signed with the RSA public key as the secret
        let verifier = JwtVerifier::new(JwtSettings {
            public_key_file: Some(fixture("rsa.pub")),
            ..settings(&[Algorithm::RS256])
        })
        .unwrap();
        let public = std::fs::read(fixture("rsa.pub")).unwrap();
        let token = sign(
            Header::new(Algorithm::HS256),
            claims(),
            &EncodingKey::from_secret(&public),
        );
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::Algorithm(Algorithm::HS256))
        ));
        let unsigned = format!(
            "{}.",
            token
                .rsplit_once('.')
                .unwrap()
                .0
                .replacen("HS256", "none", 1)
        );
        assert!(verifier.verify(&unsigned).is_err());
    }

    #[test]
    fn audience_issuer_expiry_and_not_before_are_checked() {
        let secret = "a secret of at least thirty-two bytes long";
        let verifier = JwtVerifier::new(JwtSettings {
            secret: Some(secret.into()),
            audience: vec!["shop".into()],
            issuer: Some("https://id.example/".into()),
            ..settings(&[Algorithm::HS256])
        })
        .unwrap();
        let key = EncodingKey::from_secret(secret.as_bytes());
        let now = jsonwebtoken::get_current_timestamp();
        let token = |extra: Value| {
            let mut claims = json!({"aud": "shop", "iss": "https://id.example/", "exp": now + 600});
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            sign(Header::new(Algorithm::HS256), claims, &key)
        };
        assert!(verifier.verify(&token(json!({}))).is_ok());
        assert!(matches!(
            verifier.verify(&token(json!({"aud": "other"}))),
            Err(TokenError::Audience)
        ));
        assert!(matches!(
            verifier.verify(&token(json!({"iss": "https://evil/"}))),
            Err(TokenError::Issuer)
        ));
        assert!(matches!(
            verifier.verify(&token(json!({"exp": now - 10}))),
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            verifier.verify(&token(json!({"nbf": now + 300}))),
            Err(TokenError::NotYetValid)
        ));
        let no_exp = sign(
            Header::new(Algorithm::HS256),
            json!({"aud": "shop", "iss": "https://id.example/"}),
            &key,
        );
        assert!(matches!(verifier.verify(&no_exp), Err(TokenError::Missing(c)) if c == "exp"));
        assert!(matches!(
            verifier.verify(&token(json!({"app": {"role": 7}}))),
            Err(TokenError::Claim(_))
        ));
        assert!(matches!(
            verifier.verify("a.b.c"),
            Err(TokenError::Malformed)
        ));
        assert!(matches!(
            verifier.verify(&"x".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenError::Malformed)
        ));
    }

    #[test]
    fn bad_settings_are_refused_at_start_up() {
        let short = JwtVerifier::new(JwtSettings {
            secret: Some("short".into()),
            ..settings(&[Algorithm::HS256])
        });
        assert!(short.err().unwrap().to_string().contains("at least 32"));
        let no_key = JwtVerifier::new(settings(&[Algorithm::RS256]));
        assert!(
            no_key
                .err()
                .unwrap()
                .to_string()
                .contains("public_key_file")
        );
        let wrong_kind = JwtVerifier::new(JwtSettings {
            public_key_file: Some(fixture("ec.pub")),
            ..settings(&[Algorithm::RS256])
        });
        assert!(wrong_kind.err().unwrap().to_string().contains("Rsa"));
    }

    #[test]
    fn a_jwks_is_read_again_when_it_changes_and_revokes_what_it_drops() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::copy(fixture("jwks.json"), &jwks).unwrap();
        let verifier = JwtVerifier::new(JwtSettings {
            jwks_file: Some(jwks.clone()),
            ..settings(&[Algorithm::RS256])
        })
        .unwrap();
        let private =
            EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.key")).unwrap()).unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let token = sign(header.clone(), claims(), &private);
        assert!(verifier.verify(&token).is_ok());
        header.kid = Some("rsa-2".into());
        assert!(
            matches!(verifier.verify(&sign(header, claims(), &private)), Err(TokenError::UnknownKey(k)) if k == "rsa-2")
        );
        // without a kid: the one RSA key there
        assert!(
            verifier
                .verify(&sign(Header::new(Algorithm::RS256), claims(), &private))
                .is_ok()
        );
        // the key is rotated out: the remembered token is refused too
        let renamed = std::fs::read_to_string(&jwks)
            .unwrap()
            .replace("rsa-1", "rsa-9");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&jwks, renamed).unwrap();
        let file = std::fs::File::options().write(true).open(&jwks).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        std::thread::sleep(Duration::from_millis(1100)); // the file is looked at once a second
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::UnknownKey(_))
        ));
    }
}
