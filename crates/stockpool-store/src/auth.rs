//! Workspaces, API tokens and dashboard users.
//!
//! An API token is 32 random bytes shown once (`sp_` + hex); only its SHA-256 is stored,
//! which is enough for a secret of that entropy and keeps the per-request check cheap.
//! Dashboard passwords are low-entropy, so they are stored as Argon2id hashes. A dashboard
//! login opens a session: a random token (stored as SHA-256, like API tokens) for the
//! session cookie and a random CSRF token that every form of the session must carry.

use crate::db::args;
use crate::{Storage, StoreError};
use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// How long a dashboard session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// A dashboard session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub workspace: i64,
    pub email: String,
    /// Every form posted in this session must carry it.
    pub csrf: String,
}

/// Characters in a workspace name.
pub const WORKSPACE_NAME_LEN_MAX: usize = 100;

/// Password hashes computed or checked at once (Argon2id takes tens of milliseconds of a
/// core and 19 MiB each): the rest wait their turn instead of taking every core.
pub const HASHES_AT_ONCE_MAX: usize = 2;
/// Longest a password check waits for its turn before the login is answered 503.
pub const HASH_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest password accepted (and checked).
pub const PASSWORD_BYTES_MAX: usize = 1024;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHES_AT_ONCE_MAX);

/// Runs `f` (an Argon2 hash or check) on the blocking pool, at most `HASHES_AT_ONCE_MAX`
/// at a time, so request threads stay free while a flood of logins hashes.
async fn hashing<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, StoreError> {
    let permit = tokio::time::timeout(HASH_WAIT_MAX, HASHING.acquire())
        .await
        .map_err(|_| StoreError::Unavailable)?
        .map_err(|_| StoreError::Unavailable)?;
    let done = tokio::task::spawn_blocking(f).await;
    drop(permit);
    done.map_err(|e| StoreError::Corrupt(format!("a password check panicked: {e}")))
}

fn check_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash of a random password, made once, that an unknown email's login is checked
/// against (same parameters as every user's).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::encode_b64(b"stockpool-dummy-salt").expect("a fixed salt encodes");
        let password = random_hex(16).unwrap_or_else(|_| "not-a-password-anyone-has".into());
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
    })
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `bytes` random bytes as hex (tokens, CSRF tokens, salts).
pub fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| StoreError::Invalid(format!("no randomness available: {e}")))?;
    Ok(hex::encode(buf))
}

impl Storage {
    /// The id of workspace `name`, created if missing.
    pub async fn ensure_workspace(&self, name: &str) -> Result<i64, StoreError> {
        if name.trim().is_empty() || name.chars().count() > WORKSPACE_NAME_LEN_MAX {
            return Err(StoreError::Invalid(format!(
                "a workspace name needs 1 to {WORKSPACE_NAME_LEN_MAX} characters"
            )));
        }
        let pool = &self.inner.db.pool;
        let now = self.now().0;
        sqlx::query_with(
            "INSERT INTO workspaces (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            args(&[name.into(), now.into()]),
        )
        .execute(pool)
        .await?;
        let row =
            sqlx::query_with("SELECT id FROM workspaces WHERE name = $1", args(&[name.into()])).fetch_one(pool).await?;
        Ok(row.try_get(0)?)
    }

    /// Creates a new API token for workspace `name` (creating the workspace if missing)
    /// and returns it; it is never shown again.
    pub async fn create_token(&self, workspace: &str) -> Result<String, StoreError> {
        let ws = self.ensure_workspace(workspace).await?;
        let token = format!("sp_{}", random_hex(32)?);
        sqlx::query_with(
            "INSERT INTO api_tokens (token_hash, workspace_id, created_at) VALUES ($1, $2, $3)",
            args(&[hash_token(&token).into(), ws.into(), self.now().0.into()]),
        )
        .execute(&self.inner.db.pool)
        .await?;
        Ok(token)
    }

    /// The workspace a bearer token belongs to.
    pub async fn workspace_for_token(&self, token: &str) -> Result<Option<i64>, StoreError> {
        if token.len() > 200 {
            return Ok(None);
        }
        let hash = hash_token(token);
        if let Some(ws) = self.inner.tokens.read().unwrap().get(&hash) {
            return Ok(Some(*ws));
        }
        let row =
            sqlx::query_with("SELECT workspace_id FROM api_tokens WHERE token_hash = $1", args(&[hash.clone().into()]))
                .fetch_optional(&self.inner.db.pool)
                .await?;
        let ws = match row {
            Some(r) => Some(r.try_get::<i64, _>(0)?),
            None => None,
        };
        if let Some(ws) = ws {
            self.inner.tokens.write().unwrap().insert(hash, ws);
        }
        Ok(ws)
    }

