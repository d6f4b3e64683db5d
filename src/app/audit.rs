//! Reading and verifying the audit log (spec/audit.md "Verify and export").

use super::views::{rfc3339, AuditEntryView};
use super::Caller;
use crate::audit::entry::canonical_head;
use crate::audit::merkle::Hash;
use crate::audit::note::{Checkpoint, NoteVerifier};
use crate::audit::{leaf_hash, TreeHasher};
use crate::db::audit::AuditFilter;
use crate::db::{self, DbConn};
use crate::domain::roles::Permission;
use crate::error::{Error, Result};
use base64::Engine;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;

pub const MAX_PAGE: i64 = 1000;

/// A page of entries and the cursor of the next (`after=`), or `None` at the end.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    pub next: Option<String>,
}

pub fn query(conn: &mut DbConn, caller: &Caller, mut filter: AuditFilter) -> Result<AuditPage> {
    caller.require(Permission::ReadAudit)?;
    filter.limit = filter.limit.clamp(1, MAX_PAGE);
    let rows = db::audit::query(conn, &filter)?;
    let next = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|r| r.seq.to_string()))
        .flatten();
    let entries = rows
        .into_iter()
        .map(|r| {
            let data = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|mut b| b.get_mut("data").map(serde_json::Value::take))
                .unwrap_or(serde_json::Value::Null);
            AuditEntryView {
                seq: r.seq,
                at: rfc3339(r.at),
                actor: r.actor,
                action: r.action,
                subject: r.subject,
                data,
                body: r.body,
                leaf_hash: r.leaf_hash,
            }
        })
        .collect();
    Ok(AuditPage { entries, next })
}

/// The result of checking the whole log (spec/api.md `GET /audit/verify`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Verification {
    Intact {
        ok: bool,
        size: u64,
        /// RFC 6962 root of the whole log, base64.
        root: String,
        /// With `state=true`: the tables agree with the log (empty).
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<Vec<StateMismatch>>,
    },
    Broken {
        ok: bool,
        /// The first entry found wrong; absent when the fault is a checkpoint's or the
        /// tables' (see `reason` and `state`).
        #[serde(skip_serializing_if = "Option::is_none")]
        first_bad_seq: Option<i64>,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<Vec<StateMismatch>>,
    },
}

/// A row of the service's tables that the log does not explain (`verify --state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StateMismatch {
    pub table: String,
    pub id: String,
    pub reason: String,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        matches!(self, Verification::Intact { .. })
    }

    fn broken(first_bad_seq: Option<i64>, reason: impl Into<String>) -> Verification {
        Verification::Broken {
            ok: false,
            first_bad_seq,
            reason: reason.into(),
            state: None,
        }
    }
}

/// Rows per read: a query's own cost vanishes, and the two batches in flight stay a few MB.
const BATCH: i64 = 10_000;

const LEAF_MISMATCH: &str = "the body does not match its stored leaf hash";

/// The body fields that the filter columns repeat, read without building `data`.
#[derive(serde::Deserialize)]
struct BodyHead<'a> {
    seq: i64,
    #[serde(borrow)]
    at: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    actor: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    subject: Option<std::borrow::Cow<'a, str>>,
}

/// What a stored entry gets wrong, if anything: its leaf hash, its own seq, or a filter
/// column that says something other than its body.
fn entry_fault(row: &db::audit::StoredEntry, leaf: &crate::audit::merkle::Hash) -> Option<String> {
    if hex::encode(leaf) != row.leaf_hash {
        return Some(LEAF_MISMATCH.into());
    }
    let Ok(head) = serde_json::from_str::<BodyHead>(&row.body) else {
        return Some("the body is not an entry".into());
    };
    if head.seq != row.seq {
        return Some(format!("the body carries seq {}, not its own", head.seq));
    }
    let mut wrong = Vec::new();
    if rfc3339(row.at) != head.at {
        wrong.push("at");
    }
    if row.actor != head.actor {
        wrong.push("actor");
    }
    if row.action != head.action {
        wrong.push("action");
    }
    if row.subject.as_deref() != head.subject.as_deref() {
        wrong.push("subject");
    }
    (!wrong.is_empty()).then(|| {
        format!(
            "the stored {} differ from the body (the auditors' filters would misreport it)",
            wrong.join(", ")
        )
    })
}

