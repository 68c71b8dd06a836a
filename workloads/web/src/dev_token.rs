//! Development sign-in: `POST /dev/token {"user":"alice","admin":false}` answers a bearer token
//! signed with the API's secret. Only when the role runs with `--dev-sign-in`; otherwise the
//! route answers 404 exactly like an unknown path, so production exposes nothing.
//! `GET /config.json` tells the SPA which sign-in to offer.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use ordexa_platform::problem::Problem;

/// How long a development token is valid.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Longest accepted user name.
pub const MAX_USER_CHARS: usize = 64;

pub struct DevSignIn {
    pub auth: Option<ordexa_platform::auth::Hs256Tokens>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub user: String,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub token: String,
    pub user: String,
    pub admin: bool,
    pub expires_in: u64,
}

#[derive(Debug, Serialize)]
pub struct ClientConfig {
    pub dev_sign_in: bool,
}

/// Why a user name is refused, if it is.
pub fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("user must not be empty".to_owned());
    }
    if user.chars().count() > MAX_USER_CHARS {
        return Err(format!("user must be at most {MAX_USER_CHARS} characters"));
    }
    if !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')) {
        return Err("user may contain only letters, digits and . _ - @".to_owned());
    }
    Ok(())
}

pub async fn mint(State(dev): State<Arc<DevSignIn>>, body: Result<Json<TokenRequest>, JsonRejection>) -> Response {
    let Some(auth) = &dev.auth else {
        return Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "development sign-in is disabled")
            .into_response();
    };
    let Json(request) = match body {
        Ok(body) => body,
        Err(rejection) => {
            return Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Malformed request",
                format!("expected {{\"user\": \"…\", \"admin\": false}}: {}", rejection.body_text()),
            )
            .into_response();
        }
    };
    if let Err(why) = check_user(&request.user) {
        return Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", "The request is not valid", why)
            .into_response();
    }
    match auth.mint(&request.user, request.admin, DEV_TOKEN_TTL) {
        Ok(token) => {
            tracing::info!(user = %request.user, admin = request.admin, "development token minted");
            let body =
                TokenResponse { token, user: request.user, admin: request.admin, expires_in: DEV_TOKEN_TTL.as_secs() };
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot mint a development token");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error", "cannot mint a token")
                .into_response()
        }
    }
}

pub async fn client_config(State(dev): State<Arc<DevSignIn>>) -> Json<ClientConfig> {
    Json(ClientConfig { dev_sign_in: dev.auth.is_some() })
}

#[cfg(test)]
mod tests {
    use super::check_user;

    #[test]
    fn user_names_are_limited_to_a_safe_alphabet_and_length() {
        assert!(check_user("alice").is_ok());
        assert!(check_user("staff.member-1@example").is_ok());
        assert!(check_user("").is_err());
        assert!(check_user("al ice").is_err());
        assert!(check_user("<script>").is_err());
        assert!(check_user(&"a".repeat(65)).is_err());
        assert!(check_user(&"a".repeat(64)).is_ok());
    }
}
