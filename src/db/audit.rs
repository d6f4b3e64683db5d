//! The audit log's tables: the append path (inside the caller's write transaction), the
//! auditors' query, and the ordered read that `audit verify` walks.

use super::schema::{audit_checkpoints, audit_entries, audit_head, audit_log, audit_tree};
use super::{fixed_update, on_backend, DbConn};
use crate::audit::merkle::Hash;
use crate::audit::proof::{self, NodeId};
use crate::audit::{entry_body, leaf_hash, ActionName, Actor, AuditAction, EntryBody};
use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use std::collections::HashMap;

/// Locks the head row until the transaction ends. The no-op update is what takes the lock
/// on both engines; on SQLite without a group-commit writer it is also what takes the write
/// lock before anything is read (see [`super::write_tx`]).
pub fn lock_head(conn: &mut DbConn) -> Result<i64> {
    diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
        .set(audit_head::size.eq(audit_head::size))
        .execute(conn)?;
    Ok(audit_head::table
        .select(audit_head::size)
        .filter(audit_head::id.eq(1))
        .get_result(conn)?)
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

/// An entry recorded by the transaction on this thread, written when it is about to commit
/// (its `seq` is not known before).
struct Pending {
    at: NaiveDateTime,
    actor: Actor,
    action: &'static str,
    subject: Option<String>,
    data: serde_json::Value,
}

thread_local! {
    /// The entries of the write transaction running on this thread, in the order recorded.
    /// Work runs on its own thread even in a commit group (see `db::writer`).
    static PENDING: std::cell::RefCell<Vec<Pending>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records one entry in the write transaction of the change it records; it must run inside
/// [`super::write_tx`] (or [`super::write_tx_concurrent`]), which writes it just before the
/// commit: the head row, which hands out `seq`, is locked as late as possible, so
/// concurrent transactions hold it for one statement's time rather than their whole
/// length. `at` is the time of the change (the same value its rows store, at microsecond
/// precision: [`crate::app::now`], in UTC). `subject` is the id the action is about
/// (spec/audit.md "Subjects"), in its text form.
///
/// Errors: [`Error::Internal`] outside a write transaction (the entry would be lost).
pub fn append(
    _conn: &mut DbConn,
    at: NaiveDateTime,
    actor: &Actor,
    subject: Option<&dyn std::fmt::Display>,
    action: &AuditAction,
) -> Result<()> {
    if !super::writer::in_transaction() {
        return Err(Error::Internal(
            "an audit entry was recorded outside a write transaction".into(),
        ));
    }
    let entry = Pending {
        at,
        actor: actor.clone(),
        action: action.name().as_str(),
        subject: subject.map(|s| s.to_string()),
        data: action.data()?,
    };
    PENDING.with(|p| p.borrow_mut().push(entry));
    Ok(())
}

/// How many entries this thread's transaction has recorded so far (to undo a nested
/// transaction's with [`forget_pending_after`]).
pub(super) fn pending_mark() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// Forgets the entries recorded after `mark` (their savepoint rolled back).
pub(super) fn forget_pending_after(mark: usize) {
    PENDING.with(|p| p.borrow_mut().truncate(mark));
}

/// Writes the entries this thread's transaction recorded. On PostgreSQL each is one call of
/// `audit_append`, which locks the head row (it hands out `seq`) until the commit. On SQLite
/// the transaction already holds the write lock, so it reads the head, then for each entry
/// inserts it at the next `seq`, stores the subtrees it completes and moves the head onto it
/// (the order the database's triggers demand). The entries are forgotten either way.
pub(super) fn flush_pending(conn: &mut DbConn) -> Result<()> {
    let entries = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    if entries.is_empty() {
        return Ok(());
    }
    if let DbConn::Postgres(pg) = conn {
        return flush_in_database(pg, &entries);
    }
    // SQLite: the transaction holds the write lock already (the writer's `BEGIN
    // IMMEDIATE`, or `lock_head` first on a connection of its own).
    let (mut size, mut tree_size): (i64, i64) = on_backend!(conn, c => audit_head::table
        .select((audit_head::size, audit_head::tree_size))
        .filter(audit_head::id.eq(1))
        .get_result(c))?;
    // Entry times never go backwards along seq (a clock stepped back, or two instances'
    // clocks apart, would otherwise break it): time filters can then find their first seq
    // through the index on `at` instead of walking the log. A statement of its own, after
    // the lock: on PostgreSQL a subquery of the update would read the snapshot taken
    // before it waited for the lock, and miss the entry committed meanwhile.
    let mut last_at: Option<NaiveDateTime> = if size > 0 {
        Some(on_backend!(conn, c => audit_entries::table
            .select(audit_entries::at)
            .filter(audit_entries::seq.eq(size))
            .get_result(c))?)
    } else {
        None
    };
    for e in &entries {
        let seq = size + 1;
        let at = last_at.map_or(e.at, |last| e.at.max(last));
        last_at = Some(at);
        let body = entry_body(
            seq,
            at.and_utc(),
            &e.actor,
            e.action,
            e.subject.as_deref(),
            &e.data,
        )?;
        let leaf = leaf_hash(body.as_bytes());
        let actor = e.actor.to_string();
        let leaf_hex = hex::encode(leaf);
        on_backend!(conn, c => diesel::insert_into(audit_entries::table)
            .values((
                audit_entries::seq.eq(seq),
                audit_entries::at.eq(at),
                audit_entries::actor.eq(&actor),
                audit_entries::action.eq(e.action),
                audit_entries::subject.eq(e.subject.as_deref()),
                audit_entries::body.eq(&body),
                audit_entries::leaf_hash.eq(&leaf_hex),
            ))
            .execute(c))?;
        // The stored tree grows with the log, unless a log from before the tree existed is
        // still being filled in by `fill_tree` (then it catches this leaf up too).
        if tree_size == size {
            store_completed_nodes(conn, size as u64, leaf)?;
            tree_size = seq;
        }
        on_backend!(conn, c => fixed_update(
            audit_head::table,
            audit_head::id.eq(1),
            (
                audit_head::size.eq(seq),
                audit_head::tree_size.eq(tree_size),
            ),
        )
        .execute(c))?;
        size = seq;
    }
    Ok(())
}

/// PostgreSQL: each entry in one call of the `audit_append` function (migration
/// 2026-12-08-000001), which does in the database what [`flush_pending`] does statement by
/// statement, so the head row is held for one round trip per entry and the commit.
fn flush_in_database(pg: &mut diesel::PgConnection, entries: &[Pending]) -> Result<()> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Appended {
        #[diesel(sql_type = BigInt)]
        #[allow(dead_code)]
        seq: i64,
    }
    for e in entries {
        let parts =
            crate::audit::entry::body_parts(&e.actor, e.action, e.subject.as_deref(), &e.data)?;
        diesel::sql_query("SELECT audit_append($1, $2, $3, $4, $5, $6, $7) AS seq")
            .bind::<Timestamp, _>(e.at)
            .bind::<Text, _>(e.actor.to_string())
            .bind::<Text, _>(e.action)
            .bind::<Nullable<Text>, _>(e.subject.as_deref())
            .bind::<Text, _>(&parts.head)
            .bind::<Text, _>(&parts.middle)
            .bind::<Text, _>(&parts.tail)
            .get_result::<Appended>(pg)?;
    }
    Ok(())
}

/// Stores the perfect subtrees that leaf `index` completes (O(log n), one on average).
fn store_completed_nodes(conn: &mut DbConn, index: u64, leaf: Hash) -> Result<()> {
    let completed = proof::nodes_completed_by(index, leaf, |id| node(conn, id))?;
    for (id, hash) in completed {
        let hash = hash.to_vec();
        on_backend!(conn, c => diesel::insert_into(audit_tree::table)
            .values((
                audit_tree::level.eq(id.level as i32),
                audit_tree::idx.eq(id.index as i64),
                audit_tree::hash.eq(&hash),
            ))
            .execute(c))?;
    }
    Ok(())
}

/// Fills the stored tree in for entries written before it existed (or by a process that
/// stopped half-way), in batches of one transaction each. Returns the leaves added.
pub fn fill_tree(conn: &mut DbConn) -> Result<u64> {
    let mut added = 0;
    loop {
        let done = super::write_tx(conn, |conn| {
            let (size, tree_size): (i64, i64) = audit_head::table
                .select((audit_head::size, audit_head::tree_size))
                .filter(audit_head::id.eq(1))
                .get_result(conn)?;
            if tree_size >= size {
                return Ok(0);
            }
            let batch = batch_after(conn, tree_size, 10_000)?;
            let mut next = tree_size;
            for (seq, _, hash) in &batch {
                if *seq != next + 1 {
                    return Err(Error::Internal(format!(
                        "cannot build the audit tree: entry {} is missing",
                        next + 1
                    )));
                }
                store_completed_nodes(conn, next as u64, parse_hash(hash)?)?;
                next = *seq;
            }
            diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
                .set(audit_head::tree_size.eq(next))
                .execute(conn)?;
            Ok((next - tree_size) as u64)
        })?;
        if done == 0 {
            return Ok(added);
        }
        added += done;
    }
}

fn parse_hash(hex_text: &str) -> Result<Hash> {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Internal(format!("a stored hash is not 32 bytes: {hex_text:?}")))
}