/// Checks the whole log (spec/audit.md "Verify and export"): every row the auditors can see
/// is inside 1..head with no gap; every leaf hash is recomputed from its body, and the body
/// carries the row's seq and agrees with the filter columns; every stored checkpoint is
/// signed by `verifier` and names the root recomputed at its size; the root at the head is
/// also what the stored tree gives. Stops at the first discrepancy and names it.
/// `progress` is called after each batch with the entries read so far.
///
/// `verifier` is the key to check checkpoints with: the published key (`--key`) or the key
/// file's. Without one, the key the database records is used, which an attacker with the
/// database could have replaced along with the checkpoints. Everything is read in one
/// snapshot, so appends made meanwhile are neither missed nor reported as faults.
pub fn verify(
    conn: &mut DbConn,
    verifier: Option<&NoteVerifier>,
    progress: impl FnMut(u64),
) -> Result<Verification> {
    db::read_snapshot(conn, |conn| verify_in_snapshot(conn, verifier, progress))
}

/// [`verify`], then (in the same snapshot) the state check of `audit_state`.
pub fn verify_with_state(
    conn: &mut DbConn,
    verifier: Option<&NoteVerifier>,
    progress: impl FnMut(u64),
) -> Result<Verification> {
    db::read_snapshot(conn, |conn| {
        let log = verify_in_snapshot(conn, verifier, progress)?;
        super::audit_state::with_state(conn, log)
    })
}

fn verify_in_snapshot(
    conn: &mut DbConn,
    verifier: Option<&NoteVerifier>,
    mut progress: impl FnMut(u64),
) -> Result<Verification> {
    let head = db::audit::head_size(conn)?;
    let recorded = db::audit::log_identity(conn)?;
    let recorded_key = recorded
        .as_ref()
        .map(|r| NoteVerifier::parse(&r.verifier_key))
        .transpose();
    let verifier = match (verifier, recorded_key) {
        (Some(v), _) => Some(v.clone()),
        (None, Ok(v)) => v,
        (None, Err(e)) => {
            return Ok(Verification::broken(
                None,
                format!("the verifier key the database records is malformed: {e}"),
            ))
        }
    };
    let verifier = verifier.as_ref();
    if let Some(min) = db::audit::min_seq(conn)? {
        if min < 1 {
            return Ok(Verification::broken(
                Some(min),
                format!("an entry with seq {min} is outside the log (seq starts at 1)"),
            ));
        }
    }
    if let (Some(identity), Some(verifier)) = (&recorded, verifier) {
        if identity.verifier_key != verifier.to_string() {
            return Ok(Verification::broken(
                None,
                format!(
                    "the database records the verifier key {}, not the log's key {verifier}",
                    identity.verifier_key
                ),
            ));
        }
    }
    let checkpoints = db::audit::checkpoints(conn)?;
    if recorded.is_none() && (verifier.is_some() || !checkpoints.is_empty()) {
        // A log with a key or checkpoints has been started, and its first start recorded
        // who signs it.
        return Ok(Verification::broken(
            None,
            "the log's identity (origin and verifier key) is not recorded: it was deleted",
        ));
    }
    if let Some(cp) = checkpoints.iter().find(|c| c.tree_size < 0) {
        return Ok(Verification::broken(
            None,
            format!("a checkpoint names the impossible size {}", cp.tree_size),
        ));
    }
    if recorded.is_some() && checkpoints.is_empty() {
        // The first start signs a checkpoint with the identity: none left means deleted.
        return Ok(Verification::broken(
            None,
            "the log has been started but holds no checkpoint: they were deleted",
        ));
    }
    if let Some(cp) = checkpoints.iter().find(|c| c.tree_size > head) {
        return Ok(Verification::broken(
            None,
            format!(
                "the checkpoint of size {} is beyond the log's {head} entries: entries were cut off",
                cp.tree_size
            ),
        ));
    }
    // The entries are read on this thread and checked on a second one: on two cores the
    // reads (the database's part) and the hashing overlap instead of taking turns.
    let checked = AtomicU64::new(0);
    let (walk, read) = std::thread::scope(|scope| {
        let (full_tx, full_rx) = mpsc::sync_channel::<db::audit::EntryBatch>(2);
        let (empty_tx, empty_rx) = mpsc::channel::<db::audit::EntryBatch>();
        let (checked, checkpoints) = (&checked, &checkpoints);
        let checker = scope.spawn(move || {
            let mut walk = Walk::new(head, checkpoints, verifier);
            walk.run(full_rx, empty_tx, checked);
            walk
        });
        let read = read_batches(conn, full_tx, empty_rx, || progress(checked.load(Relaxed)));
        (checker.join(), read)
    });
    let walk = walk.map_err(|_| Error::Internal("the audit verify thread panicked".into()))?;
    progress(walk.tree.size());
    // The rows the quick reading could not clear come before any fault the walk found;
    // a failed read counts only if everything before it was right (and is the error to
    // report if the full check cannot run after it).
    match full_check(conn, &walk.unsure) {
        Ok(Some(v)) => return Ok(v),
        Ok(None) => {}
        Err(e) => return Err(read.err().unwrap_or(e)),
    }
    if let Some(v) = walk.fault {
        return Ok(v);
    }
    read?;
    let (tree, expected) = (walk.tree, walk.expected);
    let mut next_checkpoint = checkpoints[walk.checkpoints_done..].iter();
    if let Some(cp) = next_checkpoint.next() {
        return Ok(Verification::broken(
            None,
            format!(
                "the checkpoint of size {} was not reached by the entries: entries were cut off",
                cp.tree_size
            ),
        ));
    }
    if head != expected - 1 {
        return Ok(Verification::broken(
            Some(expected),
            format!(
                "the log should hold {head} entries but {} were found",
                expected - 1
            ),
        ));
    }
    let root = tree.root();
    if db::audit::root_at(conn, tree.size())? != root {
        return Ok(Verification::broken(
            None,
            "the stored tree's hashes do not give the root of the entries: proofs would fail",
        ));
    }
    Ok(Verification::Intact {
        ok: true,
        size: tree.size(),
        root: base64::engine::general_purpose::STANDARD.encode(root),
        state: None,
    })
}

