//! Sign-in, and the one place where a bearer token becomes a user: the
//! [`require_sign_in`] guard fails closed (401 without a valid token, 403 for a user with no
//! role); handlers take the [`SignedIn`] it found and ask `caller.require(Permission::…)`.

use super::State;
use crate::app::{self, Caller};
use crate::domain::roles::Role;
use crate::error::Error;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{post, web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The user behind the request's `Authorization: Bearer TOKEN`.
#[derive(Clone)]
pub struct SignedIn {
    pub caller: Caller,
    pub token: String,
}

fn bearer_token(req: &HttpRequest) -> Result<String, Error> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            Error::Unauthorized("sign in first: send Authorization: Bearer TOKEN".into())
        })?;
    let value = header
        .to_str()
        .map_err(|_| Error::Unauthorized("the Authorization header is not readable".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_string())
        }
        _ => Err(Error::Unauthorized(
            "the Authorization header must be: Bearer TOKEN".into(),
        )),
    }
}

/// Paths under `/api/v1` that need no token (spec/api.md "People and roles"); the webhook
/// is authenticated by the network's signature instead ("Channels").
const PUBLIC_API_PATHS: [&str; 5] = [
    "/api/v1/login",
    "/api/v1/openapi.json",
    "/api/v1/hours",
    "/api/v1/password",
    "/api/v1/channels/x/webhook",
];

fn needs_sign_in(path: &str) -> bool {
    path.starts_with("/api/v1/") && !PUBLIC_API_PATHS.contains(&path)
}

/// The guard in front of every `/api/v1` route but the public ones: resolves the bearer
/// token before any handler or body extractor runs, so an unsigned request gets 401 whatever
/// else is wrong with it, and a user with no role gets 403 everywhere.
pub async fn require_sign_in(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // Two credentials in one request: refuse rather than guess which one is meant.
    if req
        .headers()
        .get_all(actix_web::http::header::AUTHORIZATION)
        .nth(1)
        .is_some()
    {
        let e = Error::BadRequest("send one Authorization header, not several".into());
        return Ok(req.into_response(e.error_response()).map_into_right_body());
    }
    if !needs_sign_in(req.path()) {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    match resolve(req.request()).await {
        Ok(signed_in) => {
            req.extensions_mut().insert(signed_in);
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
    }
}

async fn resolve(req: &HttpRequest) -> Result<SignedIn, Error> {
    let token = bearer_token(req)?;
    let state = req
        .app_data::<State>()
        .cloned()
        .ok_or_else(|| Error::Internal("application state missing".into()))?;
    let (t, clock) = (token.clone(), state.ctx.clock.clone());
    let caller = state
        .ctx
        .db
        .run(move |conn| app::users::authenticate(conn, &clock, &t))
        .await?;
    if caller.roles.is_empty() {
        return Err(Error::Forbidden(
            "this account has no role; ask an admin".into(),
        ));
    }
    Ok(SignedIn { caller, token })
}

impl FromRequest for SignedIn {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Put there by `require_sign_in`; absent only on a public path, where no handler
        // asks for it.
        std::future::ready(req.extensions().get::<SignedIn>().cloned().ok_or_else(|| {
            Error::Unauthorized("sign in first: send Authorization: Bearer TOKEN".into())
        }))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginUser {
    pub id: crate::domain::ids::UserId,
    pub username: String,
    pub roles: Vec<Role>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// When the token stops working (RFC 3339, UTC).
    pub expires_at: String,
    pub user: LoginUser,
}

/// Sign in with a username and password.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 400, body = super::error::ErrorBody),
        (status = 401, description = "wrong username or password", body = super::error::ErrorBody),
        (status = 429, description = "locked out after failed sign-ins", body = super::error::ErrorBody),
        (status = 503, description = "too many sign-ins at once; try again after `Retry-After` seconds",
            headers(("Retry-After" = u32, description = "seconds to wait")),
            body = super::error::ErrorBody),
    )
)]
#[post("/login")]
pub async fn login(
    state: State,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, Error> {
    let client = req
        .app_data::<web::Data<super::limits::Limits>>()
        .and_then(|l| l.client_addr(&req))
        .map_or_else(|| "unknown".into(), |ip| ip.to_string());
    let LoginRequest { username, password } = body.into_inner();
    let signin = app::users::sign_in(
        &state.ctx.db,
        &state.ctx.hashing,
        &state.ctx.clock,
        username,
        password,
        client,
        state.ctx.settings.session_hours,
    )
    .await?;
    Ok(HttpResponse::Ok().json(LoginResponse {
        token: signin.token,
        expires_at: app::views::rfc3339(signin.expires_at),
        user: LoginUser {
            id: signin.user.id,
            username: signin.user.username,
            roles: signin.user.roles.to_vec(),
        },
    }))
}

/// End this sign-in: the token stops working.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = super::error::ErrorBody))
)]
#[post("/logout")]
pub async fn logout(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    let clock = state.ctx.clock.clone();
    state
        .ctx
        .db
        .run(move |conn| app::users::logout(conn, &clock, &user.caller, &user.token))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
