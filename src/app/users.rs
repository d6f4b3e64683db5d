//! Users and sign-in (spec/api.md "People and roles"): Argon2id password hashes (computed
//! on the bounded [`HashingPool`]), random bearer tokens stored only as SHA-256 hashes, the
//! lock-out after failed sign-ins, and usernames that cannot pass for one another
//! (`domain::username`).

use super::clock::Clock;
use super::passwords::{self, HashingPool, Verified};
use super::{now, Caller};
use crate::audit::action::{LockScope, LoginFailure};
use crate::audit::{Actor, AuditAction};
use crate::db::{self, write_tx, Db, DbConn};
use crate::domain::ids::UserId;
use crate::domain::roles::{Role, RoleSet};
use crate::domain::username::{self, Username};
use crate::error::{Error, Result};
use base64::Engine;
use chrono::{Duration, NaiveDateTime};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Lock-out: this many failures for one username within [`LOCKOUT_WINDOW`] lock it…
pub const USERNAME_FAILURE_LIMIT: usize = 5;
/// …and this many from one address lock that address…
pub const ADDRESS_FAILURE_LIMIT: usize = 20;
/// …for this long.
pub const LOCKOUT_WINDOW: Duration = Duration::minutes(15);

/// New passwords need this many characters (spec/api.md "Users"); existing ones still
/// sign in.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Validates and creates a user; records `user.created`. `actor` is the admin who did it,
/// or `System` from the command line. Hashes on the calling thread (the command line's one
/// hash; the service's sign-ins go through the [`HashingPool`]).
///
/// Errors: 400 for a bad username, password, e-mail or empty role list; 409 if the username,
/// or one that looks like it (same canonical form or confusable skeleton), is taken.
pub fn create_user(
    conn: &mut DbConn,
    actor: &Actor,
    username: &str,
    password: &str,
    roles: &[Role],
    email: Option<&str>,
) -> Result<UserId> {
    let username = validate_new_user(username, roles, email)?;
    check_new_password(password)?;
    let hash = passwords::hash_now(password)?;
    let t = now().naive_utc();
    write_tx(conn, |conn| {
        insert_user(conn, actor, &username, &hash, roles, email, t)
    })
}