/// Reads the entries in batches and hands them to the checker through `full`, reusing the
/// buffers it sends back through `empty`, until the log ends or the checker stops.
fn read_batches(
    conn: &mut DbConn,
    full: mpsc::SyncSender<db::audit::EntryBatch>,
    empty: mpsc::Receiver<db::audit::EntryBatch>,
    mut progress: impl FnMut(),
) -> Result<()> {
    let mut after = 0;
    loop {
        let mut batch = empty.try_recv().unwrap_or_default();
        db::audit::read_entries(conn, after, BATCH, &mut batch)?;
        let Some(last) = batch.last_seq() else {
            return Ok(());
        };
        after = last;
        if full.send(batch).is_err() {
            return Ok(()); // the checker stopped at a fault
        }
        progress();
    }
}

/// The checks of the entries in order, on the checker thread: seq, leaf hash, body against
/// columns (quickly, see [`quick_entry_check`]), and each checkpoint as the tree reaches it.
struct Walk<'a> {
    head: i64,
    checkpoints: &'a [db::audit::StoredCheckpoint],
    /// How many of `checkpoints` have been checked.
    checkpoints_done: usize,
    verifier: Option<&'a NoteVerifier>,
    tree: TreeHasher,
    /// The seq the next row must have.
    expected: i64,
    /// Rows whose body the quick check could not clear, in order: [`full_check`] decides.
    unsure: Vec<i64>,
    /// The first fault found for certain; the walk stops there.
    fault: Option<Verification>,
}

