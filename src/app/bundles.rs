//! Writing export and evidence bundles (spec/audit.md "Bundles"); the format and its
//! offline verification are in `audit::bundle`. Both use the checkpoint at the head, made
//! first if none exists for that size, so a bundle always covers the newest entries.

use super::checkpoints::LogSigner;
use super::Caller;
use crate::audit::bundle::{encode_proof, BundleEntry, BundleHeader, BundleKind, FORMAT};
use crate::audit::{ActionName, EntryBody};
use crate::db::{self, audit::AuditFilter, DbConn};
use crate::domain::ids::DraftId;
use crate::domain::roles::Permission;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// Which entries an export holds (all when every field is `None`).
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub subject: Option<String>,
}

impl ExportFilter {
    fn is_everything(&self) -> bool {
        self.since.is_none() && self.until.is_none() && self.subject.is_none()
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Unavailable(format!("cannot write the bundle: {e}"))
}

fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n").map_err(io)
}

fn header(
    log: &LogSigner,
    note: String,
    kind: BundleKind,
    draft_id: Option<String>,
) -> BundleHeader {
    BundleHeader {
        format: FORMAT.into(),
        kind,
        origin: log.origin().to_string(),
        checkpoint: note,
        draft_id,
    }
}

/// Writes an export bundle of the entries `filter` selects; returns how many. A bundle of
/// the whole log carries no proofs (the verifier recomputes the root from every leaf); any
/// other carries each entry's inclusion proof.
pub fn export(
    conn: &mut DbConn,
    log: &LogSigner,
    filter: &ExportFilter,
    out: &mut impl Write,
) -> Result<usize> {
    let cp = log.checkpoint_head(conn)?;
    let size = cp.tree_size;
    write_line(out, &header(log, cp.note, BundleKind::Export, None))?;
    let whole = filter.is_everything();
    let mut written = 0;
    let mut after = 0i64;
    loop {
        let page = db::audit::query(
            conn,
            &AuditFilter {
                since: filter.since,
                until: filter.until,
                subject: filter.subject.clone(),
                after: Some(after),
                limit: 10_000,
                ..Default::default()
            },
        )?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        let rows: Vec<_> = page.into_iter().filter(|r| r.seq <= size).collect();
        let proofs = if whole {
            vec![Vec::new(); rows.len()]
        } else {
            let indexes: Vec<u64> = rows.iter().map(|r| (r.seq - 1) as u64).collect();
            db::audit::inclusion_proofs(conn, &indexes, size as u64)?
        };
        for (row, proof) in rows.into_iter().zip(proofs) {
            write_line(
                out,
                &BundleEntry {
                    seq: row.seq,
                    body: row.body,
                    proof: encode_proof(&proof),
                },
            )?;
            written += 1;
        }
        if after >= size {
            break;
        }
    }
    out.flush().map_err(io)?;
    Ok(written)
}

/// Writes the evidence bundle of one reply: every entry about the draft or its inbound
/// message, the `policy.activated` entries of each policy version their check reports name,
/// the `user.created` / `user.updated` entries of everyone who acted, and the
/// `group.created` / `group.updated` entries of the groups its approvals counted for. Each
/// with its inclusion proof. Returns how many entries.
///
/// Errors: 404 for an unknown draft.
pub fn evidence(
    conn: &mut DbConn,
    log: &LogSigner,
    draft_id: DraftId,
    out: &mut impl Write,
) -> Result<usize> {
    let draft =
        db::drafts::by_id(conn, draft_id)?.ok_or_else(|| Error::not_found("draft", draft_id))?;
    let cp = log.checkpoint_head(conn)?;
    let size = cp.tree_size;
    let mut chosen: BTreeMap<i64, String> = BTreeMap::new();
    for subject in [&draft.id as &dyn std::fmt::Display, &draft.inbound_id] {
        chosen.extend(db::audit::bodies_about(conn, subject, size)?);
    }
    let parsed: Vec<EntryBody> = chosen
        .values()
        .map(|b| {
            serde_json::from_str(b)
                .map_err(|e| Error::Internal(format!("a stored audit body does not parse: {e}")))
        })
        .collect::<Result<_>>()?;
    let versions: BTreeSet<&str> = parsed
        .iter()
        .filter_map(|e| e.data.get("check")?.get("policy_version")?.as_str())
        .collect();
    let actors: BTreeSet<&str> = parsed
        .iter()
        .map(|e| e.actor.as_str())
        .filter(|a| *a != "system")
        .collect();
    let mut more: Vec<(i64, String)> = Vec::new();
    for (seq, body) in db::audit::bodies_with_action(conn, ActionName::PolicyActivated, size)? {
        let version = serde_json::from_str::<EntryBody>(&body)
            .ok()
            .and_then(|b| b.data.get("policy_version")?.as_str().map(str::to_string));
        if version.is_some_and(|v| versions.contains(v.as_str())) {
            more.push((seq, body));
        }
    }
    let who = [ActionName::UserCreated, ActionName::UserUpdated];
    for actor in actors {
        more.extend(db::audit::bodies_about_with_actions(
            conn, &actor, &who, size,
        )?);
    }
    // The groups the approvals counted for, and who was in them: their entries up to the
    // checkpoint (a group's name is fixed, so it names the group the approval saw).
    let groups: BTreeSet<&str> = parsed
        .iter()
        .filter(|e| e.action == ActionName::ReviewApproved.as_str())
        .filter_map(|e| e.data.get("group")?.as_str())
        .collect();
    let membership = [ActionName::GroupCreated, ActionName::GroupUpdated];
    for name in groups {
        if let Some(g) = db::groups::by_name(conn, name)? {
            more.extend(db::audit::bodies_about_with_actions(
                conn,
                &g.id,
                &membership,
                size,
            )?);
        }
    }
    chosen.extend(more);
    write_line(
        out,
        &header(
            log,
            cp.note,
            BundleKind::Evidence,
            Some(draft_id.to_string()),
        ),
    )?;
    let indexes: Vec<u64> = chosen.keys().map(|seq| (*seq - 1) as u64).collect();
    let proofs = db::audit::inclusion_proofs(conn, &indexes, size as u64)?;
    for ((seq, body), proof) in chosen.iter().zip(proofs) {
        write_line(
            out,
            &BundleEntry {
                seq: *seq,
                body: body.clone(),
                proof: encode_proof(&proof),
            },
        )?;
    }
    out.flush().map_err(io)?;
    Ok(chosen.len())
}

/// [`evidence`] for a signed-in auditor or admin, into memory (for `GET /audit/evidence`).
pub fn evidence_as(
    conn: &mut DbConn,
    caller: &Caller,
    log: &LogSigner,
    draft_id: DraftId,
) -> Result<Vec<u8>> {
    caller.require(Permission::ReadAudit)?;
    let mut out = Vec::new();
    evidence(conn, log, draft_id, &mut out)?;
    Ok(out)
}
