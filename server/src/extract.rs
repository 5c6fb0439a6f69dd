//! The HTTP extractors (**API Boundary**): they turn bad input into RFC 7807 problems (never
//! a 500) before a handler runs. [`JsonBody`] (content type, size, required fields),
//! [`Authorization`] (the token header) and [`Peer`] (the socket's address).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use serde::de::DeserializeOwned;
use shoal::protocol::auth::{AuthRequest, ChangePasswordRequest, RevokeRequest, MAX_BODY_BYTES};

use crate::problem::ApiError;

/// Which top-level fields a request type needs; absent or `null` is `602`, checked before
/// the type is deserialized (a wrong type is then `601`).
pub trait RequiredFields {
    /// The names of the required fields.
    const REQUIRED: &'static [&'static str];
}

impl RequiredFields for AuthRequest {
    const REQUIRED: &'static [&'static str] = &["provider", "data"];
}

impl RequiredFields for RevokeRequest {
    const REQUIRED: &'static [&'static str] = &["token"];
}

impl RequiredFields for ChangePasswordRequest {
    const REQUIRED: &'static [&'static str] = &["new_password"];
}

/// A JSON request body: `application/json` (else 415), at most
/// [`MAX_BODY_BYTES`] (else 413), a JSON object (else 400/601) with the required fields
/// (else 400/602) of the right types (else 400/601).
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + RequiredFields,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::not_json());
        }
        let bytes = read_body(request.into_body()).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}")))?;
        let Some(object) = value.as_object() else {
            return Err(ApiError::invalid("the body must be a JSON object"));
        };
        for field in T::REQUIRED {
            if object.get(*field).is_none_or(serde_json::Value::is_null) {
                return Err(ApiError::missing(format!("'{field}' is required")));
            }
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid(e.to_string()))
    }
}

/// How much of an oversized body is read and discarded before answering 413, so that an
/// ordinary client sees the answer instead of a connection reset. Beyond this the
/// connection is simply closed after the answer.
const DRAIN_LIMIT: u64 = 1024 * 1024;

/// Reads at most [`MAX_BODY_BYTES`]; more is 413 (after draining up to [`DRAIN_LIMIT`]).
async fn read_body(mut body: axum::body::Body) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::too_large(MAX_BODY_BYTES);
    let limit = MAX_BODY_BYTES as u64;
    if body
        .size_hint()
        .upper()
        .is_some_and(|declared| declared > DRAIN_LIMIT)
    {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        // A broken body means the client went away: the answer goes nowhere anyway.
        let frame = frame.map_err(|_| too_large())?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len() as u64);
        if seen > DRAIN_LIMIT {
            return Err(too_large());
        }
        if seen <= limit {
            bytes.extend_from_slice(&data);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// `application/json` or any `application/*+json`, with or without parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The client's IP address: from the [`ConnectInfo`] the accept loop puts into each request
/// (`server.rs`); `None` for requests driven in-process ([`crate::router`]). The socket's
/// peer, never a header such as `X-Forwarded-For`, which any client can write.
pub struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Peer(peer.map(|ConnectInfo(addr)| addr.ip())))
    }
}

/// The token in the `Authorization` header: raw as ROS clients send it, or after `Bearer `.
/// Missing or empty is 401/602.
pub struct Authorization(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Authorization {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::missing_authorization());
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::invalid_credentials("the Authorization header is not ASCII"))?
            .trim();
        let token = value.strip_prefix("Bearer ").unwrap_or(value).trim();
        if token.is_empty() {
            return Err(ApiError::missing_authorization());
        }
        Ok(Authorization(token.to_owned()))
    }
}