impl<'a> Walk<'a> {
    fn new(
        head: i64,
        checkpoints: &'a [db::audit::StoredCheckpoint],
        verifier: Option<&'a NoteVerifier>,
    ) -> Walk<'a> {
        Walk {
            head,
            checkpoints,
            checkpoints_done: 0,
            verifier,
            tree: TreeHasher::default(),
            expected: 1,
            unsure: Vec::new(),
            fault: None,
        }
    }

    fn run(
        &mut self,
        full: mpsc::Receiver<db::audit::EntryBatch>,
        empty: mpsc::Sender<db::audit::EntryBatch>,
        checked: &AtomicU64,
    ) {
        self.fault = self.checkpoints_reached();
        if self.fault.is_some() {
            return;
        }
        for batch in full {
            for row in batch.iter() {
                self.fault = self.row(&row);
                if self.fault.is_some() {
                    return; // dropping `full` stops the reader
                }
            }
            checked.store(self.tree.size(), Relaxed);
            let _ = empty.send(batch); // the reader may be done already
        }
    }

    fn row(&mut self, row: &db::audit::EntryColumns<'_>) -> Option<Verification> {
        let expected = self.expected;
        if row.seq != expected {
            return Some(Verification::broken(
                Some(expected.min(row.seq)),
                format!("seq {expected} is missing (the next entry is {})", row.seq),
            ));
        }
        if row.seq > self.head {
            return Some(Verification::broken(
                Some(row.seq),
                format!(
                    "entry {} is beyond the head: the log records {} entries",
                    row.seq, self.head
                ),
            ));
        }
        let leaf = leaf_hash(row.body.as_bytes());
        match quick_entry_check(row, &leaf) {
            Quick::Right => {}
            Quick::Unsure => self.unsure.push(row.seq),
            Quick::Wrong(fault) => return Some(Verification::broken(Some(row.seq), fault)),
        }
        self.tree.push(leaf);
        self.expected += 1;
        self.checkpoints_reached()
    }

    /// Checks the checkpoints whose size the tree has reached.
    fn checkpoints_reached(&mut self) -> Option<Verification> {
        while let Some(cp) = self.checkpoints.get(self.checkpoints_done) {
            if cp.tree_size as u64 > self.tree.size() {
                break;
            }
            self.checkpoints_done += 1;
            if let Some(fault) = checkpoint_fault(cp, &self.tree, self.verifier) {
                return Some(Verification::broken(None, fault));
            }
        }
        None
    }
}

enum Quick {
    Right,
    /// Not shown either way: the body is not in the exact canonical shape, or a column
    /// differs from it. [`entry_fault`] on the typed row decides and words it.
    Unsure,
    Wrong(String),
}

/// [`entry_fault`] without its costs for an entry in the shape `entry_body` writes: the
/// leaf hash compared in place, the body's head read by [`canonical_head`] instead of
/// serde_json, `at` compared without formatting. It answers `Right` only where
/// `entry_fault` finds nothing, and `Wrong` only with `entry_fault`'s own words.
fn quick_entry_check(row: &db::audit::EntryColumns<'_>, leaf: &Hash) -> Quick {
    let mut hex = [0u8; 64];
    if hex::encode_to_slice(leaf, &mut hex).is_err() || hex[..] != *row.leaf_hash.as_bytes() {
        return Quick::Wrong(LEAF_MISMATCH.into());
    }
    let Some(head) = canonical_head(row.body) else {
        return Quick::Unsure;
    };
    let right = head.seq == row.seq
        && head.actor == row.actor
        && head.action == row.action
        && head.subject == row.subject
        && row.at.plainly_equals(head.at);
    if right {
        Quick::Right
    } else {
        Quick::Unsure
    }
}

/// [`entry_fault`] on the rows of `seqs` (ascending), read again through the typed
/// [`db::audit::rows_after`] in the same snapshot: the first fault, if any.
fn full_check(conn: &mut DbConn, seqs: &[i64]) -> Result<Option<Verification>> {
    let mut pending = seqs.iter().copied().peekable();
    while let Some(&first) = pending.peek() {
        let rows = db::audit::rows_after(conn, first - 1, 1000)?;
        if rows.first().map(|r| r.seq) != Some(first) {
            return Err(Error::Internal(format!(
                "audit entry {first} is gone from the snapshot being verified"
            )));
        }
        for row in &rows {
            if pending.next_if_eq(&row.seq).is_some() {
                if let Some(fault) = entry_fault(row, &leaf_hash(row.body.as_bytes())) {
                    return Ok(Some(Verification::broken(Some(row.seq), fault)));
                }
            }
        }
    }
    Ok(None)
}

/// What is wrong with a stored checkpoint, given the tree recomputed up to its size.
fn checkpoint_fault(
    cp: &db::audit::StoredCheckpoint,
    tree: &TreeHasher,
    verifier: Option<&NoteVerifier>,
) -> Option<String> {
    let size = cp.tree_size;
    let Some(verifier) = verifier else {
        return Some(format!(
            "there is a checkpoint of size {size} but no verifier key to check it with"
        ));
    };
    let signed = match Checkpoint::open(&cp.note, verifier) {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "the checkpoint of size {size} does not verify: {e}"
            ))
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    if signed.size != size as u64 || b64.encode(signed.root) != cp.root_hash {
        return Some(format!(
            "the checkpoint stored for size {size} signs size {} and another root",
            signed.size
        ));
    }
    if signed.root != tree.root() {
        return Some(format!(
            "the log's root at size {size} is not the one its checkpoint signed: entries 1 to \
             {size} were changed after it"
        ));
    }
    None
}

