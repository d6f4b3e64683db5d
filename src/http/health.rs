//! `/healthz` (the process answers), `/readyz` (and the database does), `/metrics`
//! (Prometheus text), and the OpenAPI description.

use super::State;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: State) -> HttpResponse {
    let db = state.ctx.db.clone();
    let ready = web::block(move || db.ping()).await.unwrap_or(false);
    if ready {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(json!({"status": "unavailable", "reason": "the database does not answer"}))
    }
}

pub async fn metrics(state: State) -> HttpResponse {
    match state.metrics.render(state.ctx.db.write_stats()) {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => crate::error::Error::Internal(format!("metrics: {e}")).into(),
    }
}

pub async fn openapi(doc: web::Data<utoipa::openapi::OpenApi>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}
