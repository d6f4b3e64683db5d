//! The few HTML pages `serve` shows outside the API: the set-password page (`users.rs`)
//! and the pages that links in mail open (`/drafts/{id}`, `/inbound/{id}`). They show no
//! data of the service — anyone may open them — only where to go: the item itself is read
//! through the API, signed in, until the web UI serves these addresses.

use crate::domain::ids::{DraftId, InboundId};
use crate::mail::escape;
use actix_web::{get, web, HttpResponse};

/// A plain page: no script, no styles from elsewhere, no referrer sent onwards (a
/// set-password link carries its token in the address), never cached.
pub fn page(title: &str, body: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'",
        ))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — Countersign</title></head>\n<body>\n<main>\n<h1>{}</h1>\n{body}</main>\n</body></html>\n",
            escape(title),
            escape(title)
        ))
}

fn not_found(what: &str) -> HttpResponse {
    let mut r = page(
        "Not a link of Countersign",
        &format!("<p>This address does not name a {what}.</p>\n"),
    );
    *r.status_mut() = actix_web::http::StatusCode::NOT_FOUND;
    r
}

fn pointer(what: &str, api: &str) -> HttpResponse {
    page(
        &format!("A {what} waits for you"),
        &format!(
            "<p>Sign in to Countersign and open it: <code>GET {}</code> with your token \
             (the web pages for it come with the web UI).</p>\n",
            escape(api)
        ),
    )
}

/// Where a mail's link to a draft lands.
#[get("/drafts/{id}")]
pub async fn draft(id: web::Path<String>) -> HttpResponse {
    match id.parse::<DraftId>() {
        Ok(id) => pointer("draft reply", &format!("/api/v1/drafts/{id}")),
        Err(_) => not_found("draft"),
    }
}

/// Where a mail's link to a customer's message lands.
#[get("/inbound/{id}")]
pub async fn inbound(id: web::Path<String>) -> HttpResponse {
    match id.parse::<InboundId>() {
        Ok(id) => pointer("customer's message", &format!("/api/v1/inbound/{id}")),
        Err(_) => not_found("message"),
    }
}
