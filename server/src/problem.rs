//! RFC 7807 error answers. Every failure of a handler is an [`ApiError`], which becomes a
//! `application/problem+json` body ([`shoal::protocol::auth::Problem`]) with the HTTP status
//! and the Realm code documented in `shoal::protocol::auth`.
//!
//! **Invariant:** a request can only produce a 500 through [`ApiError::internal`] (storage or
//! OS failures), never through bad input.

use std::fmt;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use shoal::protocol::auth::{AuthErrorCode, Problem};

/// A failed request: the problem to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The body to send; its `status` is the HTTP status.
    pub problem: Problem,
    /// Seconds to send in a `Retry-After` header (429 and 503 answers).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn auth(code: AuthErrorCode, status: StatusCode, hint: impl Into<String>) -> ApiError {
        ApiError {
            problem: Problem::auth(code, status.as_u16(), Some(hint.into())),
            retry_after: None,
        }
    }

    /// 400 / 601: a parameter is malformed.
    pub fn invalid(hint: impl Into<String>) -> ApiError {
        ApiError::auth(
            AuthErrorCode::InvalidParameters,
            StatusCode::BAD_REQUEST,
            hint,
        )
    }

    /// 400 / 602: a required parameter is missing.
    pub fn missing(hint: impl Into<String>) -> ApiError {
        ApiError::auth(
            AuthErrorCode::MissingParameters,
            StatusCode::BAD_REQUEST,
            hint,
        )
    }

    /// 401 / 602: the `Authorization` header is missing.
    pub fn missing_authorization() -> ApiError {
        ApiError::auth(
            AuthErrorCode::MissingParameters,
            StatusCode::UNAUTHORIZED,
            "the Authorization header must carry a refresh token",
        )
    }

    /// 413 / 601: the body is larger than the limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::auth(
            AuthErrorCode::InvalidParameters,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {limit} bytes, or could not be read"),
        )
    }

    /// 415 / 601: the body is not declared as JSON.
    pub fn not_json() -> ApiError {
        ApiError::auth(
            AuthErrorCode::InvalidParameters,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON (Content-Type: application/json)",
        )
    }

    /// 401 / 611: unknown user, wrong password, or a token this server did not sign.
    pub fn invalid_credentials(hint: impl Into<String>) -> ApiError {
        ApiError::auth(
            AuthErrorCode::InvalidCredentials,
            StatusCode::UNAUTHORIZED,
            hint,
        )
    }

    /// 404 / 612: the account or user does not exist.
    pub fn unknown_account(hint: impl Into<String>) -> ApiError {
        ApiError::auth(AuthErrorCode::UnknownAccount, StatusCode::NOT_FOUND, hint)
    }

    /// 409 / 613: the account to register exists.
    pub fn existing_account(hint: impl Into<String>) -> ApiError {
        ApiError::auth(AuthErrorCode::ExistingAccount, StatusCode::CONFLICT, hint)
    }

    /// 403 / 614: the caller may not do this.
    pub fn access_denied(hint: impl Into<String>) -> ApiError {
        ApiError::auth(AuthErrorCode::AccessDenied, StatusCode::FORBIDDEN, hint)
    }

    /// 401 / 615: the refresh token is expired or revoked.
    pub fn expired_refresh_token(hint: impl Into<String>) -> ApiError {
        ApiError::auth(
            AuthErrorCode::ExpiredRefreshToken,
            StatusCode::UNAUTHORIZED,
            hint,
        )
    }

    /// 404, plain HTTP: no such route.
    pub fn not_found(path: &str) -> ApiError {
        ApiError {
            problem: Problem::http(404, "Not Found", Some(format!("no route for {path}"))),
            retry_after: None,
        }
    }

    /// 405, plain HTTP: the route exists with another method.
    pub fn method_not_allowed() -> ApiError {
        ApiError {
            problem: Problem::http(405, "Method Not Allowed", None),
            retry_after: None,
        }
    }

    /// 429, plain HTTP: too many failed logins; `Retry-After` says when to try again (whole
    /// seconds, rounded up).
    pub fn too_many_requests(wait: std::time::Duration, why: &str) -> ApiError {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        ApiError {
            problem: Problem::http(
                429,
                "Too Many Requests",
                Some(format!("{why}; retry in {seconds} s")),
            ),
            retry_after: Some(seconds),
        }
    }

    /// 503, plain HTTP: too many password hashes waiting; retry in a second.
    pub fn busy() -> ApiError {
        ApiError {
            problem: Problem::http(
                503,
                "Service Unavailable",
                Some("too many logins at once; retry in 1 s".to_owned()),
            ),
            retry_after: Some(1),
        }
    }

    /// 500, plain HTTP: a storage or OS failure. The cause is logged, not sent.
    pub fn internal(cause: &dyn fmt::Display) -> ApiError {
        tracing::error!(%cause, "internal error");
        ApiError {
            problem: Problem::http(500, "Internal Server Error", None),
            retry_after: None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.problem;
        write!(f, "{} {} ({})", p.status, p.code, p.title)?;
        if let Some(hint) = &p.hint {
            write!(f, ": {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let content_type = HeaderValue::from_static("application/problem+json");
        let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