fn to_hash(bytes: Vec<u8>) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| Error::Internal("a stored tree node is not 32 bytes".into()))
}

/// One stored perfect subtree (level 0: the entry's leaf hash).
pub fn node(conn: &mut DbConn, id: NodeId) -> Result<Hash> {
    if id.level == 0 {
        let hash: String = on_backend!(conn, c => audit_entries::table
            .select(audit_entries::leaf_hash)
            .filter(audit_entries::seq.eq(id.index as i64 + 1))
            .get_result(c))?;
        return parse_hash(&hash);
    }
    to_hash(on_backend!(conn, c => audit_tree::table
        .select(audit_tree::hash)
        .filter(audit_tree::level.eq(id.level as i32))
        .filter(audit_tree::idx.eq(id.index as i64))
        .get_result(c))?)
}

/// Fetches the given stored nodes with one query per table (a proof needs O(log n) of them;
/// one round trip each would dominate on PostgreSQL).
fn nodes(conn: &mut DbConn, ids: &[NodeId]) -> Result<HashMap<NodeId, Hash>> {
    let mut out = HashMap::with_capacity(ids.len());
    let leaves: Vec<i64> = ids
        .iter()
        .filter(|id| id.level == 0)
        .map(|id| id.index as i64 + 1)
        .collect();
    if !leaves.is_empty() {
        let rows: Vec<(i64, String)> = audit_entries::table
            .select((audit_entries::seq, audit_entries::leaf_hash))
            .filter(audit_entries::seq.eq_any(leaves))
            .load(conn)?;
        for (seq, hash) in rows {
            out.insert(
                NodeId {
                    level: 0,
                    index: (seq - 1) as u64,
                },
                parse_hash(&hash)?,
            );
        }
    }
    let upper: Vec<&NodeId> = ids.iter().filter(|id| id.level > 0).collect();
    if !upper.is_empty() {
        let mut q = audit_tree::table
            .select((audit_tree::level, audit_tree::idx, audit_tree::hash))
            .into_boxed();
        for id in upper {
            q = q.or_filter(
                audit_tree::level
                    .eq(id.level as i32)
                    .and(audit_tree::idx.eq(id.index as i64)),
            );
        }
        for (level, idx, hash) in q.load::<(i32, i64, Vec<u8>)>(conn)? {
            out.insert(
                NodeId {
                    level: level as u32,
                    index: idx as u64,
                },
                to_hash(hash)?,
            );
        }
    }
    Ok(out)
}

