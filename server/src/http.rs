//! The HTTP surface (**API Boundary**): the router over the auth service's handlers
//! (`auth.rs`) and the sync WebSocket (`GET /realm-sync`, `sync/`), `GET /health`, and
//! request logging. The extractors the handlers use are in `extract.rs`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};

use crate::auth::{self, AuthService};
use crate::problem::ApiError;
use crate::sync::{self, SyncService};

/// Every route of the server.
pub fn router(auth_service: Arc<AuthService>, sync_service: Arc<SyncService>) -> Router {
    let sync_routes = Router::new()
        .route("/realm-sync", get(sync::realm_sync))
        .with_state(sync_service);
    Router::new()
        .route("/health", get(health))
        .route("/auth", post(auth::authenticate))
        .route("/auth/revoke", post(auth::revoke))
        .route("/auth/password", put(auth::change_password))
        .route("/auth/users/{provider}/{provider_id}", get(auth::lookup))
        .route("/auth/permissions", get(auth::shared_with))
        .with_state(auth_service)
        .merge(sync_routes)
        .fallback(|request: Request| async move { ApiError::not_found(request.uri().path()) })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(middleware::from_fn(log_request))
}

/// `GET /health`: answers as soon as the server serves requests (storage and keys are open
/// before the first connection is accepted).
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Logs one line per request: method, path (never the query or body, which may hold
/// secrets), status and duration.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    tracing::info!(%method, %path, status, micros, "request");
    response
}
