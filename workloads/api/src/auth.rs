//! Bearer JWT authentication: HS256 tokens whose `sub` is the user and whose `roles` claim may
//! grant `admin`. Every other algorithm — `none` included — is refused.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ordexa_store::Actor;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::problem::ApiError;

/// The role that grants staff actions (catalog changes, fulfilment, listing by status).
pub const ADMIN_ROLE: &str = "admin";
/// Shorter secrets make HS256 guessable.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the JWT secret (ORDEXA_JWT_SECRET) must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    SecretTooShort(usize),
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("the user id must not be empty")]
    EmptyUser,
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Auth {
    pub fn new(secret: &[u8]) -> Result<Self, AuthConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(AuthConfigError::SecretTooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Ok(Auth { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation })
    }

    /// Mints a token for `user`, valid for `ttl`.
    pub fn mint(&self, user: &str, admin: bool, ttl: Duration) -> Result<String, AuthConfigError> {
        if user.trim().is_empty() {
            return Err(AuthConfigError::EmptyUser);
        }
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.to_owned(),
            iat: now,
            exp: now + ttl.as_secs(),
            roles: if admin { vec![ADMIN_ROLE.to_owned()] } else { Vec::new() },
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// The actor a token speaks for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Actor, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| {
            let why = match err.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidSignature => "the token's signature is not valid",
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "the token's algorithm is not accepted (HS256 only)"
                }
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (sub, exp)",
                ErrorKind::ImmatureSignature => "the token is not valid yet",
                _ => "the token is malformed",
            };
            ApiError::Unauthorized(why.to_owned())
        })?;
        if data.claims.sub.trim().is_empty() {
            return Err(ApiError::Unauthorized("the token's subject is empty".to_owned()));
        }
        Ok(Actor { is_admin: data.claims.roles.iter().any(|r| r == ADMIN_ROLE), user_id: data.claims.sub })
    }
}

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
        state.auth.verify(token).map(Caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_with_its_user_and_role() -> Result<(), Box<dyn std::error::Error>> {
        let auth = Auth::new(SECRET)?;
        let actor = auth.verify(&auth.mint("alice", true, Duration::from_secs(60))?)?;
        assert_eq!((actor.user_id.as_str(), actor.is_admin), ("alice", true));
        let actor = auth.verify(&auth.mint("bob", false, Duration::from_secs(60))?)?;
        assert_eq!((actor.user_id.as_str(), actor.is_admin), ("bob", false));
        Ok(())
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(matches!(Auth::new(b"short"), Err(AuthConfigError::SecretTooShort(5))));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let other = Auth::new(b"another-secret-another-secret-xx")?;
        let token = other.mint("mallory", true, Duration::from_secs(60))?;
        let err = Auth::new(SECRET)?.verify(&token).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the token's signature is not valid"));
        Ok(())
    }
}
