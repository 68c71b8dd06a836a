//! Bearer token verification shared by the API (which verifies every request) and the web role
//! and `ordexa token` (which mint development tokens).
//!
//! [`Hs256Tokens`]: development only — HS256 tokens signed with one shared secret, whose `sub`
//! is the user and whose `roles` claim may grant `admin`. Every other algorithm, `none`
//! included, is refused.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The role that grants staff actions (catalog changes, fulfilment, listing by status).
pub const ADMIN_ROLE: &str = "admin";
/// Shorter secrets make HS256 guessable.
pub const MIN_SECRET_BYTES: usize = 32;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`: the user.
    pub subject: String,
    /// Whether the token grants staff actions.
    pub is_admin: bool,
}

/// Why a token is refused; the message is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token's algorithm is not accepted (HS256 only)")]
    BadAlgorithm,
    #[error("the token lacks a required claim (sub, exp)")]
    MissingClaim,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's subject is empty")]
    EmptySubject,
    #[error("the token is malformed")]
    Malformed,
}

/// Why tokens cannot be minted or verified with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error("the JWT secret (ORDEXA_JWT_SECRET) must be at least {MIN_SECRET_BYTES} bytes, got {0}")]
    SecretTooShort(usize),
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
    #[error("the user id must not be empty")]
    EmptyUser,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
}

/// Signs and verifies development tokens with one shared secret.
#[derive(Clone)]
pub struct Hs256Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Hs256Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hs256Tokens { .. }")
    }
}

impl Hs256Tokens {
    pub fn new(secret: &[u8]) -> Result<Self, TokenConfigError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenConfigError::SecretTooShort(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Ok(Hs256Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// Mints a token for `user`, valid for `ttl`.
    pub fn mint(&self, user: &str, admin: bool, ttl: Duration) -> Result<String, TokenConfigError> {
        if user.trim().is_empty() {
            return Err(TokenConfigError::EmptyUser);
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

    /// Who a token speaks for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenRejected> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| match err
            .kind()
        {
            ErrorKind::ExpiredSignature => TokenRejected::Expired,
            ErrorKind::InvalidSignature => TokenRejected::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenRejected::BadAlgorithm,
            ErrorKind::MissingRequiredClaim(_) => TokenRejected::MissingClaim,
            ErrorKind::ImmatureSignature => TokenRejected::NotYetValid,
            _ => TokenRejected::Malformed,
        })?;
        if data.claims.sub.trim().is_empty() {
            return Err(TokenRejected::EmptySubject);
        }
        Ok(Principal { is_admin: data.claims.roles.iter().any(|r| r == ADMIN_ROLE), subject: data.claims.sub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_with_its_user_and_role() -> Result<(), Box<dyn std::error::Error>> {
        let tokens = Hs256Tokens::new(SECRET)?;
        let alice = tokens.verify(&tokens.mint("alice", true, Duration::from_secs(60))?)?;
        assert_eq!(alice, Principal { subject: "alice".into(), is_admin: true });
        let bob = tokens.verify(&tokens.mint("bob", false, Duration::from_secs(60))?)?;
        assert_eq!(bob, Principal { subject: "bob".into(), is_admin: false });
        Ok(())
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(matches!(Hs256Tokens::new(b"short"), Err(TokenConfigError::SecretTooShort(5))));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let other = Hs256Tokens::new(b"another-secret-another-secret-xx")?;
        let token = other.mint("mallory", true, Duration::from_secs(60))?;
        assert_eq!(Hs256Tokens::new(SECRET)?.verify(&token), Err(TokenRejected::BadSignature));
        Ok(())
    }
}
