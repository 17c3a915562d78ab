//! OAuth 2 refresh-token grants, one way for every channel that uses them (Etsy, Amazon's
//! Login with Amazon, eBay: SPEC section 5a).
//!
//! A store's credentials hold a long-lived `refresh_token` (and, where the channel hands
//! one out at connection, an `access_token`). [`TokenCache`] exchanges the refresh token
//! for an access token when it has none or the one it has is about to expire, reuses it
//! until then, and lets a connector that got a 401 with a token ask for a new one once
//! (`invalidate`). Only one refresh is in flight at a time: callers that find the token
//! missing while another refreshes wait for that refresh instead of spending the refresh
//! token twice (on Etsy, whose refresh tokens rotate, the second exchange would be refused).
//!
//! A refresh that the channel answers with a 4xx (a revoked app, an expired or rotated-away
//! refresh token) is final: the cache remembers the sentence (`refused`), every later call
//! fails at once with `ChannelError::AuthRefused`, and the dispatcher pauses the store
//! rather than hammering the token host. 5xx, timeouts and 429 are passing troubles:
//! the caller retries as it does any call.
//!
//! New tokens are handed back as the store's whole credentials (`rotated_credentials`),
//! for the caller to seal and store; nothing here writes anything down.
//!
//! Expiry is measured on the monotonic clock (`Instant`): it only times, it stamps nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::{ChannelError, ConfigError};
use crate::http::{read_body_start, truncate_detail};

/// A token is refreshed this long before the channel said it expires, so that a call
/// started with it does not arrive with a token that expired on the way.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Longest an access token is reused when the channel gave no `expires_in`: an hour, the
/// usual lifetime (Etsy and Login with Amazon both document 3600 s); a 401 before then
/// refreshes it anyway.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Most bytes of a token answer read: a token answer is a few hundred bytes.
pub const TOKEN_BODY_BYTES_MAX: usize = 64 * 1024;

