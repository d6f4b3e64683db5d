//! Users, sign-in sessions (tokens stored as SHA-256 hashes) and failed sign-ins.

use super::schema::{login_failures, password_tokens, sessions, users};
use super::{on_backend, DbConn};
use crate::domain::ids::UserId;
use crate::domain::roles::RoleSet;
use crate::domain::username::Username;
use crate::error::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    #[diesel(deserialize_as = String)]
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub email: Option<String>,
    #[diesel(deserialize_as = String)]
    pub roles: RoleSet,
    pub created_at: NaiveDateTime,
    /// NULL only for a user created before comparison forms existed whose name clashes.
    pub username_canonical: Option<String>,
    /// A disabled user cannot sign in and gets no mail.
    pub disabled: bool,
}

pub struct NewUser<'a> {
    pub id: UserId,
    pub username: &'a Username,
    pub password_hash: &'a str,
    pub email: Option<&'a str>,
    pub roles: &'a RoleSet,
    pub created_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, u: &NewUser<'_>) -> Result<()> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(u.id.to_string()),
            users::username.eq(u.username.as_str()),
            users::username_canonical.eq(u.username.canonical()),
            users::username_skeleton.eq(u.username.skeleton()),
            users::username_skeleton_cased.eq(u.username.cased_skeleton()),
            users::password_hash.eq(u.password_hash),
            users::email.eq(u.email),
            users::roles.eq(u.roles.to_string()),
            users::created_at.eq(u.created_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user whose canonical username (domain::username::canonical) is `canonical`.
pub fn by_canonical_name(conn: &mut DbConn, canonical: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .select(UserRow::as_select())
        .filter(users::username_canonical.eq(canonical))
        .get_result(conn)
        .optional()?)
}

/// The user stored under exactly this username, keyed or not (for renaming a clash).
pub fn by_exact_name(conn: &mut DbConn, username: &str) -> Result<Option<UserRow>> {
    Ok(users::table
        .select(UserRow::as_select())
        .filter(users::username.eq(username))
        .first(conn)
        .optional()?)
}

/// Another user (not `except`) whose canonical form is that of `name`, or one of whose two
/// skeletons is one of `name`'s.
pub fn clashing_with(
    conn: &mut DbConn,
    name: &Username,
    except: Option<UserId>,
) -> Result<Option<UserRow>> {
    let mut q = users::table
        .select(UserRow::as_select())
        .filter(
            users::username_canonical
                .eq(name.canonical())
                .or(users::username_skeleton.eq_any(name.skeletons()))
                .or(users::username_skeleton_cased.eq_any(name.skeletons())),
        )
        .into_boxed();
    if let Some(id) = except {
        q = q.filter(users::id.ne(id.to_string()));
    }
    Ok(q.first(conn).optional()?)
}

/// Users whose comparison forms are not filled in yet, oldest first.
pub fn without_name_keys(conn: &mut DbConn) -> Result<Vec<UserRow>> {
    Ok(users::table
        .select(UserRow::as_select())
        .filter(users::username_canonical.is_null())
        .order((users::created_at.asc(), users::id.asc()))
        .load(conn)?)
}