/// Runs a tree computation over stored nodes: first to learn which nodes it reads, then,
/// after fetching them all at once, for real.
fn with_stored_nodes<T>(
    conn: &mut DbConn,
    compute: impl Fn(&mut dyn FnMut(NodeId) -> Result<Hash>) -> Result<T>,
) -> Result<T> {
    let mut wanted = Vec::new();
    compute(&mut |id| {
        wanted.push(id);
        Ok([0u8; 32])
    })?;
    let found = nodes(conn, &wanted)?;
    compute(&mut |id| {
        found.get(&id).copied().ok_or_else(|| {
            Error::Internal(format!(
                "the audit tree lacks node (level {}, index {})",
                id.level, id.index
            ))
        })
    })
}

/// The RFC 6962 root of the first `size` entries, from O(log n) stored hashes. The caller
/// checks `size <= head`.
pub fn root_at(conn: &mut DbConn, size: u64) -> Result<Hash> {
    with_stored_nodes(conn, |node| proof::root_from(size, node))
}

/// The RFC 9162 inclusion proof of leaf `index` in the tree of `size`.
pub fn inclusion_proof(conn: &mut DbConn, index: u64, size: u64) -> Result<Vec<Hash>> {
    with_stored_nodes(conn, |node| proof::inclusion_proof(index, size, node))
}

