//! Every error the API returns, rendered once as RFC 9457 problem details (the platform's
//! [`Problem`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ordexa_domain::{DomainError, FieldError};
use ordexa_store::StoreError;

pub use ordexa_platform::problem::{Problem, ProblemField};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{detail}")]
    Unprocessable { detail: String, errors: Vec<FieldError> },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unavailable(String),
    /// The read model has not reached the version the client asked for within the wait.
    #[error("{0}")]
    ProjectionBehind(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Malformed request"),
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation", "The request is not valid")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict with the current state"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "stale-version", "The resource has changed")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::ProjectionBehind(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "projection-behind", "The read model is behind; retry shortly")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    pub fn validation(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError::Unprocessable { detail: detail.into(), errors }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Unprocessable {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError { field: field.to_owned(), message }],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let detail = match &self {
            // Internal details stay in the log.
            ApiError::Internal(_) => "the server failed to handle the request; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Unprocessable { errors, .. } => {
                errors.into_iter().map(|e| ProblemField { field: e.field, message: e.message }).collect()
            }
            _ => Vec::new(),
        };
        Problem::new(status, slug, title, detail).with_errors(errors).into_response()
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Validation(errors) => {
                ApiError::validation(DomainError::Validation(errors.clone()).to_string(), errors)
            }
            DomainError::InvalidTransition { .. } | DomainError::NotEditable { .. } => {
                ApiError::Conflict(err.to_string())
            }
            DomainError::UnknownSkus(_) | DomainError::InactiveSkus(_) | DomainError::MixedCurrencies(_) => {
                ApiError::validation(err.to_string(), Vec::new())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Domain(domain) => domain.into(),
            StoreError::OrderNotFound(_) | StoreError::ProductNotFound(_) => ApiError::NotFound(err.to_string()),
            StoreError::VersionMismatch { .. } => ApiError::PreconditionFailed(err.to_string()),
            StoreError::IdempotencyKeyReused => ApiError::validation(err.to_string(), Vec::new()),
            StoreError::ProductExists(_) => ApiError::Conflict(err.to_string()),
            StoreError::Database(sqlx_err) if is_unavailable(&sqlx_err) => {
                ApiError::Unavailable(format!("the database is unavailable: {sqlx_err}"))
            }
            StoreError::Database(_) | StoreError::Migration(_) | StoreError::CorruptRow(_) => {
                ApiError::Internal(err.to_string())
            }
        }
    }
}

impl From<ordexa_readmodel::ReadModelError> for ApiError {
    fn from(err: ordexa_readmodel::ReadModelError) -> Self {
        use ordexa_readmodel::ReadModelError as E;
        match err {
            E::Execute(_) | E::Connect { .. } | E::SchemaAgreement(_) => {
                ApiError::Unavailable(format!("the read model is unavailable: {err}"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn is_unavailable(err: &ordexa_store::SqlxError) -> bool {
    matches!(
        err,
        ordexa_store::SqlxError::PoolTimedOut | ordexa_store::SqlxError::Io(_) | ordexa_store::SqlxError::PoolClosed
    )
}
