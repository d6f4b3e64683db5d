//! Users and sign-in (spec/api.md "People and roles"): Argon2id password hashes, random
//! bearer tokens stored only as SHA-256 hashes, and the lock-out after failed sign-ins.

use super::{now, Caller};
use crate::audit::Actor;
use crate::db::{self, write_tx, DbConn};
use crate::domain::ids::UserId;
use crate::domain::roles::{format_role_list, Role};
use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Lock-out: this many failures for one username within [`LOCKOUT_WINDOW`] lock it…
pub const USERNAME_FAILURE_LIMIT: usize = 5;
/// …and this many from one address lock that address…
pub const ADDRESS_FAILURE_LIMIT: usize = 20;
/// …for this long.
pub const LOCKOUT_WINDOW: Duration = Duration::minutes(15);

pub const MIN_PASSWORD_CHARS: usize = 8;

/// Validates and creates a user; records `user.created`. `actor` is the admin who did it,
/// or `System` from the command line.
///
/// Errors: 400 for a bad username, password, e-mail or empty role list; 409 if the username
/// is taken.
pub fn create_user(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    password: &str,
    roles: &[Role],
    email: Option<&str>,
) -> Result<UserId> {
    let username = username.trim();
    let valid_name = !username.is_empty()
        && username.chars().count() <= 64
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || "._-@".contains(c));
    if !valid_name {
        return Err(Error::BadRequest(
            "a username is 1 to 64 letters, digits, '.', '_', '-' or '@'".into(),
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if roles.is_empty() {
        return Err(Error::BadRequest("a user needs at least one role".into()));
    }
    if let Some(e) = email {
        let ok = !e.contains('\0')
            && e.len() <= 254
            && e.split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'));
        if !ok {
            return Err(Error::BadRequest(format!("{e:?} is not an e-mail address")));
        }
    }
    let hash = hash_password(password)?;
    let id = UserId::new();
    let roles_stored = format_role_list(roles);
    write_tx(conn, |conn| {
        if db::users::by_username(conn, username)?.is_some() {
            return Err(Error::Conflict(format!(
                "the username {username:?} is taken"
            )));
        }
        db::users::insert(
            conn,
            &db::users::NewUser {
                id,
                username,
                password_hash: &hash,
                email,
                roles: &roles_stored,
                created_at: now().naive_utc(),
            },
        )?;
        let id_text = id.to_string();
        db::audit::append(
            conn,
            actor,
            "user.created",
            Some(&id_text),
            &json!({"username": username, "roles": roles, "email": email}),
        )?;
        Ok(id)
    })
}

fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing: {e}")))
}

fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash that no password matches, verified for unknown usernames so that a sign-in takes
/// as long whether or not the user exists.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password, never assigned").unwrap_or_default())
}

/// A successful sign-in.
pub struct SignIn {
    /// The bearer token; shown once, stored only as its hash.
    pub token: String,
    pub user: Caller,
    pub expires_at: NaiveDateTime,
}

/// The hash under which a token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Failed sign-ins are counted by a hash of the lower-cased username, so the table never
/// holds a name someone mistyped.
fn username_key(username: &str) -> String {
    hex::encode(Sha256::digest(username.trim().to_lowercase().as_bytes()))
}

/// Whether `limit` failures fall within one window that is still running at `now`.
fn is_locked(failures: &[NaiveDateTime], limit: usize, now: NaiveDateTime) -> bool {
    failures.windows(limit).any(|w| {
        let (first, last) = (w[0], w[limit - 1]);
        last - first <= LOCKOUT_WINDOW && now - last < LOCKOUT_WINDOW
    })
}