/// The inclusion proofs of several leaves in the tree of `size`, with one fetch of all the
/// nodes they need (an export's page, not one round trip per entry).
pub fn inclusion_proofs(conn: &mut DbConn, indexes: &[u64], size: u64) -> Result<Vec<Vec<Hash>>> {
    with_stored_nodes(conn, |node| {
        indexes
            .iter()
            .map(|&i| proof::inclusion_proof(i, size, &mut *node))
            .collect()
    })
}

/// The RFC 9162 consistency proof from `from` to `to`.
pub fn consistency_proof(conn: &mut DbConn, from: u64, to: u64) -> Result<Vec<Hash>> {
    with_stored_nodes(conn, |node| proof::consistency_proof(from, to, node))
}

/// A stored checkpoint: the signed note and the size and root it states.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_checkpoints)]
pub struct StoredCheckpoint {
    pub tree_size: i64,
    /// Standard base64, as in the note.
    pub root_hash: String,
    pub note: String,
    pub created_at: NaiveDateTime,
}

pub fn latest_checkpoint(conn: &mut DbConn) -> Result<Option<StoredCheckpoint>> {
    Ok(audit_checkpoints::table
        .select(StoredCheckpoint::as_select())
        .order(audit_checkpoints::tree_size.desc())
        .limit(1)
        .load(conn)?
        .pop())
}

pub fn checkpoint_at(conn: &mut DbConn, size: i64) -> Result<Option<StoredCheckpoint>> {
    Ok(audit_checkpoints::table
        .select(StoredCheckpoint::as_select())
        .filter(audit_checkpoints::tree_size.eq(size))
        .get_result(conn)
        .optional()?)
}

/// Every stored checkpoint, by size.
pub fn checkpoints(conn: &mut DbConn) -> Result<Vec<StoredCheckpoint>> {
    Ok(audit_checkpoints::table
        .select(StoredCheckpoint::as_select())
        .order(audit_checkpoints::tree_size.asc())
        .load(conn)?)
}

/// Stores a checkpoint unless one exists for its size (another instance made it first);
/// returns the one stored for that size either way. Run inside [`super::write_tx`], whose
/// head lock makes check-then-insert safe across instances.
pub fn store_checkpoint(
    conn: &mut DbConn,
    size: i64,
    root_b64: &str,
    note: &str,
    at: NaiveDateTime,
) -> Result<StoredCheckpoint> {
    if let Some(existing) = checkpoint_at(conn, size)? {
        return Ok(existing);
    }
    diesel::insert_into(audit_checkpoints::table)
        .values((
            audit_checkpoints::tree_size.eq(size),
            audit_checkpoints::root_hash.eq(root_b64),
            audit_checkpoints::note.eq(note),
            audit_checkpoints::created_at.eq(at),
        ))
        .execute(conn)?;
    checkpoint_at(conn, size)?.ok_or_else(|| Error::Internal("a stored checkpoint vanished".into()))
}

/// The log's identity as recorded at its first start.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct LogIdentity {
    pub origin: String,
    pub verifier_key: String,
    pub retention_years: i32,
}

pub fn log_identity(conn: &mut DbConn) -> Result<Option<LogIdentity>> {
    Ok(audit_log::table
        .select(LogIdentity::as_select())
        .filter(audit_log::id.eq(1))
        .get_result(conn)
        .optional()?)
}

pub fn record_log_identity(conn: &mut DbConn, identity: &LogIdentity) -> Result<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::id.eq(1),
            audit_log::origin.eq(&identity.origin),
            audit_log::verifier_key.eq(&identity.verifier_key),
            audit_log::retention_years.eq(identity.retention_years),
            audit_log::created_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Raises the recorded retention (the database refuses to lower it).
pub fn set_retention_years(conn: &mut DbConn, years: i32) -> Result<()> {
    diesel::update(audit_log::table.filter(audit_log::id.eq(1)))
        .set(audit_log::retention_years.eq(years))
        .execute(conn)?;
    Ok(())
}