/// A new password must be long enough (spec/api.md "Users"). Errors: 400.
pub fn check_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Whether `e` is an e-mail address a user may have. Errors: 400.
pub fn check_email(e: &str) -> Result<()> {
    if !crate::config::is_mail_address(e) {
        return Err(Error::BadRequest(format!(
            "{:?} is not an e-mail address",
            e.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// The checks of a new user that need no database: the name, at least one role, the
/// address. Errors: 400.
pub fn validate_new_user(username: &str, roles: &[Role], email: Option<&str>) -> Result<Username> {
    let username = Username::parse(username).map_err(|e| Error::BadRequest(e.to_string()))?;
    if roles.is_empty() {
        return Err(Error::BadRequest("a user needs at least one role".into()));
    }
    if let Some(e) = email {
        check_email(e)?;
    }
    Ok(username)
}

/// A password hash that no password matches: the user sets one through a link.
pub const NO_PASSWORD: &str = "!";

/// Inserts a validated user with this password hash and records `user.created`, inside the
/// caller's write transaction. Errors: 409 if the username, or one that looks like it, is
/// taken.
pub fn insert_user(
    conn: &mut DbConn,
    actor: &Actor,
    username: &Username,
    password_hash: &str,
    roles: &[Role],
    email: Option<&str>,
    t: NaiveDateTime,
) -> Result<UserId> {
    let id = UserId::new();
    let roles_stored = RoleSet::new(roles);
    {
        refuse_clash(conn, username, None)?;
        db::users::insert(
            conn,
            &db::users::NewUser {
                id,
                username,
                password_hash,
                email,
                roles: &roles_stored,
                created_at: t,
            },
        )?;
        db::audit::append(
            conn,
            t,
            actor,
            Some(&id),
            &AuditAction::UserCreated {
                username: username.as_str().to_string(),
                roles: roles_stored.to_vec(),
                email: email.map(str::to_string),
            },
        )?;
        Ok(id)
    }
}

/// 409 if another user's name is `name` in canonical form, or looks like it.
fn refuse_clash(conn: &mut DbConn, name: &Username, except: Option<UserId>) -> Result<()> {
    match db::users::clashing_with(conn, name, except)? {
        None => Ok(()),
        Some(other) if other.username_canonical.as_deref() == Some(name.canonical()) => {
            Err(Error::Conflict(format!(
                "the username {:?} is taken (by {:?}; names are compared ignoring case and width)",
                name.as_str(),
                other.username
            )))
        }
        Some(other) => Err(Error::Conflict(format!(
            "the username {:?} looks like the existing user {:?} (Unicode confusables); choose another",
            name.as_str(),
            other.username
        ))),
    }
}

/// Renames a user (`countersign user rename`), for instance one whose name clashes with an
/// earlier user's; records `user.updated` with the new and the previous name.
///
/// Errors: 404 for no user of that name; 400 for a bad new name; 409 if it clashes.
pub fn rename_user(conn: &mut DbConn, actor: &Actor, from: &str, to: &str) -> Result<UserId> {
    let new_name = Username::parse(to).map_err(|e| Error::BadRequest(e.to_string()))?;
    write_tx(conn, |conn| {
        let user = match db::users::by_exact_name(conn, from.trim())? {
            Some(u) => u,
            None => db::users::by_canonical_name(conn, &username::canonical(from))?
                .ok_or_else(|| Error::NotFound(format!("no user named {from:?}")))?,
        };
        let id = user.id;
        refuse_clash(conn, &new_name, Some(id))?;
        db::users::set_username(conn, id, &new_name)?;
        db::audit::append(
            conn,
            now().naive_utc(),
            actor,
            Some(&id),
            &AuditAction::UserUpdated {
                username: Some(new_name.as_str().to_string()),
                previous_username: Some(user.username.clone()),
                roles: None,
                email: None,
                disabled: None,
            },
        )?;
        Ok(id)
    })
}

/// A user whose name clashes with an earlier user's, found when the comparison forms were
/// filled in for users created before they existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameClash {
    pub username: String,
    pub id: UserId,
    /// The earlier user it clashes with, or why the name is refused.
    pub with: String,
}

impl std::fmt::Display for NameClash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} ({}) clashes with {}",
            self.username, self.id, self.with
        )
    }
}

/// Fills in the comparison forms of users that lack them (created before they existed),
/// oldest first, and returns the users left without because their names clash with an
/// earlier user's; `serve` refuses to start until those are renamed.
pub fn fill_username_keys(conn: &mut DbConn) -> Result<Vec<NameClash>> {
    write_tx(conn, |conn| {
        let mut clashes = Vec::new();
        for user in db::users::without_name_keys(conn)? {
            let id = user.id;
            let clash = |with: String| NameClash {
                username: user.username.clone(),
                id,
                with,
            };
            let name = match Username::parse(&user.username) {
                Ok(n) => n,
                Err(e) => {
                    clashes.push(clash(format!("no user: {e}")));
                    continue;
                }
            };
            match db::users::clashing_with(conn, &name, Some(id))? {
                Some(other) if other.username_canonical.is_some() => {
                    clashes.push(clash(format!("{:?} ({})", other.username, other.id)))
                }
                _ => db::users::set_username(conn, id, &name)?,
            }
        }
        Ok(clashes)
    })
}

/// A hash with the current parameters that no password matches (its output was never
/// computed from any input): verified for unknown usernames, so that a sign-in costs the
/// same whether or not the user exists.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZGVjb3lzYWx0ZGVjb3k$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

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

/// Failed sign-ins are counted by a hash of the canonical username, so the table never
/// holds a name someone mistyped, and `ALICE` counts against `alice`.
fn username_key(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Whether `limit` failures fall within one window that is still running at `now`.
fn is_locked(failures: &[NaiveDateTime], limit: usize, now: NaiveDateTime) -> bool {
    failures.windows(limit).any(|w| {
        let (first, last) = (w[0], w[limit - 1]);
        last - first <= LOCKOUT_WINDOW && now - last < LOCKOUT_WINDOW
    })
}

/// Which lock-outs are running for an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Locks {
    username: bool,
    address: bool,
}

impl Locks {
    fn any(self) -> bool {
        self.username || self.address
    }
}

