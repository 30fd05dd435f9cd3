//! `identity:` -> how netwarden learns who the client is from an auth layer
//! in front (a signed token, or a trusted auth proxy's headers), and rules'
//! `who:` conditions on it (issue 26). Compiled here; verified by
//! `crate::identity`, compared by `crate::engine::who`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;

use super::compile::Cx;
use super::raw::{OneOrMany, RawIdentity, RawJwt, RawRule, RawWho, S};
use crate::engine::accounts::AccountPattern;
use crate::engine::who::Who;

pub mod defaults {
    use std::time::Duration;

    /// Clocks differ by seconds; a token that expired a minute ago is one.
    pub const LEEWAY: Duration = Duration::from_secs(30);
    pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
    /// Keys rotate over days; an hour keeps a removed key for at most that.
    pub const REFRESH: Duration = Duration::from_secs(3600);
    /// A token with a `kid` the keys lack fetches them again at most this
    /// often: random `kid`s cannot make netwarden hammer the key URL.
    pub const REFETCH_INTERVAL: Duration = Duration::from_secs(300);
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// A JWKS is a few KiB; Google's is under 2 KiB.
    pub const MAX_KEY_BYTES: u64 = 256 * 1024;
    /// The longest token read: Cloudflare's and IAP's are about 1 KiB,
    /// an OIDC token with many groups a few KiB.
    pub const MAX_TOKEN: usize = 16 * 1024;
}

/// The identity section, compiled.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    pub source: Source,
    /// `log_email: true`: the decision line carries the e-mail in clear.
    pub log_email: bool,
}

/// Where the identity comes from.
#[derive(Clone, Debug)]
pub enum Source {
    Jwt(Arc<JwtSettings>),
    Headers(HeaderSettings),
}

/// Which auth layer's conventions a `jwt:` follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    CloudflareAccess,
    GoogleIap,
    AwsAlb,
    Oidc,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::CloudflareAccess => "cloudflare_access",
            Preset::GoogleIap => "google_iap",
            Preset::AwsAlb => "aws_alb",
            Preset::Oidc => "oidc",
        }
    }
}

/// Where the verification keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keys {
    /// A JWKS (RFC 7517) at this URL.
    Jwks(String),
    /// An OpenID Provider's configuration (OpenID Connect Discovery 1.0
    /// §4), whose `jwks_uri` names the JWKS.
    Discovery(String),
    /// AWS ALB: one PEM public key per `kid`, at `{base}/{kid}`.
    PemPerKid(String),
}

impl Keys {
    pub fn url(&self) -> &str {
        match self {
            Keys::Jwks(u) | Keys::Discovery(u) | Keys::PemPerKid(u) => u,
        }
    }
}

/// `identity.jwt:`, compiled.
#[derive(Clone, Debug)]
pub struct JwtSettings {
    pub preset: Preset,
    pub issuer: Option<String>,
    /// The token's `aud` must name one of these (none: not checked, only
    /// for `aws_alb`, whose tokens carry no `aud` but a `signer`).
    pub audiences: Vec<String>,
    /// `aws_alb`: the load balancer's ARN the token's header names.
    pub signer: Option<String>,
    pub header: HeaderName,
    /// The header's value is `Bearer <token>` (`Authorization`).
    pub bearer: bool,
    pub algorithms: Vec<Algorithm>,
    pub keys: Keys,
    pub leeway: Duration,
    pub refresh: Duration,
    pub refetch_interval: Duration,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub allow_http: bool,
    pub subject_claim: String,
    pub email_claim: String,
    pub groups_claim: String,
}

/// `identity.headers:`, compiled: believed only from trusted proxies.
#[derive(Clone, Debug)]
pub struct HeaderSettings {
    pub user: HeaderName,
    pub email: Option<HeaderName>,
    pub groups: Option<HeaderName>,
}

impl HeaderSettings {
    pub fn names(&self) -> impl Iterator<Item = &HeaderName> {
        std::iter::once(&self.user)
            .chain(self.email.as_ref())
            .chain(self.groups.as_ref())
    }
}