/// How one channel exchanges a refresh token.
#[derive(Clone)]
pub struct Grant {
    pub channel: &'static str,
    /// The store's code, for messages.
    pub store: String,
    /// The token endpoint (`{base}/v3/public/oauth/token`, `{host}/auth/o2/token`, ...).
    pub token_url: String,
    /// Form fields sent beside `grant_type=refresh_token` and `refresh_token`
    /// (`client_id`, `client_secret`, `scope`, as the channel documents).
    pub form: Vec<(&'static str, String)>,
    /// HTTP Basic client credentials (eBay sends `client_id:client_secret` so), else `None`.
    pub basic: Option<(String, String)>,
}

/// Secrets never reach a log.
impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("channel", &self.channel)
            .field("store", &self.store)
            .field("token_url", &self.token_url)
            .field("form", &self.form.iter().map(|(k, _)| *k).collect::<Vec<_>>())
            .field("basic", &self.basic.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The standard token answer (RFC 6749 section 5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

struct Tokens {
    access: Option<(String, Instant)>,
    refresh: String,
    /// The store's credentials with every token received so far, once one was.
    rotated: Option<serde_json::Value>,
    refused: Option<String>,
}

/// One store's tokens (module docs).
pub struct TokenCache {
    grant: Grant,
    timeout: Duration,
    credentials: serde_json::Value,
    tokens: Mutex<Tokens>,
    /// Held while a refresh is out, so that only one is.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("grant", &self.grant).finish_non_exhaustive()
    }
}

impl TokenCache {
    /// Reads `refresh_token` (required) and `access_token` (optional: used until the first
    /// 401, its lifetime unknown) from the store's credentials.
    pub fn new(grant: Grant, credentials: &serde_json::Value, timeout: Duration) -> Result<TokenCache, ConfigError> {
        let text = |field: &str| credentials.get(field).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
        let refresh = text("refresh_token").ok_or_else(|| ConfigError::MissingCredential {
            channel: grant.channel,
            store: grant.store.clone(),
            field: "refresh_token",
            hint: "connect the store again to get one",
        })?;
        let access = text("access_token").map(|t| (t.to_string(), Instant::now() + DEFAULT_LIFETIME));
        Ok(TokenCache {
            tokens: Mutex::new(Tokens { access, refresh: refresh.to_string(), rotated: None, refused: None }),
            grant,
            timeout,
            credentials: credentials.clone(),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    /// An access token good for a call now: the cached one, or a fresh one.
    pub async fn access_token(&self, client: &reqwest::Client) -> Result<String, ChannelError> {
        if let Some(token) = self.usable()? {
            return Ok(token);
        }
        let _one = self.refreshing.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(token) = self.usable()? {
            return Ok(token);
        }
        self.refresh(client).await
    }

    /// The channel answered 401 to a call made with `token`: the next `access_token`
    /// refreshes, unless another caller already replaced that token.
    pub fn invalidate(&self, token: &str) {
        let mut t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if t.access.as_ref().is_some_and(|(have, _)| have == token) {
            t.access = None;
        }
    }

    /// The store's credentials with the tokens received since it was built, if any were.
    pub fn rotated_credentials(&self) -> Option<serde_json::Value> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).rotated.clone()
    }

    /// Why the channel refused to refresh, once it did.
    pub fn refused(&self) -> Option<String> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).refused.clone()
    }

    fn usable(&self) -> Result<Option<String>, ChannelError> {
        let t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(detail) = &t.refused {
            return Err(self.refused_error(detail.clone()));
        }
        Ok(t.access.as_ref().filter(|(_, until)| Instant::now() < *until).map(|(token, _)| token.clone()))
    }

    fn refused_error(&self, detail: String) -> ChannelError {
        ChannelError::AuthRefused { channel: self.grant.channel, store: self.grant.store.clone(), detail }
    }

    async fn refresh(&self, client: &reqwest::Client) -> Result<String, ChannelError> {
        let channel = self.grant.channel;
        let refresh = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).refresh.clone();
        let mut form: Vec<(&str, String)> = vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh)];
        form.extend(self.grant.form.iter().cloned());
        let mut request = client.post(&self.grant.token_url).timeout(self.timeout).form(&form);
        if let Some((id, secret)) = &self.grant.basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ChannelError::Unavailable { channel, detail: format!("the token refresh failed: {e}") })?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            let retry_after_ms = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .map(|s| s.saturating_mul(1000));
            if status.as_u16() == 429 {
                return Err(ChannelError::Throttled { channel, retry_after_ms });
            }
            return Err(ChannelError::Unavailable {
                channel,
                detail: format!("the token endpoint answered {}", status.as_u16()),
            });
        }
        if !status.is_success() {
            let body = read_body_start(response).await;
            let said = truncate_detail(&body).unwrap_or_default();
            let detail = format!("refreshing the access token was refused ({}): {said}", status.as_u16());
            self.tokens.lock().unwrap_or_else(|e| e.into_inner()).refused = Some(detail.clone());
            return Err(self.refused_error(detail));
        }
        let bytes = response.bytes().await.map_err(|e| ChannelError::Unavailable {
            channel,
            detail: format!("the token answer could not be read: {e}"),
        })?;
        if bytes.len() > TOKEN_BODY_BYTES_MAX {
            return Err(ChannelError::Unavailable { channel, detail: "the token answer is too large".into() });
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|e| ChannelError::Unavailable {
            channel,
            detail: format!("the token answer is not an OAuth token: {e}"),
        })?;
        let lifetime = answer.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let until = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN).max(Duration::from_secs(1));
        let mut t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let mut credentials = t.rotated.clone().unwrap_or_else(|| self.credentials.clone());
        if let Some(object) = credentials.as_object_mut() {
            object.insert("access_token".into(), answer.access_token.clone().into());
            if let Some(new) = &answer.refresh_token {
                object.insert("refresh_token".into(), new.clone().into());
            }
        }
        if let Some(new) = answer.refresh_token {
            t.refresh = new;
        }
        t.access = Some((answer.access_token.clone(), until));
        t.rotated = Some(credentials);
        Ok(answer.access_token)
    }
}