/// The last entry about `subject` with this action, parsed.
pub fn last_about(
    conn: &mut DbConn,
    subject: &dyn std::fmt::Display,
    action: ActionName,
) -> Result<Option<EntryBody>> {
    let subject = subject.to_string();
    let body: Option<String> = on_backend!(conn, c => audit_entries::table
        .select(audit_entries::body)
        .filter(audit_entries::subject.eq(&subject))
        .filter(audit_entries::action.eq(action.as_str()))
        .order(audit_entries::seq.desc())
        .limit(1)
        .get_result(c)
        .optional())?;
    body.map(|b| parse_body(&b)).transpose()
}

/// The last entry with this action, parsed.
pub fn last_of_action(conn: &mut DbConn, action: ActionName) -> Result<Option<EntryBody>> {
    let body: Option<String> = audit_entries::table
        .select(audit_entries::body)
        .filter(audit_entries::action.eq(action.as_str()))
        .order(audit_entries::seq.desc())
        .limit(1)
        .get_result(conn)
        .optional()?;
    body.map(|b| parse_body(&b)).transpose()
}

/// `(seq, body)` of every entry about `subject` with `seq <= up_to`, in order.
pub fn bodies_about(
    conn: &mut DbConn,
    subject: &dyn std::fmt::Display,
    up_to: i64,
) -> Result<Vec<(i64, String)>> {
    Ok(audit_entries::table
        .select((audit_entries::seq, audit_entries::body))
        .filter(audit_entries::subject.eq(subject.to_string()))
        .filter(audit_entries::seq.between(1, up_to))
        .order(audit_entries::seq.asc())
        .load(conn)?)
}

/// `(seq, body)` of the entries about `subject` with one of `actions` and `seq <= up_to`.
pub fn bodies_about_with_actions(
    conn: &mut DbConn,
    subject: &dyn std::fmt::Display,
    actions: &[ActionName],
    up_to: i64,
) -> Result<Vec<(i64, String)>> {
    let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    Ok(audit_entries::table
        .select((audit_entries::seq, audit_entries::body))
        .filter(audit_entries::subject.eq(subject.to_string()))
        .filter(audit_entries::action.eq_any(names))
        .filter(audit_entries::seq.between(1, up_to))
        .order(audit_entries::seq.asc())
        .load(conn)?)
}

/// `(seq, body)` of every entry with this action and `seq <= up_to`, in order.
pub fn bodies_with_action(
    conn: &mut DbConn,
    action: ActionName,
    up_to: i64,
) -> Result<Vec<(i64, String)>> {
    Ok(audit_entries::table
        .select((audit_entries::seq, audit_entries::body))
        .filter(audit_entries::action.eq(action.as_str()))
        .filter(audit_entries::seq.between(1, up_to))
        .order(audit_entries::seq.asc())
        .load(conn)?)
}

/// Every entry about `subject`, in seq order, parsed.
pub fn about(conn: &mut DbConn, subject: &dyn std::fmt::Display) -> Result<Vec<EntryBody>> {
    let head = head_size(conn)?;
    bodies_about(conn, subject, head)?
        .iter()
        .map(|(_, b)| parse_body(b))
        .collect()
}

