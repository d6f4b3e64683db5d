//! The X webhook (Account Activity API, spec/api.md "Channels"): the only calls under
//! `/api/v1` without a bearer token, authenticated by X's signature instead. `GET` answers
//! the challenge-response check; `POST` takes events only when their
//! `x-twitter-webhooks-signature` verifies, and records the mentions among them.

use super::error::ErrorBody;
use super::State;
use crate::app;
use crate::channels::x;
use crate::config::SecretString;
use crate::error::Error;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
pub struct CrcQuery {
    /// The challenge X sends.
    pub crc_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrcAnswer {
    /// `sha256=` + base64(HMAC-SHA256(consumer secret, crc_token)).
    pub response_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookTaken {
    /// Mentions recorded as new inbound messages.
    pub created: usize,
}

fn secret(state: &State) -> Result<SecretString, Error> {
    state
        .ctx
        .settings
        .x
        .webhook_secret
        .clone()
        .ok_or_else(|| Error::NotFound("no X webhook is configured on this service".into()))
}

/// X's challenge-response check of the webhook (no sign-in; answers only with the secret).
#[utoipa::path(
    tag = "channels",
    params(CrcQuery),
    responses((status = 200, body = CrcAnswer), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody))
)]
#[get("/channels/x/webhook")]
pub async fn x_crc(state: State, query: web::Query<CrcQuery>) -> Result<HttpResponse, Error> {
    let secret = secret(&state)?;
    if query.crc_token.is_empty() || query.crc_token.len() > 512 {
        return Err(Error::BadRequest(
            "crc_token must be 1 to 512 characters".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(CrcAnswer {
        response_token: x::crc_response(&secret, &query.crc_token),
    }))
}

/// Account Activity events from X: mentions become inbound messages. Refused (401) unless
/// `x-twitter-webhooks-signature` signs the body with the consumer secret.
#[utoipa::path(
    tag = "channels",
    request_body(content = String, description = "An Account Activity event (JSON)", content_type = "application/json"),
    responses(
        (status = 200, body = WebhookTaken),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)
    )
)]
#[post("/channels/x/webhook")]
pub async fn x_events(
    state: State,
    request: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, Error> {
    let secret = secret(&state)?;
    let signature = request
        .headers()
        .get("x-twitter-webhooks-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !x::signature_verifies(&secret, &body, signature) {
        tracing::warn!("an X webhook call whose signature does not verify was refused");
        return Err(Error::Unauthorized(
            "the x-twitter-webhooks-signature does not verify".into(),
        ));
    }
    let mentions = x::webhook_mentions(&body).map_err(Error::BadRequest)?;
    let ctx = state.ctx.clone();
    let polled = web::block(move || app::ingest::record_mentions(&ctx, &mentions))
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(WebhookTaken {
        created: polled.created,
    }))
}