/// Headers that auth proxies set and consoles believe (oauth2-proxy,
/// Authelia, Authentik, Pomerium, nginx's auth_request recipes, Apache's
/// REMOTE_USER as a header, Grafana's and JupyterHub's auth-proxy modes):
/// from a client that is not a trusted proxy they are removed before the
/// request reaches the console, whatever the policy says (a console set up
/// to trust its auth proxy would otherwise believe the client): the list
/// is [`is_identity_header`]'s.
///
/// Families of identity headers, by prefix (a claim a header, an extra
/// attribute a header).
pub const IDENTITY_PREFIXES: &[&str] = &[
    "x-auth-request-",
    // Kubernetes' authenticating proxy: -user, -group, -uid, -extra-*.
    "x-remote-",
    "impersonate-",
    "oidc-claim-",
    "x-vouch-",
    "x-pomerium-claim-",
    "x-webauth-",
    "x-authentik-",
    "x-ms-client-principal",
    "x-ms-token-",
    "tailscale-user-",
    // Client certificates, as TLS-terminating proxies pass them on (nginx's
    // X-SSL-Client-S-DN and the like, Traefik's, AWS ALB mTLS's, RFC 9440's
    // Client-Cert and Client-Cert-Chain): the third red-team review found
    // whole families where single names were listed.
    "x-ssl-client-",
    "ssl-client-",
    "x-client-cert",
    "client-cert",
    "x-forwarded-tls-client-cert",
    "x-tls-client-",
    "x-amzn-mtls-",
    // The fourth red-team review of issue 26 found these families:
    // HAProxy's mTLS set, Cloudflare's mTLS forwarding, WebLogic's and
    // WebSphere's private headers, Jetty's Proxy-* (hop-by-hop to a
    // proxy, read by Jetty as "secure"), Tailscale, App Engine, OIDC
    // modules, Shibboleth and mod_auth_mellon attributes.
    "x-ssl-",
    "cf-client-cert-",
    "wl-proxy-",
    "$ws",
    "proxy-",
    "tailscale-",
    "x-appengine-",
    "x-oidc-claim-",
    "shib-",
    "mellon-",
];

