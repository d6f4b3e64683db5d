//! The one error type of the library. Domain code, persistence and the use cases in
//! `app` return it; `http::error` maps each variant to a status and the JSON body of
//! `spec/api.md` (`{"error", "message"}`), the CLI prints it.

use crate::policy::{CheckReport, PolicyLoadError};

/// Everything that can go wrong in a request or command, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input: a bad id, a missing or invalid field (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// No valid sign-in token, or a wrong username or password (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// Signed in, but the role or the four-eyes rule forbids it (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A well-formed id that names nothing (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The move is not allowed from the current state, or the review is stale (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The compliance check blocks the draft (HTTP 422, with the report).
    #[error("the compliance check blocks this draft")]
    Blocked(Box<CheckReport>),
    /// The policy set could not be loaded (HTTP 422 on reload; a start-up error otherwise).
    #[error("the policy set is invalid:\n{0}")]
    PolicyInvalid(PolicyLoadError),
    /// The request (its body) did not arrive in time (HTTP 408; the connection is closed).
    #[error("{0}")]
    RequestTimeout(String),
    /// Too many failed sign-ins, or too many connections from one address (HTTP 429).
    #[error("{0}")]
    TooManyRequests(String),
    /// Too much work at once (the password-hashing queue is full): try again shortly
    /// (HTTP 503 with `Retry-After`).
    #[error("{0}")]
    Overloaded(String),
    /// The database could not be reached or refused the work (HTTP 503 when unreachable).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A fault of ours: logged in full, answered as a bare 500.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable short code of `{"error": …}` in the API's error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Blocked(_) => "blocked",
            Error::PolicyInvalid(_) => "policy_invalid",
            Error::RequestTimeout(_) => "request_timeout",
            Error::TooManyRequests(_) => "too_many_requests",
            Error::Overloaded(_) => "overloaded",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("no {what} with id {id}"))
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => Error::NotFound("not found".into()),
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl From<diesel::r2d2::PoolError> for Error {
    fn from(e: diesel::r2d2::PoolError) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("json: {e}"))
    }
}