/// An inclusion proof (RFC 9162 section 2.1.3) as `GET /audit/proof/inclusion` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    /// `seq - 1`.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Leaf to root, standard base64.
    pub hashes: Vec<String>,
}

/// A consistency proof (RFC 9162 section 2.1.4) as `GET /audit/proof/consistency` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// Standard base64, in the RFC's order.
    pub hashes: Vec<String>,
}

fn b64_all(hashes: Vec<crate::audit::merkle::Hash>) -> Vec<String> {
    hashes
        .iter()
        .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
        .collect()
}

/// The proof that entry `seq` is in the tree of the first `size` entries.
///
/// Errors: 400 unless `1 <= seq <= size <= head`.
pub fn inclusion_proof(
    conn: &mut DbConn,
    caller: &Caller,
    seq: i64,
    size: i64,
) -> Result<InclusionProof> {
    caller.require(Permission::ReadAudit)?;
    let head = db::audit::head_size(conn)?;
    if size < 1 || size > head {
        return Err(Error::BadRequest(format!(
            "size={size}: the log has {head} entries; a tree size is 1 to {head}"
        )));
    }
    if seq < 1 || seq > size {
        return Err(Error::BadRequest(format!(
            "seq={seq}: an entry of a tree of size {size} has seq 1 to {size}"
        )));
    }
    let hashes = db::audit::inclusion_proof(conn, (seq - 1) as u64, size as u64)?;
    Ok(InclusionProof {
        leaf_index: (seq - 1) as u64,
        tree_size: size as u64,
        hashes: b64_all(hashes),
    })
}

/// The proof that the tree of size `from` is a prefix of the tree of size `to`.
///
/// Errors: 400 unless `1 <= from <= to <= head`.
pub fn consistency_proof(
    conn: &mut DbConn,
    caller: &Caller,
    from: i64,
    to: i64,
) -> Result<ConsistencyProof> {
    caller.require(Permission::ReadAudit)?;
    let head = db::audit::head_size(conn)?;
    if to < 1 || to > head {
        return Err(Error::BadRequest(format!(
            "to={to}: the log has {head} entries; a tree size is 1 to {head}"
        )));
    }
    if from < 1 || from > to {
        return Err(Error::BadRequest(format!(
            "from={from}: the older size must be 1 to to={to}"
        )));
    }
    let hashes = db::audit::consistency_proof(conn, from as u64, to as u64)?;
    Ok(ConsistencyProof {
        from: from as u64,
        to: to as u64,
        hashes: b64_all(hashes),
    })
}

/// The latest stored checkpoint's signed note.
pub fn latest_checkpoint(conn: &mut DbConn, caller: &Caller) -> Result<String> {
    caller.require(Permission::ReadAudit)?;
    db::audit::latest_checkpoint(conn)?
        .map(|c| c.note)
        .ok_or_else(|| Error::NotFound("no checkpoint has been made yet".into()))
}

pub fn verify_as(
    conn: &mut DbConn,
    caller: &Caller,
    verifier: &NoteVerifier,
) -> Result<Verification> {
    caller.require(Permission::ReadAudit)?;
    verify(conn, Some(verifier), |_| {})
}

