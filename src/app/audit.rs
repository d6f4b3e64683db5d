//! Reading and verifying the audit log (spec/audit.md "Verify and export").

use super::views::{rfc3339, AuditEntryView};
use super::Caller;
use crate::audit::note::{Checkpoint, NoteVerifier};
use crate::audit::{leaf_hash, TreeHasher};
use crate::db::audit::AuditFilter;
use crate::db::{self, DbConn};
use crate::domain::roles::Permission;
use crate::error::{Error, Result};
use base64::Engine;
use serde::Serialize;

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

const BATCH: i64 = 10_000;

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
        return Some("the body does not match its stored leaf hash".into());
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
    let mut next_checkpoint = checkpoints.iter().peekable();
    let mut tree = TreeHasher::default();
    let mut expected: i64 = 1;
    let mut check_checkpoints = |tree: &TreeHasher| -> Option<Verification> {
        while let Some(cp) = next_checkpoint.next_if(|c| c.tree_size as u64 <= tree.size()) {
            if let Some(fault) = checkpoint_fault(cp, tree, verifier) {
                return Some(Verification::broken(None, fault));
            }
        }
        None
    };
    if let Some(v) = check_checkpoints(&tree) {
        return Ok(v);
    }
    loop {
        let batch = db::audit::rows_after(conn, expected - 1, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            if row.seq != expected {
                return Ok(Verification::broken(
                    Some(expected.min(row.seq)),
                    format!("seq {expected} is missing (the next entry is {})", row.seq),
                ));
            }
            if row.seq > head {
                return Ok(Verification::broken(
                    Some(row.seq),
                    format!(
                        "entry {} is beyond the head: the log records {head} entries",
                        row.seq
                    ),
                ));
            }
            let leaf = leaf_hash(row.body.as_bytes());
            if let Some(fault) = entry_fault(&row, &leaf) {
                return Ok(Verification::broken(Some(row.seq), fault));
            }
            tree.push(leaf);
            if let Some(v) = check_checkpoints(&tree) {
                return Ok(v);
            }
            expected += 1;
        }
        progress(tree.size());
    }
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
