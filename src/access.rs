//! The access layer every request passes before the cache: who is asking
//! (an API key, a JWT, or no credentials: `anonymous`), as which role, and
//! whether its rate limit lets it in. It runs on cache hits too, so it is
//! built to cost almost nothing there: a key is one SHA-256 and a map
//! lookup, a token already verified is one lookup, and the local rate limit
//! is one GCRA step.

use crate::auth::claim_at;
use crate::auth::jwt::{JwtSettings, JwtVerifier, TokenError};
use crate::cluster::Cluster;
use crate::config::{AccessSettings, JwtConfig};
use crate::error::{ApiError, Problem};
use crate::metrics::Metrics;
use crate::rate_limit::{Decision, LimitKey, Quota, RateLimiter};
use crate::roles::{Role, Roles};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use bytes::Bytes;
use ipnet::IpNet;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Who is asking, as far as an answer is concerned.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub role: Arc<Role>,
    /// The claims of its token, or of its API key.
    pub claims: Arc<Map<String, Value>>,
    /// What its cached answers are filed under, besides the request: the
    /// role and the values of the claims its row rules read. Callers that
    /// agree on it see the same bytes and share cache entries; empty when
    /// no access is configured.
    pub partition: Arc<str>,
    /// Whose rate limit it spends.
    pub limit_key: LimitKey,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    pub client: IpAddr,
    /// Whether it sent credentials: then its answers are `private`.
    pub authenticated: bool,
}

/// An API key's identity.
struct KeyHolder {
    name: Arc<str>,
    role: Arc<Role>,
    claims: Arc<Map<String, Value>>,
}

pub struct Access {
    /// Whether any key, token setting or role is configured.
    pub configured: bool,
    pub roles: Roles,
    keys: HashMap<[u8; 32], KeyHolder>,
    api_key_header: HeaderName,
    /// `Vary`'s value for the key header, made once.
    vary_key_header: HeaderValue,
    jwt: Option<JwtVerifier>,
    default_role: String,
    trusted_proxies: Vec<IpNet>,
    limiter: RateLimiter,
    quotas: HashMap<String, Arc<Quota>>,
    /// What a cache miss costs, in requests.
    pub miss_cost: u32,
    /// Each role's OpenAPI document.
    openapi: HashMap<String, Bytes>,
    /// Partitions of roles whose answers depend on no claim, made once.
    partitions: HashMap<String, Arc<str>>,
    empty_claims: Arc<Map<String, Value>>,
}

/// What the rate limit said about a request, for its headers.
#[derive(Clone)]
pub struct Spent {
    pub decision: Decision,
    quota: Arc<Quota>,
}

impl Spent {
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        self.decision.write_headers(&self.quota, headers);
    }
}

impl Access {
    pub fn new(
        settings: &AccessSettings,
        roles: Roles,
        cluster: Option<Arc<Cluster>>,
        openapi: HashMap<String, Bytes>,
    ) -> anyhow::Result<Access> {
        let keys = settings
            .keys
            .iter()
            .map(|key| {
                let role = roles
                    .get(&key.role)
                    .expect("keys name configured roles")
                    .clone();
                let holder = KeyHolder {
                    name: key.name.as_str().into(),
                    role,
                    claims: Arc::new(key.claims.clone()),
                };
                (key.digest, holder)
            })
            .collect();
        let jwt = match &settings.jwt {
            Some(config) => Some(JwtVerifier::new(jwt_settings(config)?)?),
            None => None,
        };
        let quotas = roles
            .iter()
            .filter_map(|role| {
                let (requests, window) = role.quota?;
                Some((
                    role.name.to_string(),
                    Arc::new(Quota::new(role.name.clone(), requests, window)),
                ))
            })
            .collect();
        let partitions = roles
            .iter()
            .map(|role| {
                let partition = if settings.configured {
                    role.name.clone()
                } else {
                    Arc::from("")
                };
                (role.name.to_string(), partition)
            })
            .collect();
        Ok(Access {
            configured: settings.configured,
            keys,
            api_key_header: settings.api_key_header.clone(),
            vary_key_header: HeaderValue::from_str(settings.api_key_header.as_str())
                .expect("a header name is a header value"),
            jwt,
            default_role: settings
                .jwt
                .as_ref()
                .map(|j| j.default_role.clone())
                .unwrap_or_default(),
            trusted_proxies: settings.rate_limit.trusted_proxies.clone(),
            limiter: RateLimiter::new(cluster),
            quotas,
            miss_cost: settings.rate_limit.miss_cost,
            openapi,
            partitions,
            empty_claims: Arc::default(),
            roles,
        })
    }

