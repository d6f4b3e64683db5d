//! Maps the library's [`Error`] to HTTP: the status of spec/api.md and the JSON body
//! `{"error": code, "message": text}`; a blocked check adds `"check"`, a bad policy set
//! `"errors"`. Internal faults are logged in full and answered without internals.

use crate::error::Error;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::json;

/// The largest request body taken, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What `Retry-After` says on a 503 for overload, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A short, stable code: bad_request, unauthorized, forbidden, not_found, conflict,
    /// blocked, policy_invalid, request_timeout, too_many_requests, overloaded, unavailable, internal.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Blocked(_) | Error::PolicyInvalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Overloaded(_) | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let body = match self {
            Error::Blocked(report) => json!({
                "error": self.code(),
                "message": "the compliance check blocks this draft; see the findings",
                "check": report,
            }),
            Error::PolicyInvalid(e) => json!({
                "error": self.code(),
                "message": "the policy set is invalid; the policies in force are unchanged",
                "errors": e.errors,
            }),
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                json!({"error": self.code(), "message": "internal error; it has been logged"})
            }
            Error::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                json!({"error": self.code(), "message": "the database is unavailable; try again shortly"})
            }
            other => json!({"error": other.code(), "message": other.to_string()}),
        };
        let mut res = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            res.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Error::Overloaded(_) = self {
            res.insert_header(("Retry-After", RETRY_AFTER_SECONDS));
        }
        res.json(body)
    }
}

impl From<Error> for HttpResponse {
    fn from(e: Error) -> Self {
        e.error_response()
    }
}

/// actix's own extractor errors (malformed JSON, a bad path or query parameter, a missing
/// field) answered as 400 JSON instead of plain text.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req: &HttpRequest| {
            let message = match &err {
                actix_web::error::JsonPayloadError::ContentType => {
                    "the body must be JSON, sent with Content-Type: application/json".to_string()
                }
                actix_web::error::JsonPayloadError::Overflow { limit }
                | actix_web::error::JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    format!("the body is larger than {limit} bytes")
                }
                other => format!("malformed JSON body: {other}"),
            };
            Error::BadRequest(message).into()
        })
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default()
        .error_handler(|err, _req| Error::BadRequest(format!("bad path parameter: {err}")).into())
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default()
        .error_handler(|err, _req| Error::BadRequest(format!("bad query parameter: {err}")).into())
}

/// Unknown paths (and methods a path does not have) answer JSON too.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    Error::NotFound(format!("no such endpoint: {} {}", req.method(), req.path())).error_response()
}
