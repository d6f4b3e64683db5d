//! Users over the API (spec/api.md "Users"): admins list, create, change and disable users
//! and reset passwords; a user sets a password through a one-time link. The link's token
//! is stored only as its SHA-256, lives 24 hours and works once. It is mailed to a user
//! with an address, and handed back to the admin only for a user without one.

use super::notify;
use super::users::{check_email, insert_user, token_hash, validate_new_user, NO_PASSWORD};
use super::{Caller, Context};
use crate::audit::{Actor, AuditAction};
use crate::db::users::UserRow;
use crate::db::{self, write_tx, DbConn};
use crate::domain::ids::UserId;
use crate::domain::roles::{Permission, Role, RoleSet};
use crate::error::{Error, Result};
use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use rand::RngCore;
use serde::Serialize;
use utoipa::ToSchema;

/// How long a set-password link works.
pub const LINK_VALID: Duration = Duration::hours(24);

/// A user as admins see them (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserInfo {
    pub id: UserId,
    pub username: String,
    pub roles: Vec<Role>,
    pub email: Option<String>,
    pub disabled: bool,
    /// The one-time link to set a password: only when one was made for a user without an
    /// e-mail address (who cannot be mailed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_password_url: Option<String>,
}

impl UserInfo {
    fn of(u: &UserRow) -> UserInfo {
        UserInfo {
            id: u.id,
            username: u.username.clone(),
            roles: u.roles.to_vec(),
            email: u.email.clone(),
            disabled: u.disabled,
            set_password_url: None,
        }
    }
}

fn load(conn: &mut DbConn, id: UserId) -> Result<UserRow> {
    db::users::by_id(conn, id)?.ok_or_else(|| Error::not_found("user", id))
}

/// Every user. Errors: 403 for anyone but an admin.
pub fn list(conn: &mut DbConn, caller: &Caller) -> Result<Vec<UserInfo>> {
    caller.require(Permission::Administer)?;
    Ok(db::users::all(conn)?.iter().map(UserInfo::of).collect())
}

/// Makes a set-password token for `user` (the earlier ones stop working) and either mails
/// the link (a user with an address) or returns it.
fn issue_link(
    ctx: &Context,
    conn: &mut DbConn,
    user: &UserRow,
    t: NaiveDateTime,
) -> Result<Option<String>> {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    db::users::insert_password_token(conn, &token_hash(&token), user.id, t, t + LINK_VALID)?;
    let url = format!("{}/set-password?token={token}", ctx.settings.public_url);
    if notify::set_password(ctx, conn, user, &url, t)? {
        Ok(None)
    } else {
        Ok(Some(url))
    }
}

/// A new user from an admin.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub roles: Vec<Role>,
    pub email: Option<String>,
    /// The hash of the password the admin gave, if any ([`super::passwords::HashingPool::hash`]).
    pub password_hash: Option<String>,
}

/// Creates a user (`user.created`). Without a password, a set-password link goes out.
/// Errors: 400 bad name, roles, address or password; 403 not an admin; 409 name taken.
pub fn create(ctx: &Context, conn: &mut DbConn, caller: &Caller, u: &NewUser) -> Result<UserInfo> {
    caller.require(Permission::Administer)?;
    let username = validate_new_user(&u.username, &u.roles, u.email.as_deref())?;
    let created = write_tx(conn, |conn| {
        let t = ctx.clock.now().naive_utc();
        let hash = u.password_hash.as_deref().unwrap_or(NO_PASSWORD);
        let id = insert_user(
            conn,
            &Actor::User(caller.id),
            &username,
            hash,
            &u.roles,
            u.email.as_deref(),
            t,
        )?;
        let row = load(conn, id)?;
        let mut info = UserInfo::of(&row);
        if u.password_hash.is_none() {
            info.set_password_url = issue_link(ctx, conn, &row, t)?;
        }
        Ok(info)
    });
    ctx.wake_workers();
    created
}

/// An admin's change to a user: each field given replaces the stored one.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub roles: Option<Vec<Role>>,
    /// `Some(None)` removes the address.
    pub email: Option<Option<String>>,
    pub disabled: Option<bool>,
}

/// Whether the user counts as an admin who can act (holds the role, not disabled).
fn active_admin(u: &UserRow) -> bool {
    !u.disabled && u.roles.contains(Role::Admin)
}