fn parse_body(body: &str) -> Result<EntryBody> {
    serde_json::from_str(body)
        .map_err(|e| Error::Internal(format!("a stored audit body does not parse: {e}")))
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
///
/// Only entries inside the log (seq 1 to the head) are shown: exactly what `verify` checks,
/// so a row slipped in outside it can never reach an auditor's screen.
pub fn query(conn: &mut DbConn, filter: &AuditFilter) -> Result<Vec<StoredEntry>> {
    // Every bound on seq is folded into one range, [lo, hi], before the query: given several
    // `seq >= ?` terms with bound values, SQLite's planner takes one of them for the index
    // range and may walk the log from entry 1.
    let mut lo: i64 = 1;
    let mut hi: i64 = head_size(conn)?;
    if let Some(after) = filter.after {
        lo = lo.max(after.saturating_add(1));
    }
    // `at` grows with seq (see `append`), so a time bound is a seq bound, found through the
    // index on `at`: a later `since` no longer means walking every earlier entry.
    if let Some(t) = filter.since {
        match first_seq_at_or_after(conn, t.naive_utc())? {
            Some(first) => lo = lo.max(first),
            None => return Ok(Vec::new()),
        }
    }
    if let Some(t) = filter.until {
        if let Some(end) = first_seq_at_or_after(conn, t.naive_utc())? {
            hi = hi.min(end - 1);
        }
    }
    if lo > hi {
        return Ok(Vec::new());
    }
    let mut q = audit_entries::table
        .select(StoredEntry::as_select())
        .filter(audit_entries::seq.between(lo, hi))
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
    // The time terms stay too: the seq range is exact only while times never go backwards.
    if let Some(t) = filter.since {
        q = q.filter(audit_entries::at.ge(t.naive_utc()));
    }
    if let Some(t) = filter.until {
        q = q.filter(audit_entries::at.lt(t.naive_utc()));
    }
    Ok(q.order(audit_entries::seq.asc())
        .limit(filter.limit)
        .load(conn)?)
}

/// The first seq whose entry is at or after `t`: two lookups in the index on `at`.
fn first_seq_at_or_after(conn: &mut DbConn, t: NaiveDateTime) -> Result<Option<i64>> {
    let first_at: Option<NaiveDateTime> = audit_entries::table
        .select(diesel::dsl::min(audit_entries::at))
        .filter(audit_entries::at.ge(t))
        .get_result(conn)?;
    let Some(first_at) = first_at else {
        return Ok(None);
    };
    Ok(audit_entries::table
        .select(diesel::dsl::min(audit_entries::seq))
        .filter(audit_entries::at.eq(first_at))
        .get_result(conn)?)
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

/// Rows with `seq > after`, in order, at most `limit`: the batches `audit verify` reads.
pub fn rows_after(conn: &mut DbConn, after: i64, limit: i64) -> Result<Vec<StoredEntry>> {
    Ok(audit_entries::table
        .select(StoredEntry::as_select())
        .filter(audit_entries::seq.gt(after))
        .order(audit_entries::seq.asc())
        .limit(limit)
        .load(conn)?)
}

/// One entry's columns as `audit verify` reads them, borrowed from an [`EntryBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryColumns<'a> {
    pub seq: i64,
    pub at: AtColumn<'a>,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub leaf_hash: &'a str,
}

/// `at` as each engine hands it over: SQLite's stored text (diesel writes `%F %T%.f`),
/// PostgreSQL's timestamp. Taking SQLite's as text spares a chrono parse per row; what the
/// text means is decided by [`rows_after`]'s typed read whenever it is not the plain form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtColumn<'a> {
    Text(&'a str),
    Time(NaiveDateTime),
}

impl AtColumn<'_> {
    /// Whether this column holds the time the body's `at` names, decided cheaply: `true`
    /// only when the body's text is exactly what `format_at` writes and the column is that
    /// instant (on SQLite: in the very text diesel writes for it). `false` means "not
    /// shown", and the caller then compares them the slow way.
    pub fn plainly_equals(&self, body_at: &str) -> bool {
        let Some(t) = crate::audit::entry::parse_canonical_at(body_at) else {
            return false;
        };
        match *self {
            AtColumn::Time(column) => column == t,
            AtColumn::Text(column) => {
                // Diesel stores `%F %T%.f`: the date, a space, the time, and the fraction
                // with 0, 3 or 6 digits for whole seconds, milliseconds or microseconds.
                let b = body_at.as_bytes();
                let digits = match t.and_utc().timestamp_subsec_micros() {
                    0 => 0,
                    us if us % 1000 == 0 => 3,
                    _ => 6,
                };
                let mut text = [0u8; 26];
                text[..19].copy_from_slice(&b[..19]);
                text[10] = b' ';
                text[19] = b'.';
                text[20..26].copy_from_slice(&b[20..26]);
                let len = if digits == 0 { 19 } else { 20 + digits };
                column.as_bytes() == &text[..len]
            }
        }
    }
}

/// A batch of entries for `audit verify`, packed into one text buffer that is reused from
/// batch to batch: no allocation per row once the buffers have grown.
#[derive(Debug, Default)]
pub struct EntryBatch {
    text: String,
    rows: Vec<PackedRow>,
}

#[derive(Debug, Clone, Copy)]
struct PackedRow {
    seq: i64,
    /// PostgreSQL's `at`; SQLite's is the last of the texts.
    time: Option<NaiveDateTime>,
    /// Where body, leaf_hash, actor, action, subject and (SQLite) at end in `text`.
    ends: [usize; 6],
    has_subject: bool,
}