/// Signs a user in (spec/api.md `POST /login`), recording `user.login` or
/// `user.login_failed`.
///
/// Errors: 401 for a wrong username or password; 429 while the username or the address is
/// locked out, even for the right password.
pub fn login(
    conn: &mut DbConn,
    username: &str,
    password: &str,
    remote_addr: &str,
    session_hours: u32,
) -> Result<SignIn> {
    let key = username_key(username);
    // A name no user can have (see create_user) is looked up as nobody; PostgreSQL could not
    // even take a NUL in the query.
    let user = if username.contains('\0') {
        None
    } else {
        db::users::by_username(conn, username.trim())?
    };
    // The slow hash runs before the write transaction, so it never holds the write lock.
    let password_ok = match &user {
        Some(u) => verify_password(password, &u.password_hash),
        None => {
            verify_password(password, decoy_hash());
            false
        }
    };
    let outcome = write_tx(conn, |conn| {
        let t = now().naive_utc();
        let since = t - LOCKOUT_WINDOW * 2;
        let locked = is_locked(
            &db::users::failures_for_username(conn, &key, since)?,
            USERNAME_FAILURE_LIMIT,
            t,
        ) || is_locked(
            &db::users::failures_for_addr(conn, remote_addr, since)?,
            ADDRESS_FAILURE_LIMIT,
            t,
        );
        if locked {
            return Ok(Err(Error::TooManyRequests(
                "too many failed sign-ins; try again in 15 minutes".into(),
            )));
        }
        match (&user, password_ok) {
            (Some(u), true) => {
                let id = u.user_id()?;
                let mut raw = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
                let expires_at = t + Duration::hours(i64::from(session_hours));
                db::users::insert_session(conn, &token_hash(&token), id, t, expires_at)?;
                db::audit::append(
                    conn,
                    &Actor::User(id),
                    "user.login",
                    Some(&u.id),
                    &json!({}),
                )?;
                Ok(Ok(SignIn {
                    token,
                    user: Caller {
                        id,
                        username: u.username.clone(),
                        roles: u.role_list(),
                    },
                    expires_at,
                }))
            }
            _ => {
                db::users::record_login_failure(conn, &key, remote_addr, t)?;
                let subject = user.as_ref().map(|u| u.id.as_str());
                let reason = if user.is_some() {
                    "wrong_password"
                } else {
                    "unknown_user"
                };
                db::audit::append(
                    conn,
                    &Actor::System,
                    "user.login_failed",
                    subject,
                    &json!({"reason": reason}),
                )?;
                Ok(Err(Error::Unauthorized(
                    "wrong username or password".into(),
                )))
            }
        }
    })?;
    outcome
}

/// Ends the session of this token (idempotent).
pub fn logout(conn: &mut DbConn, caller: &Caller, token: &str) -> Result<()> {
    write_tx(conn, |conn| {
        if db::users::delete_session(conn, &token_hash(token))? > 0 {
            let id = caller.id.to_string();
            db::audit::append(
                conn,
                &Actor::User(caller.id),
                "user.logout",
                Some(&id),
                &json!({}),
            )?;
        }
        Ok(())
    })
}

/// Deletes expired sessions and failed sign-ins older than any lock-out window (run
/// periodically; neither is needed once past).
pub fn prune_expired(conn: &mut DbConn) -> Result<()> {
    let t = now().naive_utc();
    db::users::prune(conn, t, t - LOCKOUT_WINDOW * 2)
}

/// The user behind a bearer token. Errors: 401 for an unknown or expired token.
pub fn authenticate(conn: &mut DbConn, token: &str) -> Result<Caller> {
    let user =
        db::users::session_user(conn, &token_hash(token), now().naive_utc())?.ok_or_else(|| {
            Error::Unauthorized("the sign-in token is unknown or expired; sign in again".into())
        })?;
    Ok(Caller {
        id: user.user_id()?,
        username: user.username.clone(),
        roles: user.role_list(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
            + Duration::minutes(minutes)
    }

    #[test]
    fn five_failures_within_fifteen_minutes_lock_for_fifteen_minutes() {
        let failures: Vec<_> = (0..5).map(|i| at(i * 3)).collect(); // 0,3,6,9,12
        assert!(is_locked(&failures, 5, at(12)));
        assert!(is_locked(&failures, 5, at(26)));
        assert!(!is_locked(&failures, 5, at(27)));
        assert!(!is_locked(&failures[..4], 5, at(12)));
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_lock() {
        let failures: Vec<_> = (0..5).map(|i| at(i * 4)).collect(); // 0..16 minutes
        assert!(!is_locked(&failures, 5, at(16)));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct hors", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