/// Sets a user's username (as shown) and its comparison forms.
pub fn set_username(conn: &mut DbConn, id: UserId, name: &Username) -> Result<()> {
    diesel::update(users::table.filter(users::id.eq(id.to_string())))
        .set((
            users::username.eq(name.as_str()),
            users::username_canonical.eq(name.canonical()),
            users::username_skeleton.eq(name.skeleton()),
            users::username_skeleton_cased.eq(name.cased_skeleton()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Replaces a user's stored password hash (a re-hash with current parameters).
pub fn set_password_hash(conn: &mut DbConn, id: UserId, hash: &str) -> Result<()> {
    diesel::update(users::table.filter(users::id.eq(id.to_string())))
        .set(users::password_hash.eq(hash))
        .execute(conn)?;
    Ok(())
}

pub fn by_id(conn: &mut DbConn, id: UserId) -> Result<Option<UserRow>> {
    Ok(users::table
        .select(UserRow::as_select())
        .filter(users::id.eq(id.to_string()))
        .get_result(conn)
        .optional()?)
}

pub fn insert_session(
    conn: &mut DbConn,
    token_hash: &str,
    user: UserId,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::token_hash.eq(token_hash),
            sessions::user_id.eq(user.to_string()),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user behind an unexpired session token hash.
pub fn session_user(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<UserRow>> {
    // Every signed-in request asks this: on the backend's own connection, kept prepared.
    Ok(on_backend!(conn, c => sessions::table
        .inner_join(users::table)
        .select(UserRow::as_select())
        .filter(sessions::token_hash.eq(token_hash))
        .filter(sessions::expires_at.gt(now))
        .filter(users::disabled.eq(false))
        .get_result(c)
        .optional())?)
}

pub fn delete_session(conn: &mut DbConn, token_hash: &str) -> Result<usize> {
    Ok(
        diesel::delete(sessions::table.filter(sessions::token_hash.eq(token_hash)))
            .execute(conn)?,
    )
}

pub fn record_login_failure(
    conn: &mut DbConn,
    username: &str,
    remote_addr: &str,
    at: NaiveDateTime,
) -> Result<()> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::id.eq(uuid::Uuid::now_v7().to_string()),
            login_failures::username.eq(username),
            login_failures::remote_addr.eq(remote_addr),
            login_failures::at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Times of failed sign-ins for this username since `since`, oldest first.
pub fn failures_for_username(
    conn: &mut DbConn,
    username: &str,
    since: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>> {
    Ok(login_failures::table
        .select(login_failures::at)
        .filter(login_failures::username.eq(username))
        .filter(login_failures::at.ge(since))
        .order(login_failures::at.asc())
        .load(conn)?)
}

/// Times of failed sign-ins from this address since `since`, oldest first.
pub fn failures_for_addr(
    conn: &mut DbConn,
    remote_addr: &str,
    since: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>> {
    Ok(login_failures::table
        .select(login_failures::at)
        .filter(login_failures::remote_addr.eq(remote_addr))
        .filter(login_failures::at.ge(since))
        .order(login_failures::at.asc())
        .load(conn)?)
}

/// Removes sessions that expired before `now` and failures older than `before`.
pub fn prune(conn: &mut DbConn, now: NaiveDateTime, failures_before: NaiveDateTime) -> Result<()> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)?;
    diesel::delete(login_failures::table.filter(login_failures::at.lt(failures_before)))
        .execute(conn)?;
    Ok(())
}

/// Every user with an e-mail address (the people mail can reach), oldest first.
pub fn with_email(conn: &mut DbConn) -> Result<Vec<UserRow>> {
    Ok(users::table
        .select(UserRow::as_select())
        .filter(users::email.is_not_null())
        .filter(users::disabled.eq(false))
        .order(users::id.asc())
        .load(conn)?)
}

/// Every user, oldest first.
pub fn all(conn: &mut DbConn) -> Result<Vec<UserRow>> {
    Ok(users::table
        .select(UserRow::as_select())
        .order(users::id.asc())
        .load(conn)?)
}

/// Sets a user's roles, e-mail address and disabled flag.
pub fn update_profile(
    conn: &mut DbConn,
    id: UserId,
    roles: &RoleSet,
    email: Option<&str>,
    disabled: bool,
) -> Result<()> {
    diesel::update(users::table.filter(users::id.eq(id.to_string())))
        .set((
            users::roles.eq(roles.to_string()),
            users::email.eq(email),
            users::disabled.eq(disabled),
        ))
        .execute(conn)?;
    Ok(())
}

/// Ends every session of a user.
pub fn delete_sessions_of(conn: &mut DbConn, id: UserId) -> Result<usize> {
    Ok(
        diesel::delete(sessions::table.filter(sessions::user_id.eq(id.to_string())))
            .execute(conn)?,
    )
}

/// Stores a set-password token (its hash), valid until `expires_at`; the user's earlier
/// unused tokens stop working.
pub fn insert_password_token(
    conn: &mut DbConn,
    token_hash: &str,
    user: UserId,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<()> {
    diesel::update(
        password_tokens::table
            .filter(password_tokens::user_id.eq(user.to_string()))
            .filter(password_tokens::used_at.is_null()),
    )
    .set(password_tokens::used_at.eq(Some(now)))
    .execute(conn)?;
    diesel::insert_into(password_tokens::table)
        .values((
            password_tokens::token_hash.eq(token_hash),
            password_tokens::user_id.eq(user.to_string()),
            password_tokens::created_at.eq(now),
            password_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Spends a set-password token: the user it belongs to when it is unused and unexpired at
/// `now` (it is then used), else `None`.
pub fn use_password_token(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<UserId>> {
    let user: Option<String> = password_tokens::table
        .select(password_tokens::user_id)
        .filter(password_tokens::token_hash.eq(token_hash))
        .filter(password_tokens::used_at.is_null())
        .filter(password_tokens::expires_at.gt(now))
        .get_result(conn)
        .optional()?;
    let Some(user) = user else { return Ok(None) };
    let spent = diesel::update(
        password_tokens::table
            .filter(password_tokens::token_hash.eq(token_hash))
            .filter(password_tokens::used_at.is_null()),
    )
    .set(password_tokens::used_at.eq(Some(now)))
    .execute(conn)?;
    if spent != 1 {
        return Ok(None);
    }
    user.parse()
        .map(Some)
        .map_err(|e| Error::Internal(format!("stored token user id: {e}")))
}