impl EntryBatch {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn last_seq(&self) -> Option<i64> {
        self.rows.last().map(|r| r.seq)
    }

    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        seq: i64,
        at: AtColumn<'_>,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        body: &str,
        leaf_hash: &str,
    ) {
        let mut ends = [0; 6];
        let texts = [
            body,
            leaf_hash,
            actor,
            action,
            subject.unwrap_or(""),
            match at {
                AtColumn::Text(t) => t,
                AtColumn::Time(_) => "",
            },
        ];
        for (end, t) in ends.iter_mut().zip(texts) {
            self.text.push_str(t);
            *end = self.text.len();
        }
        self.rows.push(PackedRow {
            seq,
            time: match at {
                AtColumn::Time(t) => Some(t),
                AtColumn::Text(_) => None,
            },
            ends,
            has_subject: subject.is_some(),
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = EntryColumns<'_>> + '_ {
        let mut start = 0;
        self.rows.iter().map(move |r| {
            let mut from = start;
            let mut field = |i: usize| {
                let t = &self.text[from..r.ends[i]];
                from = r.ends[i];
                t
            };
            let (body, leaf_hash, actor, action, subject, at) =
                (field(0), field(1), field(2), field(3), field(4), field(5));
            start = r.ends[5];
            EntryColumns {
                seq: r.seq,
                at: match r.time {
                    Some(t) => AtColumn::Time(t),
                    None => AtColumn::Text(at),
                },
                actor,
                action,
                subject: r.has_subject.then_some(subject),
                body,
                leaf_hash,
            }
        })
    }
}

/// Rows with `seq > after`, in order, at most `limit`, into `batch` (emptied first): what
/// `audit verify` walks. The same rows as [`rows_after`], read row by row straight into the
/// batch's buffers on each engine's own connection type (the general one goes through
/// extra conversions per value).
pub fn read_entries(
    conn: &mut DbConn,
    after: i64,
    limit: i64,
    batch: &mut EntryBatch,
) -> Result<()> {
    use diesel::connection::DefaultLoadingMode;
    use diesel::sql_types::Text;
    batch.clear();
    let e = audit_entries::table
        .filter(audit_entries::seq.gt(after))
        .order(audit_entries::seq.asc())
        .limit(limit);
    match conn {
        DbConn::Sqlite(c) => {
            type Row = (i64, String, String, String, Option<String>, String, String);
            let rows = e
                .select((
                    audit_entries::seq,
                    diesel::dsl::sql::<Text>("at"),
                    audit_entries::actor,
                    audit_entries::action,
                    audit_entries::subject,
                    audit_entries::body,
                    audit_entries::leaf_hash,
                ))
                .load_iter::<Row, DefaultLoadingMode>(c)?;
            for row in rows {
                let (seq, at, actor, action, subject, body, hash) = row?;
                let at = AtColumn::Text(&at);
                batch.push(seq, at, &actor, &action, subject.as_deref(), &body, &hash);
            }
        }
        DbConn::Postgres(c) => {
            type Row = (
                i64,
                NaiveDateTime,
                String,
                String,
                Option<String>,
                String,
                String,
            );
            let rows = e
                .select((
                    audit_entries::seq,
                    audit_entries::at,
                    audit_entries::actor,
                    audit_entries::action,
                    audit_entries::subject,
                    audit_entries::body,
                    audit_entries::leaf_hash,
                ))
                // Row by row: the server sends the next rows while these are decoded,
                // instead of the whole batch first and then waiting for the next query.
                .load_iter::<Row, diesel::pg::PgRowByRowLoadingMode>(c)?;
            for row in rows {
                let (seq, at, actor, action, subject, body, hash) = row?;
                let at = AtColumn::Time(at);
                batch.push(seq, at, &actor, &action, subject.as_deref(), &body, &hash);
            }
        }
    }
    Ok(())
}

/// The lowest seq of any row (none when the table is empty).
pub fn min_seq(conn: &mut DbConn) -> Result<Option<i64>> {
    Ok(audit_entries::table
        .select(diesel::dsl::min(audit_entries::seq))
        .get_result(conn)?)
}

/// The number of entries the head row records.
pub fn head_size(conn: &mut DbConn) -> Result<i64> {
    audit_head::table
        .select(audit_head::size)
        .filter(audit_head::id.eq(1))
        .get_result(conn)
        .map_err(Error::from)
}