/// [`verify_with_state`] for a signed-in auditor or admin.
pub fn verify_with_state_as(
    conn: &mut DbConn,
    caller: &Caller,
    verifier: &NoteVerifier,
) -> Result<Verification> {
    caller.require(Permission::ReadAudit)?;
    verify_with_state(conn, Some(verifier), |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{entry_body, Actor};
    use chrono::NaiveDateTime;
    use db::audit::{AtColumn, EntryColumns, StoredEntry};

    fn time(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%F %T%.f").unwrap()
    }

    /// A row as `append` stores it.
    fn stored(seq: i64, at: NaiveDateTime, subject: Option<&str>) -> StoredEntry {
        let data = serde_json::json!({"text": "hello \"world\"\n", "n": [1, 2.5]});
        let body = entry_body(
            seq,
            at.and_utc(),
            &Actor::System,
            "user.login",
            subject,
            &data,
        )
        .unwrap();
        StoredEntry {
            seq,
            at,
            actor: "system".into(),
            action: "user.login".into(),
            subject: subject.map(str::to_string),
            leaf_hash: hex::encode(leaf_hash(body.as_bytes())),
            body,
        }
    }

    /// `quick_entry_check` against `entry_fault` on the same row, with `at` as SQLite's
    /// text (`at_text`) and as PostgreSQL's timestamp: it may be unsure, never otherwise
    /// than `entry_fault`.
    fn agree(row: &StoredEntry, at_text: &str) -> Vec<&'static str> {
        let leaf = leaf_hash(row.body.as_bytes());
        let full = entry_fault(row, &leaf);
        let mut answers = Vec::new();
        for at in [AtColumn::Text(at_text), AtColumn::Time(row.at)] {
            let cols = EntryColumns {
                seq: row.seq,
                at,
                actor: &row.actor,
                action: &row.action,
                subject: row.subject.as_deref(),
                body: &row.body,
                leaf_hash: &row.leaf_hash,
            };
            answers.push(match quick_entry_check(&cols, &leaf) {
                Quick::Right => {
                    assert_eq!(full, None, "{row:?} {at:?}");
                    "right"
                }
                Quick::Wrong(fault) => {
                    assert_eq!(full.as_deref(), Some(fault.as_str()), "{row:?}");
                    "wrong"
                }
                Quick::Unsure => "unsure",
            });
        }
        answers
    }

    #[test]
    fn the_quick_check_clears_only_what_the_full_check_clears() {
        let subject = Some("0190aaaa-0000-7000-8000-000000000001");
        for at in [
            "2026-12-03 10:20:30.123456",
            "2026-12-03 10:20:30.120",
            "2026-12-03 10:20:30",
        ] {
            let row = stored(5, time(at), subject);
            assert_eq!(agree(&row, at), ["right", "right"], "{at}");
            let row = stored(5, time(at), None);
            assert_eq!(agree(&row, at), ["right", "right"], "{at}");
        }
        let at = "2026-12-03 10:20:30.123456";
        let good = stored(5, time(at), subject);
        // The same instant in another text than diesel's: the full check decides (right).
        assert_eq!(
            agree(&good, "2026-12-03T10:20:30.123456"),
            ["unsure", "right"]
        );
        assert_eq!(
            agree(&good, "2026-12-03 10:20:30.123456000"),
            ["unsure", "right"]
        );

        let mut changed = Vec::new();
        let mut row = good.clone();
        row.body = row.body.replace("hello", "jello");
        changed.push(row); // the leaf hash no longer matches
        let mut row = good.clone();
        row.leaf_hash = row.leaf_hash.to_uppercase();
        changed.push(row);
        for edit in [
            |r: &mut StoredEntry| r.actor = "01900000-0000-7000-8000-00000000cafe".into(),
            |r: &mut StoredEntry| r.action = "user.logout".into(),
            |r: &mut StoredEntry| r.subject = None,
            |r: &mut StoredEntry| r.subject = Some("other".into()),
            |r: &mut StoredEntry| r.at = time("2026-12-03 10:20:30.123457"),
            |r: &mut StoredEntry| r.seq = 6,
        ] {
            let mut row = good.clone();
            edit(&mut row);
            changed.push(row);
        }
        for row in &changed {
            let answers = agree(row, &row.at.format("%F %T%.f").to_string());
            assert!(!answers.contains(&"right"), "{row:?}: {answers:?}");
            assert!(entry_fault(row, &leaf_hash(row.body.as_bytes())).is_some());
        }

        // A body in another shape with the same fields: valid, not canonical.
        let mut row = good.clone();
        row.body = row.body.replacen(",\"actor\"", ", \"actor\"", 1);
        row.leaf_hash = hex::encode(leaf_hash(row.body.as_bytes()));
        assert_eq!(agree(&row, at), ["unsure", "unsure"]);
        assert_eq!(entry_fault(&row, &leaf_hash(row.body.as_bytes())), None);
        // And one that is not an entry at all.
        row.body = "{\"seq\":5}".into();
        row.leaf_hash = hex::encode(leaf_hash(row.body.as_bytes()));
        assert_eq!(agree(&row, at), ["unsure", "unsure"]);
    }
}