/// Changes roles, address or disabled (`user.updated`, with what changed). Disabling ends
/// the user's sessions at once. Errors: 400 bad roles or address; 403 not an admin; 404
/// unknown; 409 removing or disabling the last admin, or one's own admin role or account.
pub fn update(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: UserId,
    p: &UserPatch,
) -> Result<UserInfo> {
    caller.require(Permission::Administer)?;
    if let Some(roles) = &p.roles {
        if roles.is_empty() {
            return Err(Error::BadRequest("a user needs at least one role".into()));
        }
    }
    if let Some(Some(e)) = &p.email {
        check_email(e)?;
    }
    write_tx(conn, |conn| {
        let before = load(conn, id)?;
        let roles = p
            .roles
            .as_deref()
            .map_or_else(|| before.roles.clone(), RoleSet::new);
        let email = p.email.clone().unwrap_or_else(|| before.email.clone());
        let disabled = p.disabled.unwrap_or(before.disabled);
        let mut after = before.clone();
        after.roles = roles.clone();
        after.disabled = disabled;
        if active_admin(&before) && !active_admin(&after) {
            if id == caller.id {
                return Err(Error::Conflict(
                    "you cannot take away your own admin role or disable your own account; ask another admin".into(),
                ));
            }
            let others = db::users::all(conn)?
                .iter()
                .filter(|u| u.id != before.id && active_admin(u))
                .count();
            if others == 0 {
                return Err(Error::Conflict(
                    "this is the last admin: make someone else an admin first".into(),
                ));
            }
        }
        let changed_roles = (roles != before.roles).then(|| roles.to_vec());
        let changed_email = (email != before.email).then(|| email.clone());
        let changed_disabled = (disabled != before.disabled).then_some(disabled);
        if changed_roles.is_none() && changed_email.is_none() && changed_disabled.is_none() {
            return Ok(UserInfo::of(&before));
        }
        db::users::update_profile(conn, id, &roles, email.as_deref(), disabled)?;
        if disabled {
            db::users::delete_sessions_of(conn, id)?;
        }
        db::audit::append(
            conn,
            ctx.clock.now().naive_utc(),
            &Actor::User(caller.id),
            Some(&id),
            &AuditAction::UserUpdated {
                username: None,
                previous_username: None,
                roles: changed_roles,
                email: changed_email,
                disabled: changed_disabled,
            },
        )?;
        Ok(UserInfo::of(&load(conn, id)?))
    })
}

/// What a reset hands back: the link, only for a user without an address.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResetAnswer {
    /// Null when the link was mailed to the user.
    pub set_password_url: Option<String>,
}

/// Resets a user's password: their sessions end and a new set-password link goes out
/// (`user.password_reset`, the admin as actor). The old password keeps working until the
/// link is used. Errors: 403 not an admin; 404 unknown.
pub fn reset_password(
    ctx: &Context,
    conn: &mut DbConn,
    caller: &Caller,
    id: UserId,
) -> Result<ResetAnswer> {
    caller.require(Permission::Administer)?;
    let answer = write_tx(conn, |conn| {
        let user = load(conn, id)?;
        let t = ctx.clock.now().naive_utc();
        db::users::delete_sessions_of(conn, id)?;
        db::audit::append(
            conn,
            t,
            &Actor::User(caller.id),
            Some(&id),
            &AuditAction::UserPasswordReset {},
        )?;
        Ok(ResetAnswer {
            set_password_url: issue_link(ctx, conn, &user, t)?,
        })
    });
    ctx.wake_workers();
    answer
}

/// Sets the password of the token's user, with `hash` ([`super::passwords::HashingPool::hash`]
/// of a password that passed [`super::users::check_new_password`]). The token is spent, the user's sessions
/// end (`user.password_set`, the user as actor). Errors: 400 for a token that is unknown,
/// used or expired.
pub fn set_password(ctx: &Context, conn: &mut DbConn, token: &str, hash: &str) -> Result<()> {
    write_tx(conn, |conn| {
        let t = ctx.clock.now().naive_utc();
        let Some(id) = db::users::use_password_token(conn, &token_hash(token), t)? else {
            return Err(Error::BadRequest(
                "this set-password link is unknown, used or expired; ask an admin for a new one"
                    .into(),
            ));
        };
        db::users::set_password_hash(conn, id, hash)?;
        db::users::delete_sessions_of(conn, id)?;
        db::audit::append(
            conn,
            t,
            &Actor::User(id),
            Some(&id),
            &AuditAction::UserPasswordSet {},
        )?;
        Ok(())
    })
}