    /// Creates (or resets the password of) a dashboard user.
    pub async fn create_user(&self, workspace: &str, email: &str, password: &str) -> Result<(), StoreError> {
        if !email.contains('@') || email.len() > 254 {
            return Err(StoreError::Invalid(format!("{email:?} is not an email address")));
        }
        if password.chars().count() < 8 || password.len() > PASSWORD_BYTES_MAX {
            return Err(StoreError::Invalid(format!(
                "a password needs at least 8 characters and at most {PASSWORD_BYTES_MAX} bytes"
            )));
        }
        let ws = self.ensure_workspace(workspace).await?;
        let salt = SaltString::encode_b64(random_hex(16)?.as_bytes())
            .map_err(|e| StoreError::Invalid(format!("cannot make a salt: {e}")))?;
        let password = password.to_string();
        let hash = hashing(move || Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()))
            .await?
            .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))?;
        sqlx::query_with(
            "INSERT INTO users (workspace_id, email, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, email) DO UPDATE SET password_hash = excluded.password_hash",
            args(&[ws.into(), email.into(), hash.into(), self.now().0.into()]),
        )
        .execute(&self.inner.db.pool)
        .await?;
        Ok(())
    }

    /// The workspace of a user whose password matches. An unknown email is checked
    /// against a dummy hash, so the answer takes as long whether the email exists or not.
    /// Every check runs on the blocking pool, at most `HASHES_AT_ONCE_MAX` at a time.
    pub async fn verify_user(&self, email: &str, password: &str) -> Result<Option<i64>, StoreError> {
        if password.len() > PASSWORD_BYTES_MAX {
            return Ok(None);
        }
        let rows =
            sqlx::query_with("SELECT workspace_id, password_hash FROM users WHERE email = $1", args(&[email.into()]))
                .fetch_all(&self.inner.db.pool)
                .await?;
        let mut users = Vec::with_capacity(rows.len());
        for r in rows {
            users.push((r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?));
        }
        let checks = users.len().max(1) as u64;
        let password = password.to_string();
        let found = hashing(move || {
            if users.is_empty() {
                // Same work, same answer time; it never matches.
                let _ = check_password(&password, dummy_hash());
                return None;
            }
            users.into_iter().find(|(_, hash)| check_password(&password, hash)).map(|(ws, _)| ws)
        })
        .await?;
        self.metrics().password_checks.fetch_add(checks, std::sync::atomic::Ordering::Relaxed);
        Ok(found)
    }

    /// Opens a dashboard session for a verified user; returns the cookie's token.
    pub async fn create_session(&self, workspace: i64, email: &str) -> Result<String, StoreError> {
        let token = format!("sps_{}", random_hex(32)?);
        let now = self.now().0;
        let pool = &self.inner.db.pool;
        sqlx::query_with("DELETE FROM sessions WHERE expires_at < $1", args(&[now.into()])).execute(pool).await?;
        sqlx::query_with(
            "INSERT INTO sessions (token_hash, workspace_id, email, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)",
            args(&[
                hash_token(&token).into(),
                workspace.into(),
                email.into(),
                random_hex(32)?.into(),
                (now + SESSION_SECONDS * 1000).into(),
            ]),
        )
        .execute(pool)
        .await?;
        Ok(token)
    }

    /// The live session of a cookie's token, if any.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, StoreError> {
        if token.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query_with(
            "SELECT workspace_id, email, csrf FROM sessions WHERE token_hash = $1 AND expires_at >= $2",
            args(&[hash_token(token).into(), self.now().0.into()]),
        )
        .fetch_optional(&self.inner.db.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(Session { workspace: r.try_get(0)?, email: r.try_get(1)?, csrf: r.try_get(2)? })),
            None => Ok(None),
        }
    }

    /// Ends a session (logout).
    pub async fn end_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query_with("DELETE FROM sessions WHERE token_hash = $1", args(&[hash_token(token).into()]))
            .execute(&self.inner.db.pool)
            .await?;
        Ok(())
    }
}