fn lock_of(conn: &mut DbConn, key: &str, addr: &str, t: NaiveDateTime) -> Result<Locks> {
    let since = t - LOCKOUT_WINDOW * 2;
    Ok(Locks {
        username: is_locked(
            &db::users::failures_for_username(conn, key, since)?,
            USERNAME_FAILURE_LIMIT,
            t,
        ),
        address: is_locked(
            &db::users::failures_for_addr(conn, addr, since)?,
            ADDRESS_FAILURE_LIMIT,
            t,
        ),
    })
}

fn locked_out() -> Error {
    Error::TooManyRequests("too many failed sign-ins; try again in 15 minutes".into())
}

/// Signs a user in (spec/api.md `POST /login`), recording `user.login` or
/// `user.login_failed`, and `user.locked_out` once when a failure starts a lock-out.
///
/// First a place among the sign-ins under way is taken (else 503 at once, before any
/// database work); then three steps, so that nothing slow holds a database lock and a
/// locked-out attempt costs no hash: (1) a read decides the lock-out and finds the user;
/// (2) the password is verified on the hashing pool, against a decoy hash for an unknown
/// name; (3) one write transaction decides the lock-out again (failures may have arrived
/// meanwhile), re-reads the user and records the outcome, storing a re-hash if the stored
/// hash had old parameters.
///
/// `client` is the address failures are counted under (the peer, or the forwarded client
/// behind a trusted proxy).
///
/// Errors: 401 for a wrong username or password; 429 while the username or the address is
/// locked out, even for the right password; 503 ([`Error::Overloaded`]) when as many
/// sign-ins are under way as the hashing pool can take.
pub async fn sign_in(
    db: &Db,
    hashing: &HashingPool,
    clock: &Clock,
    username: String,
    password: String,
    client: String,
    session_hours: u32,
) -> Result<SignIn> {
    // Past the pool's capacity, turned away before any database work.
    let admission = hashing.admit()?;
    let canonical = username::canonical(&username);
    let key = username_key(&canonical);

    let (k, a, c, at) = (
        key.clone(),
        client.clone(),
        canonical.clone(),
        clock.clone(),
    );
    let user = db
        .run(move |conn| {
            if lock_of(conn, &k, &a, at.now().naive_utc())?.any() {
                return Err(locked_out());
            }
            // A name with a NUL is nobody (create_user refuses it); PostgreSQL could not
            // even take it in the query.
            if c.contains('\0') {
                return Ok(None);
            }
            db::users::by_canonical_name(conn, &c)
        })
        .await?;

    // Steps 2 and 3 run as their own task: if the client hangs up meanwhile, the request's
    // future is dropped, but the attempt is still recorded (else a client could fill the
    // hashing queue over and over without ever counting towards a lock-out).
    let (db, hashing, clock) = (db.clone(), hashing.clone(), clock.clone());
    tokio::spawn(async move {
        let stored = user
            .as_ref()
            .map_or_else(|| DECOY_HASH.to_string(), |u| u.password_hash.clone());
        let verified = hashing.verify(password, stored).await?;
        let verified = if user.is_some() {
            verified
        } else {
            Verified::NoMatch
        };
        let recorded = db
            .run(move |conn| {
                record_sign_in(conn, &clock, user, verified, &key, &client, session_hours)
            })
            .await?;
        drop(admission);
        recorded
    })
    .await
    .map_err(|e| Error::Internal(format!("sign-in task failed: {e}")))?
}

