//! Reading and verifying the audit log (spec/audit.md "Verify and export").

use super::views::{rfc3339, AuditEntryView};
use super::Caller;
use crate::audit::{leaf_hash, TreeHasher};
use crate::db::audit::AuditFilter;
use crate::db::{self, DbConn};
use crate::domain::roles::Permission;
use crate::error::Result;
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

/// The result of checking the whole log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Verification {
    Intact {
        ok: bool,
        size: u64,
        /// RFC 6962 root of the whole log, base64.
        root: String,
    },
    Broken {
        ok: bool,
        first_bad_seq: i64,
        reason: String,
    },
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        matches!(self, Verification::Intact { .. })
    }
}

const BATCH: i64 = 10_000;

/// Recomputes every leaf hash from the stored bodies, checks that `seq` runs 1, 2, 3… with
/// no gap and that each body carries its own seq, and computes the tree root. Stops at the
/// first discrepancy. `progress` is called after each batch with the entries read so far.
pub fn verify(conn: &mut DbConn, mut progress: impl FnMut(u64)) -> Result<Verification> {
    let mut tree = TreeHasher::default();
    let mut expected: i64 = 1;
    loop {
        let batch = db::audit::batch_after(conn, expected - 1, BATCH)?;
        if batch.is_empty() {
            break;
        }
        for (seq, body, stored_hash) in batch {
            let broken = |reason: String| {
                Ok(Verification::Broken {
                    ok: false,
                    first_bad_seq: seq.min(expected),
                    reason,
                })
            };
            if seq != expected {
                return broken(format!(
                    "seq {expected} is missing (the next entry is {seq})"
                ));
            }
            let recomputed = leaf_hash(body.as_bytes());
            if hex::encode(recomputed) != stored_hash {
                return broken("the body does not match its stored leaf hash".into());
            }
            match serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b.get("seq").and_then(|s| s.as_i64()))
            {
                Some(s) if s == seq => {}
                _ => return broken("the body does not carry its own seq".into()),
            }
            tree.push(recomputed);
            expected += 1;
        }
        progress(tree.size());
    }
    let head = db::audit::head_size(conn)?;
    if head != expected - 1 {
        return Ok(Verification::Broken {
            ok: false,
            first_bad_seq: expected,
            reason: format!(
                "the log should hold {head} entries but {} were found",
                expected - 1
            ),
        });
    }
    Ok(Verification::Intact {
        ok: true,
        size: tree.size(),
        root: base64::engine::general_purpose::STANDARD.encode(tree.root()),
    })
}

pub fn verify_as(conn: &mut DbConn, caller: &Caller) -> Result<Verification> {
    caller.require(Permission::ReadAudit)?;
    verify(conn, |_| {})
}
