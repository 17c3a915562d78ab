//! `ApiError`: every failure as an RFC 9457 problem details body with a human sentence.
//!
//! Store errors map to their status here (`status_of`: only this crate knows HTTP); a 5xx
//! body reveals nothing, and its cause chain goes to the log instead.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stockpool_core::{CatalogError, OrderError};
use stockpool_store::StoreError;

/// The HTTP status a store error answers with: 404 for what does not exist, 409 for a
/// conflict with the current state, 422 for input that breaks a rule, 5xx for the server.
pub fn status_of(e: &StoreError) -> StatusCode {
    match e {
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::Unknown { .. }
        | StoreError::Invalid(_)
        | StoreError::Bom(_)
        | StoreError::Rule(_)
        | StoreError::Stock(_) => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::Catalog(CatalogError::Duplicate { .. }) | StoreError::Conflict(_) => StatusCode::CONFLICT,
        StoreError::Catalog(_) => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::Order(OrderError::UnknownOrder { .. } | OrderError::UnknownCard { .. }) => StatusCode::NOT_FOUND,
        StoreError::Order(
            OrderError::WrongStatus { .. }
            | OrderError::CardWrongStatus { .. }
            | OrderError::NotReadyToFulfill { .. }
            | OrderError::CardBelongsToOrder { .. },
        ) => StatusCode::CONFLICT,
        StoreError::Order(_) => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::At { source, .. } => status_of(source),
        StoreError::Db(_) | StoreError::Sqlite(_) | StoreError::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
        StoreError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::LeaseLost { .. } => StatusCode::CONFLICT,
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Seconds for `Retry-After` (a 429 or 503 that knows when to come back).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError { status, detail: detail.into(), retry_after: None }
    }
    /// 429: too many failures; come back in `seconds`.
    pub fn too_many(seconds: u64, detail: impl Into<String>) -> ApiError {
        ApiError { retry_after: Some(seconds), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail) }
    }
    pub fn not_found(what: &str, key: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{what} {key} was not found"))
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "send a valid API token as 'Authorization: Bearer <token>'")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let status = status_of(&e);
        if status.is_server_error() {
            let mut chain = format!("{e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(&format!(": {s}"));
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
            let detail = if status == StatusCode::SERVICE_UNAVAILABLE {
                e.to_string()
            } else {
                "the server failed to handle this request; it has been logged".to_string()
            };
            return ApiError::new(status, detail);
        }
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = json!({
            "type": "about:blank",
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut res = (self.status, body.to_string()).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(s) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
