//! `GET/POST /users`, `PATCH /users/{id}`, `POST /users/{id}/password-reset` (admins),
//! `POST /password` (the one-time link, no sign-in), and the small public set-password page
//! the links open (`GET/POST /set-password`).

use super::auth::SignedIn;
use super::error::ErrorBody;
use super::pages::page;
use super::State;
use crate::app::user_admin::{NewUser, ResetAnswer, UserInfo, UserPatch};
use crate::app::users::check_new_password;
use crate::app::{self};
use crate::domain::ids::UserId;
use crate::domain::roles::Role;
use crate::error::Error;
use crate::mail::escape;
use actix_web::{get, patch, post, web, HttpResponse};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserInfo>,
}

/// Every user (admins).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
#[get("/users")]
pub async fn list(state: State, user: SignedIn) -> Result<HttpResponse, Error> {
    let users = state
        .ctx
        .db
        .run(move |conn| app::user_admin::list(conn, &user.caller))
        .await?;
    Ok(HttpResponse::Ok().json(UserList { users }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub roles: Vec<Role>,
    pub email: Option<String>,
    /// At least 12 characters. Without it, the user sets one through a one-time link.
    pub password: Option<String>,
}

/// Create a user (admins). Without a password, a set-password link is mailed to the user,
/// or returned as `set_password_url` when they have no address.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = CreateUser,
    responses(
        (status = 201, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, description = "the username (or one that looks like it) is taken", body = ErrorBody),
        (status = 503, description = "too many passwords being hashed at once", body = ErrorBody),
    )
)]
#[post("/users")]
pub async fn create(
    state: State,
    user: SignedIn,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, Error> {
    user.caller
        .require(crate::domain::roles::Permission::Administer)?;
    let b = body.into_inner();
    let password_hash = match b.password {
        Some(p) => {
            check_new_password(&p)?;
            Some(state.ctx.hashing.hash(p).await?)
        }
        None => None,
    };
    let new = NewUser {
        username: b.username,
        roles: b.roles,
        email: b.email,
        password_hash,
    };
    let ctx = state.ctx.clone();
    let info = state
        .ctx
        .db
        .run(move |conn| app::user_admin::create(&ctx, conn, &user.caller, &new))
        .await?;
    Ok(HttpResponse::Created().json(info))
}

/// `Some(None)` for an explicit null, `None` for a missing field.
fn explicit<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    pub roles: Option<Vec<Role>>,
    /// null removes the address.
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A disabled user's sessions end at once and sign-in is refused.
    pub disabled: Option<bool>,
}

/// Change a user's roles, address or disabled (admins).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the user's id (UUID)")),
    request_body = PatchUser,
    responses(
        (status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the last admin, or one's own admin role or account", body = ErrorBody),
    )
)]
#[patch("/users/{id}")]
pub async fn update(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
    body: web::Json<PatchUser>,
) -> Result<HttpResponse, Error> {
    let id: UserId = super::parse_id(&id)?;
    let b = body.into_inner();
    let patch = UserPatch {
        roles: b.roles,
        email: b.email,
        disabled: b.disabled,
    };
    let ctx = state.ctx.clone();
    let info = state
        .ctx
        .db
        .run(move |conn| app::user_admin::update(&ctx, conn, &user.caller, id, &patch))
        .await?;
    Ok(HttpResponse::Ok().json(info))
}

/// Reset a user's password (admins): their sessions end and a set-password link goes out.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "the user's id (UUID)")),
    responses(
        (status = 200, body = ResetAnswer), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    )
)]
#[post("/users/{id}/password-reset")]
pub async fn reset(
    state: State,
    user: SignedIn,
    id: web::Path<String>,
) -> Result<HttpResponse, Error> {
    let id: UserId = super::parse_id(&id)?;
    let ctx = state.ctx.clone();
    let answer = state
        .ctx
        .db
        .run(move |conn| app::user_admin::reset_password(&ctx, conn, &user.caller, id))
        .await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The token of the set-password link.
    pub token: String,
    /// At least 12 characters.
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordSet {
    pub ok: bool,
}

async fn set_password_with(state: &State, token: String, password: String) -> Result<(), Error> {
    check_new_password(&password)?;
    if token.is_empty() || token.len() > 100 {
        return Err(Error::BadRequest(
            "this set-password link is unknown, used or expired".into(),
        ));
    }
    let hash = state.ctx.hashing.hash(password).await?;
    let ctx = state.ctx.clone();
    state
        .ctx
        .db
        .run(move |conn| app::user_admin::set_password(&ctx, conn, &token, &hash))
        .await
}

/// Set a password with a one-time link's token (no sign-in).
#[utoipa::path(
    tag = "auth",
    request_body = SetPassword,
    responses(
        (status = 200, body = PasswordSet), (status = 400, description = "a short password, or a token that is unknown, used or expired", body = ErrorBody),
        (status = 503, description = "too many passwords being hashed at once", body = ErrorBody),
    )
)]
#[post("/password")]
pub async fn set_password(
    state: State,
    body: web::Json<SetPassword>,
) -> Result<HttpResponse, Error> {
    let b = body.into_inner();
    set_password_with(&state, b.token, b.password).await?;
    Ok(HttpResponse::Ok().json(PasswordSet { ok: true }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    pub token: Option<String>,
}

#[get("/set-password")]
pub async fn form(q: web::Query<PageQuery>) -> HttpResponse {
    let token = q.into_inner().token.unwrap_or_default();
    page("Set your password", &format!(
        "<form method=\"post\" action=\"/set-password\">\n<input type=\"hidden\" name=\"token\" value=\"{}\">\n<p><label for=\"password\">New password (at least 12 characters)</label><br>\n<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"12\" required></p>\n<p><button type=\"submit\">Set password</button></p>\n</form>\n",
        escape(&token)
    ))
}

#[derive(Debug, Deserialize)]
pub struct PageForm {
    pub token: String,
    pub password: String,
}

#[post("/set-password")]
pub async fn submit(state: State, f: web::Form<PageForm>) -> HttpResponse {
    let f = f.into_inner();
    match set_password_with(&state, f.token, f.password).await {
        Ok(()) => page(
            "Set your password",
            "<p>Your password is set. You can sign in now.</p>\n",
        ),
        Err(e) => {
            let mut answer = page("Set your password", &format!(
                "<p role=\"alert\">{}</p>\n<p>Go back and try again, or ask an admin for a new link.</p>\n",
                escape(&e.to_string())
            ));
            *answer.status_mut() = match e {
                Error::Overloaded(_) => actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                _ => actix_web::http::StatusCode::BAD_REQUEST,
            };
            answer
        }
    }
}