/// Step (3) of [`sign_in`]. The outer result is the transaction's; the inner one the
/// answer to the person signing in (a failure is recorded, so its transaction commits).
fn record_sign_in(
    conn: &mut DbConn,
    clock: &Clock,
    user: Option<db::users::UserRow>,
    verified: Verified,
    key: &str,
    client: &str,
    session_hours: u32,
) -> Result<Result<SignIn>> {
    write_tx(conn, |conn| {
        let t = clock.now().naive_utc();
        if lock_of(conn, key, client, t)?.any() {
            return Ok(Err(locked_out()));
        }
        // The password may have changed since it was verified: only the hash that was
        // checked signs in (and only it may be replaced by its re-hash).
        let verified = match (&user, verified) {
            (Some(u), Verified::Match { rehash }) => {
                let current = db::users::by_id(conn, u.id)?;
                if current.is_some_and(|c| c.password_hash == u.password_hash) {
                    Verified::Match { rehash }
                } else {
                    Verified::NoMatch
                }
            }
            (_, v) => v,
        };
        match (&user, verified) {
            (Some(u), Verified::Match { .. }) if u.disabled => Ok(Err(Error::Unauthorized(
                "this account is disabled; ask an admin".into(),
            ))),
            (Some(u), Verified::Match { rehash }) => {
                let id = u.id;
                if let Some(h) = rehash {
                    db::users::set_password_hash(conn, id, &h)?;
                }
                let mut raw = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut raw);
                let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
                let expires_at = t + Duration::hours(i64::from(session_hours));
                db::users::insert_session(conn, &token_hash(&token), id, t, expires_at)?;
                db::audit::append(
                    conn,
                    t,
                    &Actor::User(id),
                    Some(&u.id),
                    &AuditAction::UserLogin {},
                )?;
                Ok(Ok(SignIn {
                    token,
                    user: Caller {
                        id,
                        username: u.username.clone(),
                        roles: u.roles.clone(),
                    },
                    expires_at,
                }))
            }
            _ => {
                db::users::record_login_failure(conn, key, client, t)?;
                let subject = user.as_ref().map(|u| &u.id as &dyn std::fmt::Display);
                let reason = if user.is_some() {
                    LoginFailure::WrongPassword
                } else {
                    LoginFailure::UnknownUser
                };
                db::audit::append(
                    conn,
                    t,
                    &Actor::System,
                    subject,
                    &AuditAction::UserLoginFailed { reason },
                )?;
                // The failure that starts a lock-out is recorded once; the attempts refused
                // during it are not (a storm of them cannot flood the log). Neither lock ran
                // before this failure (checked above), so any that runs now starts here.
                let locks = lock_of(conn, key, client, t)?;
                let until = super::views::rfc3339(t + LOCKOUT_WINDOW);
                if locks.username {
                    let action = AuditAction::UserLockedOut {
                        scope: LockScope::Username,
                        until: until.clone(),
                    };
                    db::audit::append(conn, t, &Actor::System, subject, &action)?;
                }
                if locks.address {
                    let action = AuditAction::UserLockedOut {
                        scope: LockScope::Address {
                            address: client.to_string(),
                        },
                        until,
                    };
                    db::audit::append(conn, t, &Actor::System, None, &action)?;
                }
                Ok(Err(Error::Unauthorized(
                    "wrong username or password".into(),
                )))
            }
        }
    })
}

/// Ends the session of this token (idempotent).
pub fn logout(conn: &mut DbConn, clock: &Clock, caller: &Caller, token: &str) -> Result<()> {
    write_tx(conn, |conn| {
        if db::users::delete_session(conn, &token_hash(token))? > 0 {
            db::audit::append(
                conn,
                clock.now().naive_utc(),
                &Actor::User(caller.id),
                Some(&caller.id),
                &AuditAction::UserLogout {},
            )?;
        }
        Ok(())
    })
}

/// Deletes expired sessions and failed sign-ins older than any lock-out window (run
/// periodically; neither is needed once past).
pub fn prune_expired(conn: &mut DbConn, clock: &Clock) -> Result<()> {
    let t = clock.now().naive_utc();
    db::users::prune(conn, t, t - LOCKOUT_WINDOW * 2)
}

/// The user behind a bearer token. Errors: 401 for an unknown or expired token.
pub fn authenticate(conn: &mut DbConn, clock: &Clock, token: &str) -> Result<Caller> {
    let user = db::users::session_user(conn, &token_hash(token), clock.now().naive_utc())?
        .ok_or_else(|| {
            Error::Unauthorized("the sign-in token is unknown or expired; sign in again".into())
        })?;
    Ok(Caller {
        id: user.id,
        username: user.username.clone(),
        roles: user.roles,
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
    fn the_decoy_hash_costs_what_a_real_one_costs() {
        let real = passwords::hash_now("any password at all").unwrap();
        let params = |phc: &str| phc.split('$').nth(3).unwrap().to_string();
        assert_eq!(params(DECOY_HASH), params(&real));
        assert!(argon2::password_hash::PasswordHash::new(DECOY_HASH).is_ok());
    }
}
