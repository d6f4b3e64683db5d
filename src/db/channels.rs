//! Each channel's own state (`channel_state`), shared by every instance on the database:
//! refreshed OAuth tokens, the last mention read, the identity of the log channel's file.
//! Keys are per channel; the values are the channel's to interpret.

use super::schema::channel_state;
use super::DbConn;
use crate::error::{Error, Result};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// The value under `channel`/`key`, if one is stored.
pub fn get(conn: &mut DbConn, channel: &str, key: &str) -> Result<Option<String>> {
    Ok(channel_state::table
        .select(channel_state::value)
        .filter(channel_state::channel.eq(channel))
        .filter(channel_state::key.eq(key))
        .get_result(conn)
        .optional()?)
}

/// Stores `value` under `channel`/`key`, replacing what was there.
pub fn put(
    conn: &mut DbConn,
    channel: &str,
    key: &str,
    value: &str,
    now: NaiveDateTime,
) -> Result<()> {
    let changed = diesel::update(
        channel_state::table
            .filter(channel_state::channel.eq(channel))
            .filter(channel_state::key.eq(key)),
    )
    .set((
        channel_state::value.eq(value),
        channel_state::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed == 0 {
        insert_if_absent(conn, channel, key, value, now)?;
    }
    Ok(())
}

/// Stores `value` under `channel`/`key` unless a value is there; returns the value that is
/// stored afterwards (this one, or the one that was first: two instances starting at once
/// agree on one).
pub fn insert_if_absent(
    conn: &mut DbConn,
    channel: &str,
    key: &str,
    value: &str,
    now: NaiveDateTime,
) -> Result<String> {
    if let Some(stored) = get(conn, channel, key)? {
        return Ok(stored);
    }
    let inserted = diesel::insert_into(channel_state::table)
        .values((
            channel_state::channel.eq(channel),
            channel_state::key.eq(key),
            channel_state::value.eq(value),
            channel_state::updated_at.eq(now),
        ))
        .execute(conn);
    match inserted {
        // Another instance inserted first: its value stands.
        Ok(_)
        | Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => {}
        Err(e) => return Err(e.into()),
    }
    get(conn, channel, key)?
        .ok_or_else(|| Error::Internal(format!("channel state {channel}/{key} vanished")))
}

/// Runs `work` in a transaction that holds the row `channel`/`key` locked (created empty
/// if missing) against every other connection and instance, so that, for instance, a
/// single-use refresh token is spent by one of them only. Holds SQLite's write lock, so
/// `work` must be short (bounded by its own timeouts).
pub fn with_lock<T, F>(
    conn: &mut DbConn,
    channel: &str,
    key: &str,
    now: NaiveDateTime,
    work: F,
) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T>,
{
    insert_if_absent(conn, channel, key, "", now)?;
    conn.transaction::<T, Error, _>(|conn| {
        // An UPDATE takes the row lock on PostgreSQL and the write lock on SQLite.
        diesel::update(
            channel_state::table
                .filter(channel_state::channel.eq(channel))
                .filter(channel_state::key.eq(key)),
        )
        .set(channel_state::updated_at.eq(now))
        .execute(conn)?;
        work(conn)
    })
}