/// Whether `name` (lower case, `-` spelling) is one of the headers auth
/// proxies say who the user is with (a `match`: every request's headers
/// are looked up in it).
pub fn is_identity_header(name: &str) -> bool {
    let listed = matches!(
        name,
        "remote-user"
            | "remote-email"
            | "remote-groups"
            | "remote-name"
            | "x-remote-user"
            | "x-remote-email"
            | "x-remote-groups"
            | "x-forwarded-user"
            | "x-forwarded-email"
            | "x-forwarded-groups"
            | "x-forwarded-preferred-username"
            | "x-forwarded-access-token"
            | "x-auth-request-user"
            | "x-auth-request-email"
            | "x-auth-request-groups"
            | "x-auth-request-preferred-username"
            | "x-auth-request-access-token"
            | "x-webauth-user"
            | "x-webauth-email"
            | "x-webauth-groups"
            | "x-authentik-username"
            | "x-authentik-email"
            | "x-authentik-groups"
            | "x-pomerium-claim-email"
            | "x-pomerium-claim-groups"
            | "x-pomerium-jwt-assertion"
            | "x-user"
            | "x-email"
        // Unsigned companions of the identity-aware proxies the presets read
        // (second red-team review of issue 26: a client with its own token
        // and these set to an admin's e-mail reached the console).
            | "cf-access-authenticated-user-email"
            | "x-goog-authenticated-user-email"
            | "x-goog-authenticated-user-id"
            | "x-amzn-oidc-identity"
            | "x-amzn-oidc-accesstoken"
            | "x-ms-client-principal"
            | "x-ms-client-principal-name"
            | "x-ms-client-principal-id"
            | "x-ms-client-principal-idp"
            | "tailscale-user-login"
            | "tailscale-user-name"
            | "tailscale-user-profile-pic"
            | "x-remote-group"
            | "x-vouch-user"
            | "x-auth-user"
            | "x-proxy-user"
            | "x-forwarded-login"
            | "x-authenticated-user"
            | "x-authenticated-userid"
            | "x-consumer-username"
            | "x-consumer-id"
            | "x-consumer-custom-id"
            | "x-credential-identifier"
            | "x-userinfo"
            | "x-id-token"
            | "x-access-token"
            | "x-oidc-identity"
            | "x-token-user-email"
            | "auth-user"
        // Kubernetes' authenticating-proxy and impersonation headers.
            | "impersonate-user"
            | "impersonate-group"
            | "impersonate-uid"
        // Client certificates as a TLS-terminating proxy passes them on.
            | "x-ssl"
            | "x-client-s-dn"
            | "x-client-crt"
            | "x-cert"
            | "x-forwarded-ssl-client-cert"
            | "x-endpoint-api-userinfo"
            | "x-apigateway-api-userinfo"
            | "x-jwt-payload"
            | "x-auth-username"
            | "x-auth-userid"
            | "x-auth-email"
            | "x-auth-roles"
            | "x-auth-groups"
            | "x-auth-subject"
            | "x-user-email"
            | "x-user-id"
            | "x-proxy-roles"
            | "x-authenticated-groups"
            | "x-authenticated-scope"
            | "x-anonymous-consumer"
            | "x-forwarded-name"
            | "x-forwarded-uid"
            | "x-forwarded-roles"
            | "x-forwarded-mail"
            | "remote-uid"
            | "oidc-access-token"
            | "l5d-client-id"
            | "es-security-runas-user"
            | "x-shib-remote-user"
            | "eppn"
            | "x-real-user"
            | "x-rstudio-username"
            | "x-token-subject"
            | "http-remote-user"
            | "http-x-remote-user"
            | "x-ssl-cert"
            | "x-client-certificate"
            | "x-arr-clientcert"
            | "gap-auth"
            | "x-ssl-client-dn"
            | "x-ssl-client-verify"
            | "x-ssl-client-cert"
            | "ssl-client-verify"
            | "ssl-client-cert"
            | "ssl-client-s-dn"
            | "x-client-cert"
            | "x-client-verify"
            | "x-client-dn"
            | "x-forwarded-client-cert"
    );
    listed || IDENTITY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The header and algorithms each preset reads.
fn preset_defaults(p: Preset) -> (&'static str, bool, &'static [Algorithm]) {
    match p {
        Preset::CloudflareAccess => ("cf-access-jwt-assertion", false, &[Algorithm::RS256]),
        Preset::GoogleIap => ("x-goog-iap-jwt-assertion", false, &[Algorithm::ES256]),
        Preset::AwsAlb => ("x-amzn-oidc-data", false, &[Algorithm::ES256]),
        Preset::Oidc => ("authorization", true, &[Algorithm::RS256, Algorithm::ES256]),
    }
}

impl Cx<'_, '_> {
    pub(super) fn identity(&mut self, raw: Option<&S<RawIdentity>>) -> Option<IdentitySettings> {
        let raw = raw?;
        let i = &raw.value;
        let source = match (&i.jwt, &i.headers) {
            (Some(j), None) => Source::Jwt(Arc::new(self.jwt(j)?)),
            (None, Some(h)) => Source::Headers(self.identity_headers(h)?),
            _ => {
                self.error(
                    &raw.referenced,
                    "identity: needs exactly one of 'jwt' and 'headers'".into(),
                    Some("'jwt' verifies a signed token (Cloudflare Access, IAP, ALB, OIDC); 'headers' believes a trusted auth proxy (oauth2-proxy, Authelia)".into()),
                );
                return None;
            }
        };
        Some(IdentitySettings {
            source,
            log_email: i.log_email.as_ref().is_some_and(|b| b.value),
        })
    }

    fn jwt(&mut self, raw: &S<RawJwt>) -> Option<JwtSettings> {
        let j = &raw.value;
        let errors = self.error_count();
        let preset = match j.preset.as_ref().map(|p| p.value.as_str()) {
            None | Some("oidc") => Preset::Oidc,
            Some("cloudflare_access") => Preset::CloudflareAccess,
            Some("google_iap") => Preset::GoogleIap,
            Some("aws_alb") => Preset::AwsAlb,
            Some(other) => {
                let at = j
                    .preset
                    .as_ref()
                    .map(|p| p.referenced)
                    .unwrap_or(raw.referenced);
                self.error(
                    &at,
                    format!("identity.jwt: unknown preset '{other}'"),
                    Some("use cloudflare_access, google_iap, aws_alb or oidc".into()),
                );
                Preset::Oidc
            }
        };
        let (header, bearer, algorithms) = preset_defaults(preset);
        let issuer = j.issuer.as_ref().map(|i| i.value.trim().to_string());
        let url = |cx: &mut Self, v: &S<String>, what: &str| -> Option<String> {
            cx.https_url(v, what, j.allow_http.as_ref().is_some_and(|a| a.value))
        };
        let keys = match (&j.keys_url, &j.discovery, preset) {
            (Some(u), None, Preset::AwsAlb) => url(self, u, "keys_url").map(Keys::PemPerKid),
            (Some(u), None, _) => url(self, u, "keys_url").map(Keys::Jwks),
            (None, Some(u), Preset::Oidc) => url(self, u, "discovery").map(Keys::Discovery),
            (None, None, Preset::GoogleIap) => Some(Keys::Jwks(
                "https://www.gstatic.com/iap/verify/public_key-jwk".into(),
            )),
            (None, None, Preset::CloudflareAccess) => match &issuer {
                Some(iss) if iss.starts_with("https://") => Some(Keys::Jwks(format!(
                    "{}/cdn-cgi/access/certs",
                    iss.trim_end_matches('/')
                ))),
                _ => None,
            },
            (None, None, Preset::Oidc) => issuer.as_ref().map(|iss| {
                Keys::Discovery(format!(
                    "{}/.well-known/openid-configuration",
                    iss.trim_end_matches('/')
                ))
            }),
            _ => None,
        };
        if keys.is_none() && self.error_count() == errors {
            self.error(
                &raw.referenced,
                format!("identity.jwt: where are the {} keys?", preset.as_str()),
                Some(match preset {
                    Preset::AwsAlb => "give keys_url: https://public-keys.auth.elb.REGION.amazonaws.com".into(),
                    Preset::CloudflareAccess => "give issuer: https://TEAM.cloudflareaccess.com (its keys are at /cdn-cgi/access/certs)".into(),
                    _ => "give keys_url (a JWKS) or discovery (the provider's .well-known/openid-configuration), not both".into(),
                }),
            );
        }
        if issuer.is_none() && preset != Preset::GoogleIap {
            self.error(
                &raw.referenced,
                "identity.jwt: 'issuer' is required: a token from another issuer must not be believed".into(),
                Some("give the issuer exactly as tokens carry it in 'iss'".into()),
            );
        }
        let issuer = issuer.or_else(|| {
            (preset == Preset::GoogleIap).then(|| "https://cloud.google.com/iap".to_string())
        });
        let audiences: Vec<String> = match &j.audience {
            None => Vec::new(),
            Some(a) => match &a.value {
                OneOrMany::One(s) => vec![s.clone()],
                OneOrMany::Many(v) => v.clone(),
            },
        };
        if audiences.is_empty() && preset != Preset::AwsAlb {
            self.error(
                j.audience.as_ref().map_or(&raw.referenced, |a| &a.referenced),
                "identity.jwt: 'audience' is required: a token minted for another application must not be believed".into(),
                Some(match preset {
                    Preset::CloudflareAccess => "the application's AUD tag, from its Access settings".into(),
                    Preset::GoogleIap => "/projects/NUMBER/global/backendServices/ID (or /projects/NUMBER/apps/PROJECT)".into(),
                    _ => "the client id the provider issues tokens to".into(),
                }),
            );
        }
        let signer = j.signer.as_ref().map(|s| s.value.trim().to_string());
        if preset == Preset::AwsAlb && signer.is_none() {
            self.error(
                &raw.referenced,
                "identity.jwt: aws_alb needs 'signer': the load balancer's ARN, which its tokens name".into(),
                Some("arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/app/NAME/ID".into()),
            );
        }
        let header = match &j.header {
            Some(h) => {
                match HeaderName::try_from(h.value.trim().to_ascii_lowercase()) {
                    Ok(n) => n,
                    Err(_) => {
                        self.error(
                        &h.referenced,
                        format!("identity.jwt: '{}' is not a header name", h.value),
                        Some("write the header the auth layer sets, such as Cf-Access-Jwt-Assertion".into()),
                    );
                        return None;
                    }
                }
            }
            None => HeaderName::from_static(header),
        };
        let bearer = bearer && header == http::header::AUTHORIZATION;
        let algorithms = match &j.algorithms {
            None => algorithms.to_vec(),
            Some(list) => {
                let mut out = Vec::new();
                for a in &list.value {
                    match a.value.parse::<Algorithm>() {
                        Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) => self.error(
                            &a.referenced,
                            format!("identity.jwt: {} is refused", a.value),
                            Some("an HMAC key is a shared secret: a key URL publishes public keys, and an HS token checked with one can be forged by anyone who reads it".into()),
                        ),
                        Ok(alg) => out.push(alg),
                        Err(_) => self.error(
                            &a.referenced,
                            format!("identity.jwt: '{}' is not an algorithm netwarden verifies", a.value),
                            Some("use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA ('none' never)".into()),
                        ),
                    }
                }
                if out.is_empty() && list.value.is_empty() {
                    self.error(
                        &list.referenced,
                        "identity.jwt: 'algorithms' is empty".into(),
                        Some("name the algorithm the auth layer signs with".into()),
                    );
                }
                out
            }
        };
        let leeway = self.duration(j.leeway.as_ref(), defaults::LEEWAY);
        if leeway > defaults::MAX_LEEWAY
            && let Some(l) = &j.leeway
        {
            self.error(
                &l.referenced,
                "identity.jwt: leeway is over 5m".into(),
                Some("a small leeway covers clocks that differ; a large one keeps expired tokens valid".into()),
            );
        }
        let refresh = self.duration(j.refresh.as_ref(), defaults::REFRESH);
        if let Some(r) = &j.refresh
            && refresh < std::time::Duration::from_secs(60)
        {
            self.error(
                &r.referenced,
                "identity.jwt: refresh is shorter than 1m".into(),
                Some("providers rotate keys over days; 1h is the default".into()),
            );
        }
        let refetch_interval =
            self.duration(j.refetch_interval.as_ref(), defaults::REFETCH_INTERVAL);
        if let Some(r) = &j.refetch_interval
            && refetch_interval < std::time::Duration::from_secs(1)
        {
            self.error(
                &r.referenced,
                "identity.jwt: refetch_interval is shorter than 1s".into(),
                Some(
                    "each token with a new kid may fetch the keys this often: 5m is the default"
                        .into(),
                ),
            );
        }
        let timeout = self.duration(j.timeout.as_ref(), defaults::TIMEOUT);
        let claim = |v: &Option<S<String>>, d: &str| {
            v.as_ref()
                .map_or_else(|| d.to_string(), |c| c.value.clone())
        };
        if self.error_count() > errors {
            return None;
        }
        Some(JwtSettings {
            preset,
            issuer,
            audiences,
            signer,
            header,
            bearer,
            algorithms,
            keys: keys?,
            leeway,
            refresh,
            refetch_interval,
            timeout,
            ca_file: j.ca_file.as_ref().map(|p| self.base.join(&p.value)),
            allow_http: j.allow_http.as_ref().is_some_and(|a| a.value),
            subject_claim: claim(&j.subject_claim, "sub"),
            email_claim: claim(&j.email_claim, "email"),
            groups_claim: claim(&j.groups_claim, "groups"),
        })
    }

    fn https_url(&mut self, v: &S<String>, what: &str, allow_http: bool) -> Option<String> {
        let url = v.value.trim();
        let parsed: Option<http::Uri> = url.parse().ok();
        let scheme = parsed.as_ref().and_then(|u| u.scheme_str()).unwrap_or("");
        let ok = parsed
            .as_ref()
            .and_then(|u| u.host())
            .is_some_and(|h| !h.is_empty())
            && (scheme == "https" || (scheme == "http" && allow_http))
            && !url.contains('@');
        if !ok {
            self.error(
                &v.referenced,
                format!("identity.jwt: {what} must be an https URL without credentials"),
                Some("anyone on the path could hand netwarden their own keys over http".into()),
            );
            return None;
        }
        Some(url.to_string())
    }

    fn identity_headers(
        &mut self,
        raw: &S<super::raw::RawIdentityHeaders>,
    ) -> Option<HeaderSettings> {
        let h = &raw.value;
        let (user, email, groups) = match h.preset.as_ref().map(|p| p.value.as_str()) {
            None => ("", "", ""),
            Some("oauth2_proxy") => (
                "x-auth-request-user",
                "x-auth-request-email",
                "x-auth-request-groups",
            ),
            Some("authelia") => ("remote-user", "remote-email", "remote-groups"),
            Some(other) => {
                let at = h.preset.as_ref().map_or(raw.referenced, |p| p.referenced);
                self.error(
                    &at,
                    format!("identity.headers: unknown preset '{other}'"),
                    Some("use oauth2_proxy or authelia, or name the headers".into()),
                );
                return None;
            }
        };
        let mut bad = false;
        let mut name =
            |cx: &mut Self, v: &Option<S<String>>, d: &'static str| -> Option<HeaderName> {
                match v {
                    Some(s) => match HeaderName::try_from(s.value.trim().to_ascii_lowercase()) {
                        Ok(n) => Some(n),
                        Err(_) => {
                            cx.error(
                                &s.referenced,
                                format!("identity.headers: '{}' is not a header name", s.value),
                                None,
                            );
                            bad = true;
                            None
                        }
                    },
                    None if d.is_empty() => None,
                    None => Some(HeaderName::from_static(d)),
                }
            };
        let user = name(self, &h.user, user);
        let email = name(self, &h.email, email);
        let groups = name(self, &h.groups, groups);
        if bad {
            return None;
        }
        let Some(user) = user else {
            self.error(
                &raw.referenced,
                "identity.headers: which header names the user?".into(),
                Some("give 'user: X-Auth-Request-User' (and 'email', 'groups'), or a preset: oauth2_proxy, authelia".into()),
            );
            return None;
        };
        Some(HeaderSettings {
            user,
            email,
            groups,
        })
    }

    /// A rule's `who:`; `Err(())` when it is wrong (said).
    pub(super) fn rule_who(
        &mut self,
        rule: &RawRule,
        ctx: &str,
        identity: bool,
    ) -> Result<Option<Who>, ()> {
        let Some(raw) = &rule.who else {
            return Ok(None);
        };
        let w: &RawWho = &raw.value;
        let mut ok = true;
        if !identity {
            self.error(
                &raw.referenced,
                format!("{ctx}: 'who' needs an 'identity:' section"),
                Some("say where the identity comes from: identity: { jwt: { preset: cloudflare_access, ... } } or identity: { headers: { preset: oauth2_proxy } } (docs/identity.md)".into()),
            );
            ok = false;
        }
        let groups: Vec<Box<str>> = w
            .groups
            .iter()
            .flat_map(|g| g.value.iter())
            .map(|g| g.value.as_str().into())
            .collect();
        let mut emails = Vec::new();
        for e in w.emails.iter().flat_map(|e| e.value.iter()) {
            match AccountPattern::parse_email(&e.value) {
                Ok(p) => emails.push(p),
                Err(why) => {
                    self.error(
                        &e.referenced,
                        format!("{ctx}: who.emails: '{}' {why}", e.value),
                        Some(
                            "write an address (yamada@example.jp) or a pattern (*@example.jp)"
                                .into(),
                        ),
                    );
                    ok = false;
                }
            }
        }
        let claims: Vec<(Box<str>, Box<str>)> = w
            .claims
            .0
            .iter()
            .map(|(k, v)| (k.value.as_str().into(), v.value.as_str().into()))
            .collect();
        if groups.is_empty() && emails.is_empty() && claims.is_empty() && ok {
            self.error(
                &raw.referenced,
                format!("{ctx}: 'who' names nobody"),
                Some("give groups, emails or claims".into()),
            );
            ok = false;
        }
        if ok {
            Ok(Some(Who {
                groups,
                emails,
                claims,
            }))
        } else {
            Err(())
        }
    }
}