    /// Who sent this request. Bad credentials are a 401 with
    /// `WWW-Authenticate` (RFC 6750); a credential for a role that is not
    /// configured is a 403.
    pub fn identify(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        metrics: &Metrics,
    ) -> Result<Viewer, ApiError> {
        let client = self.client_address(headers, peer);
        if !self.configured {
            return Ok(self.anonymous(client));
        }
        let bearer = headers.get(header::AUTHORIZATION);
        let key = headers.get(&self.api_key_header);
        let identified = match (bearer, key) {
            (None, None) => Ok(self.anonymous(client)),
            (Some(_), Some(_)) => Err(unauthorized(
                "invalid_request",
                format!(
                    "the request carries both Authorization and {}; send one credential",
                    self.api_key_header
                ),
            )),
            (Some(authorization), None) => match bearer_token(authorization) {
                Some(token) if looks_like_jwt(token) && self.jwt.is_some() => {
                    self.by_token(token, client)
                }
                Some(token) => self.by_key(token, client),
                None => Err(unauthorized(
                    "invalid_request",
                    "Authorization must be 'Bearer <API key or token>'".into(),
                )),
            },
            (None, Some(key)) => match key.to_str() {
                Ok(key) => self.by_key(key.trim(), client),
                Err(_) => Err(unauthorized(
                    "invalid_token",
                    format!("{} is not a key brisk issued", self.api_key_header),
                )),
            },
        };
        if identified.is_err() {
            metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        identified
    }

    /// A caller without credentials at `client`, before any proxy.
    pub fn anonymous(&self, client: IpAddr) -> Viewer {
        self.viewer(
            self.roles.anonymous(),
            &self.empty_claims,
            LimitKey::address(client),
            client,
            false,
        )
    }

    fn by_key(&self, key: &str, client: IpAddr) -> Result<Viewer, ApiError> {
        let digest = crate::auth::keys::digest(key);
        let holder = self.keys.get(&digest).ok_or_else(|| {
            unauthorized(
                "invalid_token",
                "the API key is not known here; `brisk key new --role ROLE` makes one".into(),
            )
        })?;
        Ok(self.viewer(
            &holder.role,
            &holder.claims,
            LimitKey::Key(holder.name.clone()),
            client,
            true,
        ))
    }

    fn by_token(&self, token: &str, client: IpAddr) -> Result<Viewer, ApiError> {
        let verifier = self.jwt.as_ref().expect("called with a verifier");
        let verified = verifier.verify(token).map_err(|error| {
            let detail = match &error {
                TokenError::Expired => "the token has expired; get a new one".to_string(),
                other => format!("the token is refused: {other}"),
            };
            unauthorized("invalid_token", detail)
        })?;
        let role_name = verified.role.as_deref().unwrap_or(&self.default_role);
        let role = self.roles.get(role_name).ok_or_else(|| {
            ApiError::new(
                Problem::Forbidden,
                format!("the token's role '{role_name}' is not a role this server knows"),
            )
        })?;
        let limit_key = match &verified.subject {
            Some(subject) => LimitKey::Subject(subject.clone()),
            None => LimitKey::address(client),
        };
        Ok(self.viewer(role, &verified.claims, limit_key, client, true))
    }

    fn viewer(
        &self,
        role: &Arc<Role>,
        claims: &Arc<Map<String, Value>>,
        limit_key: LimitKey,
        client: IpAddr,
        authenticated: bool,
    ) -> Viewer {
        let partition = if role.rule_claims.is_empty() {
            self.partitions[&*role.name].clone()
        } else {
            // the role, then each claim its rules read, as JSON
            let mut partition = role.name.to_string();
            for path in &role.rule_claims {
                partition.push(' ');
                let value = claim_at(claims, path).unwrap_or(&Value::Null);
                partition.push_str(&value.to_string());
            }
            Arc::from(partition)
        };
        Viewer {
            role: role.clone(),
            claims: claims.clone(),
            partition,
            limit_key,
            client,
            authenticated,
        }
    }

    /// Spends `cost` of the viewer's rate limit, if its role has one:
    /// `Err` with a 429 when it is spent.
    pub async fn spend(
        &self,
        viewer: &Viewer,
        cost: u32,
        metrics: &Metrics,
    ) -> Result<Option<Spent>, ApiError> {
        let Some(quota) = self.quotas.get(&*viewer.role.name) else {
            return Ok(None);
        };
        let decision = self.limiter.spend(quota, &viewer.limit_key, cost).await;
        let spent = Spent {
            decision,
            quota: quota.clone(),
        };
        if decision.allowed {
            return Ok(Some(spent));
        }
        metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
        let mut headers = HeaderMap::new();
        spent.write_headers(&mut headers);
        let mut error = ApiError::new(
            Problem::QuotaExceeded,
            format!(
                "the rate limit of role {} is {} requests per {} s, and this client has spent it; \
                 retry after {} s (Retry-After), or spread requests out",
                quota.name,
                quota.requests,
                quota.window.as_secs(),
                decision.retry_after.as_secs_f64().ceil() as u64
            ),
        );
        for (name, value) in headers.iter() {
            error = error.with_header(name.clone(), value.clone());
        }
        Err(error.with_extension(
            "violated-policies",
            Value::from(vec![quota.name.to_string()]),
        ))
    }

    /// Whether rate limits run locally because Redis is away.
    pub fn limits_local_fallback(&self) -> bool {
        self.limiter.is_local_fallback()
    }

    pub fn limit_fallbacks(&self) -> u64 {
        self.limiter.fallbacks()
    }

    /// The OpenAPI document of what `role` may do.
    pub fn openapi(&self, role: &Role) -> Bytes {
        self.openapi[&*role.name].clone()
    }

    /// The client: the peer, or, when the peer is a trusted proxy, the
    /// address it forwarded (the last one in `X-Forwarded-For`, or
    /// `Forwarded: for=`, that is not itself a trusted proxy).
    fn client_address(&self, headers: &HeaderMap, peer: IpAddr) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for)
            .collect::<Vec<_>>();
        let chain = if forwarded.is_empty() {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .collect()
        } else {
            forwarded
        };
        chain
            .into_iter()
            .rev()
            .find(|address| !self.trusts(*address))
            .unwrap_or(peer)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// Headers that keep shared caches truthful once answers differ by
    /// caller: `Vary` on the credentials, and `private` for answers to
    /// callers that sent them (RFC 9111 §3.5 covers `Authorization` alone,
    /// not an API key header).
    pub fn finish_headers(&self, viewer: &Viewer, headers: &mut HeaderMap) {
        if !self.configured || !headers.contains_key(header::CACHE_CONTROL) {
            return;
        }
        headers.append(header::VARY, HeaderValue::from_static("authorization"));
        headers.append(header::VARY, self.vary_key_header.clone());
        if viewer.authenticated
            && let Some(control) = headers.get(header::CACHE_CONTROL)
            && let Ok(control) = control.to_str()
            && !control.contains("private")
            && let Ok(private) = HeaderValue::from_str(&format!("private, {control}"))
        {
            headers.insert(header::CACHE_CONTROL, private);
        }
    }
}

