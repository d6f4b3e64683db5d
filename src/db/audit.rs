//! The audit log's tables: the append path (inside the caller's write transaction), the
//! auditors' query, and the ordered read that `audit verify` walks.

use super::schema::{audit_entries, audit_head};
use super::DbConn;
use crate::audit::{entry_body, leaf_hash, Actor};
use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

/// Locks the head row until the transaction ends (see [`super::write_tx`]). The no-op
/// update is what takes the lock on both engines.
pub fn lock_head(conn: &mut DbConn) -> Result<i64> {
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::size.eq(audit_head::size))
        .execute(conn)?;
    Ok(audit_head::table
        .select(audit_head::size)
        .filter(audit_head::id.eq(1))
        .first(conn)?)
}

/// One stored entry.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_entries)]
pub struct StoredEntry {
    pub seq: i64,
    pub at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub body: String,
    pub leaf_hash: String,
}

/// Appends one entry; must run inside [`super::write_tx`], in the transaction of the
/// change it records. Returns its `seq`.
pub fn append(
    conn: &mut DbConn,
    actor: &Actor,
    action: &str,
    subject: Option<&str>,
    data: &serde_json::Value,
) -> Result<i64> {
    let size: i64 = audit_head::table
        .select(audit_head::size)
        .filter(audit_head::id.eq(1))
        .first(conn)?;
    let seq = size + 1;
    let at = Utc::now();
    let body = entry_body(seq, at, actor, action, subject, data)?;
    let hash = hex::encode(leaf_hash(body.as_bytes()));
    diesel::insert_into(audit_entries::table)
        .values((
            audit_entries::seq.eq(seq),
            audit_entries::at.eq(at.naive_utc()),
            audit_entries::actor.eq(actor.to_string()),
            audit_entries::action.eq(action),
            audit_entries::subject.eq(subject),
            audit_entries::body.eq(&body),
            audit_entries::leaf_hash.eq(&hash),
        ))
        .execute(conn)?;
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::size.eq(seq))
        .execute(conn)?;
    Ok(seq)
}

/// The auditors' filters (spec/api.md `GET /audit`); all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// The cursor: entries with a greater seq.
    pub after: Option<i64>,
    pub limit: i64,
}

/// Entries matching `filter`, by ascending seq, at most `limit`.
pub fn query(conn: &mut DbConn, filter: &AuditFilter) -> Result<Vec<StoredEntry>> {
    let mut q = audit_entries::table
        .select(StoredEntry::as_select())
        .into_boxed();
    if let Some(a) = &filter.actor {
        q = q.filter(audit_entries::actor.eq(a.clone()));
    }
    if let Some(a) = &filter.action {
        q = q.filter(audit_entries::action.eq(a.clone()));
    }
    if let Some(s) = &filter.subject {
        q = q.filter(audit_entries::subject.eq(s.clone()));
    }
    if let Some(t) = filter.since {
        q = q.filter(audit_entries::at.ge(t.naive_utc()));
    }
    if let Some(t) = filter.until {
        q = q.filter(audit_entries::at.lt(t.naive_utc()));
    }
    if let Some(after) = filter.after {
        q = q.filter(audit_entries::seq.gt(after));
    }
    Ok(q.order(audit_entries::seq.asc())
        .limit(filter.limit)
        .load(conn)?)
}

/// Entries with `seq > after`, in order, at most `limit`: the batches `audit verify` reads.
pub fn batch_after(
    conn: &mut DbConn,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String, String)>> {
    Ok(audit_entries::table
        .select((
            audit_entries::seq,
            audit_entries::body,
            audit_entries::leaf_hash,
        ))
        .filter(audit_entries::seq.gt(after))
        .order(audit_entries::seq.asc())
        .limit(limit)
        .load(conn)?)
}

/// The number of entries the head row records.
pub fn head_size(conn: &mut DbConn) -> Result<i64> {
    audit_head::table
        .select(audit_head::size)
        .filter(audit_head::id.eq(1))
        .first(conn)
        .map_err(Error::from)
}
