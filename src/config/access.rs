//! The access sections checked: API keys, JWT settings, rate limits and
//! roles. Roles are checked against the schema later, when it is known
//! ([`crate::roles`]); here only what needs no database.

use super::{Config, JwtConfig, RoleConfig};
use anyhow::{Context, bail};
use axum::http::HeaderName;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::time::Duration;

/// The role of callers without credentials.
pub const ANONYMOUS: &str = "anonymous";

/// Who may do what, and how much.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Whether any key, token setting or role is configured. When not,
    /// brisk serves as it always did: anyone reads, and anyone writes
    /// when `writes = true`.
    pub configured: bool,
    pub api_key_header: HeaderName,
    pub keys: Vec<ApiKeySettings>,
    /// `None`: JWTs are not accepted.
    pub jwt: Option<JwtConfig>,
    pub rate_limit: RateLimitSettings,
    /// Every configured role, `anonymous` always among them.
    pub roles: BTreeMap<String, RoleConfig>,
}

#[derive(Debug, Clone)]
pub struct ApiKeySettings {
    pub name: String,
    pub role: String,
    pub digest: [u8; 32],
    pub claims: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// The limit of roles without their own: requests per window.
    pub default: Option<(u32, Duration)>,
    /// What a cache miss costs, in requests.
    pub miss_cost: u32,
    pub trusted_proxies: Vec<IpNet>,
}

pub(super) fn access(config: &Config) -> anyhow::Result<AccessSettings> {
    let auth = &config.auth;
    let api_key_header = HeaderName::try_from(auth.api_key_header.to_ascii_lowercase())
        .with_context(|| {
            format!(
                "auth.api_key_header '{}' is not a header name",
                auth.api_key_header
            )
        })?;
    let mut roles = config.roles.clone();
    roles.entry(ANONYMOUS.into()).or_default();
    for (name, role) in &roles {
        if !plain_name(name) {
            bail!("roles.{name}: a role name is letters, digits, '_' and '-'");
        }
        if role
            .rate_limit
            .as_ref()
            .is_some_and(|r| r.window_seconds == 0)
        {
            bail!("roles.{name}.rate_limit.window_seconds must be at least 1");
        }
    }
    let keys = auth
        .keys
        .iter()
        .map(|(name, key)| {
            let digest = hex_digest(&key.sha256).with_context(|| {
                format!(
                    "auth.keys.{name}.sha256 is not a SHA-256 digest in hex (64 characters); \
                     `brisk key new --role ROLE` prints one"
                )
            })?;
            if !roles.contains_key(&key.role) {
                bail!(
                    "auth.keys.{name}.role '{}' is not a configured role; add [roles.{}]",
                    key.role,
                    key.role
                );
            }
            let claims = serde_json::to_value(&key.claims)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            Ok(ApiKeySettings {
                name: name.clone(),
                role: key.role.clone(),
                digest,
                claims,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let jwt = (!auth.jwt.algorithms.is_empty()).then(|| auth.jwt.clone());
    if jwt.is_none()
        && (auth.jwt.secret.is_some()
            || auth.jwt.public_key_file.is_some()
            || auth.jwt.jwks_file.is_some())
    {
        bail!(
            "auth.jwt has a key but no auth.jwt.algorithms: name the algorithms tokens are signed with, like [\"HS256\"]"
        );
    }
    if jwt.is_some() && !roles.contains_key(&auth.jwt.default_role) {
        bail!(
            "auth.jwt.default_role '{}' is not a configured role",
            auth.jwt.default_role
        );
    }
    let limit = &config.rate_limit;
    if limit.requests > 0 && limit.window_seconds == 0 {
        bail!("rate_limit.window_seconds must be at least 1");
    }
    let trusted_proxies = limit
        .trusted_proxies
        .iter()
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .with_context(|| {
                    format!("rate_limit.trusted_proxies: '{p}' is not an address or a range like 10.0.0.0/8")
                })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(AccessSettings {
        configured: !config.roles.is_empty() || !keys.is_empty() || jwt.is_some(),
        api_key_header,
        keys,
        jwt,
        rate_limit: RateLimitSettings {
            default: (limit.requests > 0).then(|| {
                (
                    limit.requests.min(u32::MAX as u64) as u32,
                    Duration::from_secs(limit.window_seconds),
                )
            }),
            miss_cost: limit.miss_cost.clamp(1, u32::MAX as u64) as u32,
            trusted_proxies,
        },
        roles,
    })
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(digest)
}