fn jwt_settings(config: &JwtConfig) -> anyhow::Result<JwtSettings> {
    let algorithms = config
        .algorithms
        .iter()
        .map(|name| {
            name.parse::<jsonwebtoken::Algorithm>().map_err(|_| {
                anyhow::anyhow!(
                    "auth.jwt.algorithms: '{name}' is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(JwtSettings {
        algorithms,
        secret: config.secret.clone(),
        public_key_file: config.public_key_file.as_ref().map(Into::into),
        jwks_file: config.jwks_file.as_ref().map(Into::into),
        audience: config.audience.clone(),
        issuer: config.issuer.clone(),
        leeway: std::time::Duration::from_secs(config.leeway_seconds),
        role_claim: config.role_claim.clone(),
    })
}

fn bearer_token(value: &HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Three base64url parts: a JWS; anything else is taken for an API key.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The address in one `Forwarded` element's `for=` (RFC 7239), if any.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        let host = match value.strip_prefix('[') {
            Some(v6) => v6.split(']').next()?,
            None => value.split(':').next()?,
        };
        host.parse().ok()
    })
}

/// 401 with the RFC 6750 challenge.
fn unauthorized(code: &'static str, detail: String) -> ApiError {
    let challenge = format!(
        "Bearer realm=\"brisk\", error=\"{code}\", error_description=\"{}\"",
        detail.replace(['"', '\\'], "'")
    );
    let error = ApiError::new(Problem::Unauthorized, detail);
    match HeaderValue::from_str(&challenge) {
        Ok(value) => error.with_header(header::WWW_AUTHENTICATE, value),
        Err(_) => error.with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"brisk\""),
        ),
    }
}
