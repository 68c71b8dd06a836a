//! Every error the API returns, rendered once as RFC 9457 problem details (the platform's
//! [`Problem`]). Each variant is one problem type: its slug (the last segment of `type`) is
//! stable, so clients and the OpenAPI document can rely on it.

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
    MethodNotAllowed(String),
    /// The request is malformed: unparseable JSON, a header of the wrong form.
    #[error("{0}")]
    BadRequest(String),
    /// A value breaks a rule the OpenAPI document states (type, range, length, pattern).
    #[error("{detail}")]
    Unprocessable { detail: String, errors: Vec<FieldError> },
    /// The request is well formed, but a rule the document cannot state refuses it: an sku the
    /// catalog lacks, a page token this listing did not issue. `slug` names the rule.
    #[error("{detail}")]
    Refused { slug: &'static str, detail: String, errors: Vec<FieldError> },
    #[error("{0}")]
    Conflict(String),
    /// `min_version` is above the order's current version: waiting cannot help.
    #[error("{0}")]
    VersionAhead(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The write model (PostgreSQL) cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The read model (Cassandra) cannot be reached; commands still work.
    #[error("{0}")]
    ReadModelUnavailable(String),
    /// The read model has not reached the version the client asked for within the wait.
    #[error("{0}")]
    ProjectionBehind(String),
    /// As many requests as allowed are in flight already.
    #[error("{0}")]
    Overloaded(String),
    /// The request did not finish within the request timeout.
    #[error("{0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One kind of problem: its status, its `type` slug and its title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemKind {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
}

const fn kind(status: StatusCode, slug: &'static str, title: &'static str) -> ProblemKind {
    ProblemKind { status, slug, title }
}

impl ApiError {
    pub fn kind(&self) -> ProblemKind {
        use StatusCode as S;
        match self {
            ApiError::Unauthorized(_) => kind(S::UNAUTHORIZED, "unauthorized", "Authentication required"),
            ApiError::Forbidden(_) => kind(S::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::NotFound(_) => kind(S::NOT_FOUND, "not-found", "Not found"),
            ApiError::MethodNotAllowed(_) => kind(S::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            ApiError::BadRequest(_) => kind(S::BAD_REQUEST, "bad-request", "Malformed request"),
            ApiError::Unprocessable { .. } => kind(S::UNPROCESSABLE_ENTITY, "validation", "The request is not valid"),
            ApiError::Refused { slug, .. } => kind(S::UNPROCESSABLE_ENTITY, slug, "The request cannot be carried out"),
            ApiError::Conflict(_) => kind(S::CONFLICT, "conflict", "Conflict with the current state"),
            ApiError::VersionAhead(_) => {
                kind(S::CONFLICT, "version-ahead", "The order has not reached the version asked for")
            }
            ApiError::PreconditionFailed(_) => {
                kind(S::PRECONDITION_FAILED, "stale-version", "The resource has changed")
            }
            ApiError::PayloadTooLarge(_) => kind(S::PAYLOAD_TOO_LARGE, "too-large", "Request body too large"),
            ApiError::UnsupportedMediaType(_) => {
                kind(S::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            ApiError::Unavailable(_) => kind(S::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            ApiError::ReadModelUnavailable(_) => kind(
                S::SERVICE_UNAVAILABLE,
                "read-model-unavailable",
                "Orders cannot be read right now; placing and changing orders still works",
            ),
            ApiError::ProjectionBehind(_) => {
                kind(S::SERVICE_UNAVAILABLE, "projection-behind", "The read model is behind; retry shortly")
            }
            ApiError::Overloaded(_) => kind(S::SERVICE_UNAVAILABLE, "overloaded", "Too many requests in flight"),
            ApiError::Timeout(_) => kind(S::SERVICE_UNAVAILABLE, "timeout", "The request took too long"),
            ApiError::Internal(_) => kind(S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
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

    pub fn refused(slug: &'static str, detail: impl Into<String>) -> Self {
        ApiError::Refused { slug, detail: detail.into(), errors: Vec::new() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ProblemKind { status, slug, title } = self.kind();
        if status.is_server_error() {
            tracing::error!(error = %self, kind = slug, "request failed");
        }
        let detail = match &self {
            // Internal details stay in the log.
            ApiError::Internal(_) => "the server failed to handle the request; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let errors = match self {
            ApiError::Unprocessable { errors, .. } | ApiError::Refused { errors, .. } => {
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
            // The catalog decides these, not the request's form: its own problem types.
            DomainError::UnknownSkus(_) | DomainError::InactiveSkus(_) | DomainError::MixedCurrencies(_) => {
                ApiError::refused(err.code(), err.to_string())
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
            StoreError::IdempotencyKeyReused => ApiError::refused("idempotency-key-reused", err.to_string()),
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

/// A read model that cannot be reached, or does not answer in time, is an outage of reads only
/// (503 `read-model-unavailable`); anything else it reports is a defect (500).
impl From<ordexa_readmodel::ReadModelError> for ApiError {
    fn from(err: ordexa_readmodel::ReadModelError) -> Self {
        if err.is_unavailable() {
            ApiError::ReadModelUnavailable(format!("the read model is unavailable: {err}"))
        } else {
            ApiError::Internal(err.to_string())
        }
    }
}

fn is_unavailable(err: &ordexa_store::SqlxError) -> bool {
    matches!(
        err,
        ordexa_store::SqlxError::PoolTimedOut | ordexa_store::SqlxError::Io(_) | ordexa_store::SqlxError::PoolClosed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_refusals_have_their_own_types_and_field_errors_are_validation() -> Result<(), FieldError> {
        let unknown = ApiError::from(DomainError::UnknownSkus(vec![ordexa_domain::Sku::parse("NOPE")?]));
        assert_eq!(unknown.kind().slug, "unknown-sku");
        assert_eq!(unknown.kind().status, StatusCode::UNPROCESSABLE_ENTITY);
        let invalid = ApiError::from(DomainError::invalid("/items", "must contain at least one item"));
        assert_eq!(invalid.kind().slug, "validation");
        assert_eq!(ApiError::from(StoreError::IdempotencyKeyReused).kind().slug, "idempotency-key-reused");
        Ok(())
    }

    #[test]
    fn an_unreachable_read_model_is_a_503_of_its_own() {
        let err = ApiError::ReadModelUnavailable("down".into());
        assert_eq!(err.kind().status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.kind().slug, "read-model-unavailable");
    }
}
