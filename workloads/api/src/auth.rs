//! Bearer authentication: the caller of each request, from its `Authorization: Bearer` token,
//! verified by the platform's token verification ([`ordexa_platform::auth`]).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use ordexa_platform::auth::Principal;
use ordexa_store::Actor;

use crate::AppState;
use crate::problem::ApiError;

pub use ordexa_platform::auth::{Hs256Tokens, TokenConfigError};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin { Ok(()) } else { Err(ApiError::Forbidden("this action needs the admin role".to_owned())) }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing Authorization: Bearer <token> header".to_owned()))?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".to_owned()))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::Unauthorized("the Authorization header must use the Bearer scheme".to_owned())),
        };
        let principal = state.auth.verify(token).map_err(|why| ApiError::Unauthorized(why.to_string()))?;
        Ok(Caller::from(principal))
    }
}

impl From<Principal> for Caller {
    fn from(principal: Principal) -> Self {
        Caller(Actor { user_id: principal.subject, is_admin: principal.is_admin })
    }
}
