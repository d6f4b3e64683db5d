//! Export and evidence bundles (spec/audit.md "Bundles"), and their offline verification.
//!
//! A bundle is UTF-8 JSON lines. The first line is the header
//! `{"format": "countersign-bundle/1", "kind": "export" | "evidence", "origin", "checkpoint",
//! "draft_id"?}` (`checkpoint`: a signed note's full text); each further line is one entry,
//! in seq order, `{"seq", "body", "proof"}`: the stored body verbatim and the RFC 9162
//! inclusion proof (base64) of leaf `seq - 1` in the checkpoint's tree, or `[]` when the
//! bundle holds exactly entries 1 to the checkpoint's size (the root is then recomputed from
//! all the leaves). Everything here is pure: no database, no network.

use super::merkle::Hash;
use super::note::{Checkpoint, NoteVerifier};
use super::{leaf_hash, tree_root, ActionName, EntryBody};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

pub const FORMAT: &str = "countersign-bundle/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleKind {
    Export,
    Evidence,
}

/// The first line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    pub format: String,
    pub kind: BundleKind,
    pub origin: String,
    /// The signed checkpoint note, whole.
    pub checkpoint: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub draft_id: Option<String>,
}

/// One entry line of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    pub seq: i64,
    /// The stored body: exactly the bytes that were hashed.
    pub body: String,
    /// Base64 hashes, leaf to root; `[]` in a bundle of the whole tree.
    pub proof: Vec<String>,
}

pub fn encode_proof(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

/// One step of a reply's story (`verify-bundle --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `received`, `drafted`, `checked`, `submitted`, `approved` or `posted`.
    pub step: &'static str,
    pub seq: Option<i64>,
    pub at: Option<String>,
    pub actor: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the step says, for people (`drafted by ana`, `policy … verdict pass`).
    pub detail: String,
}

/// What `verify-bundle` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    pub ok: bool,
    pub kind: Option<BundleKind>,
    /// The reply an evidence bundle is about, as its header says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft_id: Option<String>,
    pub entries: usize,
    pub checkpoint_size: Option<u64>,
    /// The first thing that fails, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub steps: Vec<Step>,
}

impl BundleReport {
    fn failed(reason: String) -> BundleReport {
        BundleReport {
            ok: false,
            kind: None,
            draft_id: None,
            entries: 0,
            checkpoint_size: None,
            reason: Some(reason),
            steps: Vec::new(),
        }
    }

    /// The report for people: one line of summary, then the story's steps.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        match (self.kind, &self.draft_id) {
            (Some(BundleKind::Evidence), Some(d)) => {
                out.push_str(&format!("evidence of the reply (draft) {d}\n"))
            }
            (Some(BundleKind::Export), _) => out.push_str("export of the audit log\n"),
            _ => {}
        }
        match (&self.reason, self.checkpoint_size) {
            (None, Some(size)) => out.push_str(&format!(
                "bundle ok: {} entries, each proven in the signed checkpoint of size {size}\n",
                self.entries
            )),
            (Some(reason), _) => out.push_str(&format!("bundle FAILS: {reason}\n")),
            (None, None) => out.push_str("bundle ok\n"),
        }
        for s in &self.steps {
            out.push_str(&format!(
                "{} {:<9} {:>8} {:<27} {}{}\n",
                if s.ok { "ok  " } else { "FAIL" },
                s.step,
                s.seq.map(|q| format!("seq {q}")).unwrap_or_default(),
                s.at.as_deref().unwrap_or(""),
                s.detail,
                s.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ));
        }
        out
    }
}

/// Verifies a bundle's text with the log's verifier key: the checkpoint's signature and
/// origin, each entry's seq against its body, each leaf against the checkpoint's root, and,
/// for an evidence bundle, the story of the reply ([`evidence_story`]).
pub fn verify_bundle(text: &str, verifier: &NoteVerifier) -> BundleReport {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        return BundleReport::failed("the bundle is empty".into());
    };
    let header: BundleHeader = match serde_json::from_str(first) {
        Ok(h) => h,
        Err(e) => return BundleReport::failed(format!("line 1 is not a bundle header: {e}")),
    };
    if header.format != FORMAT {
        return BundleReport::failed(format!(
            "line 1: format {:?} is not {FORMAT:?}",
            header.format
        ));
    }
    let checkpoint = match Checkpoint::open(&header.checkpoint, verifier) {
        Ok(c) => c,
        Err(e) => return BundleReport::failed(format!("the checkpoint does not verify: {e}")),
    };
    if header.origin != checkpoint.origin {
        return BundleReport::failed(format!(
            "the header's origin {:?} is not the checkpoint's {:?}",
            header.origin, checkpoint.origin
        ));
    }
    let mut report = BundleReport {
        ok: false,
        kind: Some(header.kind),
        draft_id: header.draft_id.clone(),
        entries: 0,
        checkpoint_size: Some(checkpoint.size),
        reason: None,
        steps: Vec::new(),
    };
    let fail = |mut r: BundleReport, reason: String| {
        r.reason = Some(reason);
        r
    };
    let mut bodies: Vec<EntryBody> = Vec::new();
    let mut leaves: Vec<Hash> = Vec::new();
    let mut unproven = 0usize;
    let mut last_seq = 0i64;
    for (i, line) in lines {
        let n = i + 1;
        let entry: BundleEntry = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => return fail(report, format!("line {n} is not a bundle entry: {e}")),
        };
        if entry.seq <= last_seq {
            return fail(
                report,
                format!("line {n}: seq {} is not after seq {last_seq}", entry.seq),
            );
        }
        if entry.seq < 1 || entry.seq as u64 > checkpoint.size {
            return fail(
                report,
                format!(
                    "line {n}: seq {} is outside the checkpoint's tree of size {}",
                    entry.seq, checkpoint.size
                ),
            );
        }
        last_seq = entry.seq;
        let body: EntryBody = match serde_json::from_str(&entry.body) {
            Ok(b) => b,
            Err(e) => {
                return fail(
                    report,
                    format!("seq {}: the body is not an entry: {e}", entry.seq),
                )
            }
        };
        if body.seq != entry.seq {
            return fail(
                report,
                format!("seq {}: the body says seq {}", entry.seq, body.seq),
            );
        }
        let leaf = leaf_hash(entry.body.as_bytes());
        if entry.proof.is_empty() && checkpoint.size > 1 {
            unproven += 1;
        } else {
            let proof: Option<Vec<Hash>> = entry
                .proof
                .iter()
                .map(|h| B64.decode(h).ok().and_then(|b| b.try_into().ok()))
                .collect();
            let Some(proof) = proof else {
                return fail(
                    report,
                    format!(
                        "seq {}: the proof holds a hash that is not 32 bytes of base64",
                        entry.seq
                    ),
                );
            };
            if let Err(e) = super::proof::verify_inclusion(
                (entry.seq - 1) as u64,
                checkpoint.size,
                &leaf,
                &proof,
                &checkpoint.root,
            ) {
                return fail(
                    report,
                    format!(
                        "seq {}: not in the checkpoint's tree ({e}): the entry or its proof was changed",
                        entry.seq
                    ),
                );
            }
        }
        leaves.push(leaf);
        bodies.push(body);
    }
    report.entries = bodies.len();
    if unproven > 0 {
        // Proofs may be left out only when the bundle is the whole tree.
        let whole = bodies.len() as u64 == checkpoint.size
            && bodies.last().map(|b| b.seq as u64) == Some(checkpoint.size);
        if !whole {
            return fail(
                report,
                format!(
                    "{unproven} entries have no proof, but the bundle is not entries 1 to {}",
                    checkpoint.size
                ),
            );
        }
        if tree_root(&leaves) != checkpoint.root {
            return fail(
                report,
                "the entries do not give the checkpoint's root: one was changed, added or removed"
                    .into(),
            );
        }
    }
    if header.kind == BundleKind::Evidence {
        let Some(draft_id) = header.draft_id.as_deref() else {
            return fail(report, "an evidence bundle names its draft_id".into());
        };
        report.steps = evidence_story(draft_id, &bodies);
        if let Some(bad) = report.steps.iter().find(|s| !s.ok) {
            let reason = format!(
                "{}: {}",
                bad.step,
                bad.reason.as_deref().unwrap_or("not consistent")
            );
            return fail(report, reason);
        }
    }
    report.ok = true;
    report
}

fn text_of<'a>(e: &'a EntryBody, key: &str) -> Option<&'a str> {
    e.data.get(key).and_then(|v| v.as_str())
}

fn int_of(e: &EntryBody, key: &str) -> Option<i64> {
    e.data.get(key).and_then(|v| v.as_i64())
}

/// Who each user was, from the `user.created` / `user.updated` entries: name and roles as of
/// each seq.
/// A user as of an entry: (seq, username, roles).
type Version = (i64, String, Vec<String>);

struct People<'a> {
    history: BTreeMap<&'a str, Vec<Version>>,
}

impl<'a> People<'a> {
    fn from(entries: &'a [EntryBody]) -> People<'a> {
        let mut history: BTreeMap<&str, Vec<Version>> = BTreeMap::new();
        for e in entries {
            let is_user_entry = e.action == ActionName::UserCreated.as_str()
                || e.action == ActionName::UserUpdated.as_str();
            let Some(id) = e.subject.as_deref().filter(|_| is_user_entry) else {
                continue;
            };
            let before = history.get(id).and_then(|h| h.last()).cloned();
            let name = text_of(e, "username")
                .map(str::to_string)
                .or_else(|| before.as_ref().map(|b| b.1.clone()))
                .unwrap_or_default();
            let roles = e
                .data
                .get("roles")
                .and_then(|r| r.as_array())
                .map(|r| {
                    r.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .or_else(|| before.map(|b| b.2))
                .unwrap_or_default();
            history.entry(id).or_default().push((e.seq, name, roles));
        }
        People { history }
    }

    /// The user's name and roles as the log says at `seq`.
    fn at(&self, id: &str, seq: i64) -> Option<(&str, &[String])> {
        self.history
            .get(id)?
            .iter()
            .rev()
            .find(|(s, _, _)| *s < seq)
            .map(|(_, n, r)| (n.as_str(), r.as_slice()))
    }

    fn name(&self, id: &str, seq: i64) -> String {
        match self.at(id, seq) {
            Some((name, _)) => format!("{name} ({id})"),
            None => id.to_string(),
        }
    }
}

/// The story of one reply from its evidence entries (spec/audit.md "Bundles"): received,
/// drafted, checked, submitted, approved by as many distinct reviewers as it needed (none a
/// writer, each of the submitted revision and text), posted after the last approval with the
/// approved text. A draft not posted ends where it stands; each step says whether it holds.
pub fn evidence_story(draft_id: &str, entries: &[EntryBody]) -> Vec<Step> {
    let people = People::from(entries);
    let mut steps = Vec::new();
    let about_draft: Vec<&EntryBody> = entries
        .iter()
        .filter(|e| e.subject.as_deref() == Some(draft_id))
        .collect();
    let find_last = |action: ActionName| {
        about_draft
            .iter()
            .rposition(|e| e.action == action.as_str())
    };
    let step = |name: &'static str,
                e: Option<&EntryBody>,
                ok: bool,
                reason: Option<String>,
                detail: String| Step {
        step: name,
        seq: e.map(|e| e.seq),
        at: e.map(|e| e.at.clone()),
        actor: e.map(|e| e.actor.clone()),
        ok,
        reason,
        detail,
    };

    // drafted (needed first: it names the inbound message)
    let created = about_draft
        .iter()
        .find(|e| e.action == ActionName::DraftCreated.as_str())
        .copied();
    let Some(created) = created else {
        steps.push(step(
            "drafted",
            None,
            false,
            Some("the bundle holds no draft.created entry for this draft".into()),
            String::new(),
        ));
        return steps;
    };
    let inbound_id = text_of(created, "inbound_id").unwrap_or_default();
    let received = entries.iter().find(|e| {
        e.action == ActionName::InboundReceived.as_str() && e.subject.as_deref() == Some(inbound_id)
    });
    steps.push(match received {
        Some(r) if r.seq < created.seq => step(
            "received",
            Some(r),
            true,
            None,
            format!(
                "message {} from {} on {}",
                text_of(r, "external_id").unwrap_or("?"),
                text_of(r, "author_handle").unwrap_or("?"),
                text_of(r, "channel").unwrap_or("?")
            ),
        ),
        Some(r) => step(
            "received",
            Some(r),
            false,
            Some("the message was received after the reply was drafted".into()),
            String::new(),
        ),
        None => step(
            "received",
            None,
            false,
            Some(format!("no inbound.received entry for {inbound_id}")),
            String::new(),
        ),
    });
    let writers: HashSet<&str> = about_draft
        .iter()
        .filter(|e| {
            e.action == ActionName::DraftCreated.as_str()
                || e.action == ActionName::DraftRevised.as_str()
        })
        .map(|e| e.actor.as_str())
        .collect();
    // Every revision is there, in order: 1, 2, 3… (a left-out revision could hide a writer).
    let revisions: Vec<i64> = about_draft
        .iter()
        .filter(|e| {
            e.action == ActionName::DraftCreated.as_str()
                || e.action == ActionName::DraftRevised.as_str()
        })
        .map(|e| int_of(e, "revision").unwrap_or(0))
        .collect();
    let gap = revisions
        .iter()
        .enumerate()
        .find(|(i, r)| **r != *i as i64 + 1)
        .map(|(i, _)| i as i64 + 1);
    let mut writer_names: Vec<String> = writers.iter().map(|w| people.name(w, i64::MAX)).collect();
    writer_names.sort();
    steps.push(step(
        "drafted",
        Some(created),
        gap.is_none(),
        gap.map(|r| format!("the bundle lacks revision {r}: entries were left out")),
        format!("by {}", writer_names.join(", ")),
    ));

    let Some(submitted_at) = find_last(ActionName::DraftSubmitted) else {
        return steps;
    };
    let submitted = about_draft[submitted_at];
    let revision = int_of(submitted, "revision");
    let hash = text_of(submitted, "text_sha256");
    // The text submitted is the last text written (draft.created / draft.revised).
    let last_text = about_draft[..submitted_at].iter().rev().find(|e| {
        e.action == ActionName::DraftCreated.as_str()
            || e.action == ActionName::DraftRevised.as_str()
    });

    // checked: the submission's check report, under a policy version the bundle holds.
    let check = submitted.data.get("check");
    let version = check
        .and_then(|c| c.get("policy_version"))
        .and_then(|v| v.as_str());
    let verdict = check
        .and_then(|c| c.get("verdict"))
        .and_then(|v| v.as_str());
    let activated = entries.iter().rev().find(|e| {
        e.action == ActionName::PolicyActivated.as_str()
            && e.seq < submitted.seq
            && text_of(e, "policy_version") == version
    });
    steps.push(match (version, verdict, activated) {
        (Some(v), Some(verdict), Some(_)) if verdict != "block" => step(
            "checked",
            Some(submitted),
            true,
            None,
            format!("under policy version {v}: verdict {verdict}"),
        ),
        (Some(_), Some(verdict), Some(_)) => step(
            "checked",
            Some(submitted),
            false,
            Some(format!(
                "the verdict was {verdict}: a blocked draft is never submitted"
            )),
            String::new(),
        ),
        (Some(v), Some(_), None) => step(
            "checked",
            Some(submitted),
            false,
            Some(format!(
                "the bundle holds no policy.activated of version {v} before the submission"
            )),
            String::new(),
        ),
        _ => step(
            "checked",
            Some(submitted),
            false,
            Some("the submission carries no check report".into()),
            String::new(),
        ),
    });
    let submitted_ok = hash.is_some()
        && last_text.is_some_and(|t| {
            text_of(t, "text_sha256") == hash && int_of(t, "revision") == revision
        });
    steps.push(step(
        "submitted",
        Some(submitted),
        submitted_ok,
        (!submitted_ok).then(|| {
            "the submitted text hash or revision is not that of the last text written".into()
        }),
        format!(
            "revision {}, text_sha256 {}",
            revision.unwrap_or(0),
            hash.unwrap_or("?")
        ),
    ));

    // approved: the review.approved entries of the submitted revision after the submission.
    // Approvals before a post.refused or a review.expired were voided by it.
    let counted_from = find_last(ActionName::PostRefused)
        .max(find_last(ActionName::ReviewExpired))
        .filter(|&r| r > submitted_at)
        .unwrap_or(submitted_at);
    let approvals: Vec<&EntryBody> = about_draft[counted_from..]
        .iter()
        .filter(|e| {
            e.action == ActionName::ReviewApproved.as_str() && int_of(e, "revision") == revision
        })
        .copied()
        .collect();
    let mut approvers: HashSet<&str> = HashSet::new();
    for (i, a) in approvals.iter().enumerate() {
        let roles_ok = people
            .at(&a.actor, a.seq)
            .is_some_and(|(_, roles)| roles.iter().any(|r| r == "reviewer"));
        let reason = if writers.contains(a.actor.as_str()) {
            Some("four eyes: the approver wrote or revised this draft".to_string())
        } else if !approvers.insert(a.actor.as_str()) {
            Some("this reviewer already approved this revision".to_string())
        } else if text_of(a, "text_sha256") != hash {
            Some("the approval is of another text than the one submitted".to_string())
        } else if !roles_ok {
            Some("the log does not show the approver holding the reviewer role".to_string())
        } else if int_of(a, "approvals") != Some(i as i64 + 1) {
            Some("it counts a different number of approvals: one was left out".to_string())
        } else {
            None
        };
        steps.push(step(
            "approved",
            Some(a),
            reason.is_none(),
            reason,
            format!(
                "by {} ({} of {} needed), not a writer",
                people.name(&a.actor, a.seq),
                int_of(a, "approvals").unwrap_or(0),
                int_of(a, "approvals_needed").unwrap_or(0)
            ),
        ));
    }

    let posted = find_last(ActionName::PostSucceeded).map(|i| about_draft[i]);
    let Some(posted) = posted else {
        return steps;
    };
    let needed = approvals
        .last()
        .and_then(|a| int_of(a, "approvals_needed"))
        .unwrap_or(1);
    let last_approval = approvals.last().map(|a| a.seq).unwrap_or(i64::MAX);
    let reason = if approvals.is_empty() {
        Some("posted without an approval of the submitted revision".to_string())
    } else if (approvers.len() as i64) < needed {
        Some(format!(
            "posted with {} distinct approvals; {needed} were needed",
            approvers.len()
        ))
    } else if posted.seq < last_approval || posted.seq < submitted.seq {
        Some("posted before the last approval".to_string())
    } else if int_of(posted, "revision") != revision {
        Some("the posted revision is not the one approved".to_string())
    } else if text_of(posted, "text_sha256") != hash {
        Some("the posted text is not the text approved".to_string())
    } else {
        None
    };
    steps.push(step(
        "posted",
        Some(posted),
        reason.is_none(),
        reason,
        format!(
            "on {} as {}, in reply to {}",
            text_of(posted, "channel").unwrap_or("?"),
            text_of(posted, "post_id").unwrap_or("?"),
            text_of(posted, "in_reply_to").unwrap_or("?")
        ),
    ));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(seq: i64, actor: &str, action: &str, subject: &str, data: serde_json::Value) -> EntryBody {
        EntryBody {
            seq,
            at: format!("2026-12-03T10:00:{seq:02}.000000Z"),
            actor: actor.into(),
            action: action.into(),
            subject: (!subject.is_empty()).then(|| subject.to_string()),
            data,
        }
    }

    const H: &str = "aa";

    /// A reply's honest history: `needed` approvals by rev1, rev2…
    fn history(needed: i64) -> Vec<EntryBody> {
        let check = json!({"verdict": if needed > 1 {"escalate"} else {"pass"}, "policy_version": "v1", "findings": [], "weighted_length": 5});
        let mut out = vec![
            e(
                1,
                "system",
                "policy.activated",
                "",
                json!({"policy_version": "v1", "files": []}),
            ),
            e(
                2,
                "system",
                "user.created",
                "ana",
                json!({"username": "ana", "roles": ["agent"]}),
            ),
            e(
                3,
                "system",
                "user.created",
                "rev1",
                json!({"username": "rev1", "roles": ["reviewer"]}),
            ),
            e(
                4,
                "system",
                "user.created",
                "rev2",
                json!({"username": "rev2", "roles": ["reviewer"]}),
            ),
            e(
                5,
                "ana",
                "inbound.received",
                "in",
                json!({"channel": "x", "external_id": "9", "author_handle": "c"}),
            ),
            e(
                6,
                "ana",
                "draft.created",
                "d",
                json!({"inbound_id": "in", "revision": 1, "text_sha256": H, "check": check}),
            ),
            e(
                7,
                "ana",
                "draft.submitted",
                "d",
                json!({"revision": 1, "text_sha256": H, "check": check}),
            ),
        ];
        for i in 0..needed {
            out.push(e(
                8 + i,
                &format!("rev{}", i + 1),
                "review.approved",
                "d",
                json!({"revision": 1, "text_sha256": H, "approvals": i + 1, "approvals_needed": needed}),
            ));
        }
        let seq = 8 + needed;
        out.push(e(seq, "system", "post.succeeded", "d", json!({"revision": 1, "text_sha256": H, "channel": "x", "post_id": "p", "in_reply_to": "9"})));
        out
    }

    fn failing(steps: &[Step]) -> Vec<(&'static str, String)> {
        steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| (s.step, s.reason.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn an_honest_history_is_one_ok_step_each() {
        for needed in [1, 2] {
            let steps = evidence_story("d", &history(needed));
            assert_eq!(failing(&steps), vec![]);
            let names: Vec<_> = steps.iter().map(|s| s.step).collect();
            let mut want = vec!["received", "drafted", "checked", "submitted"];
            want.extend(std::iter::repeat_n("approved", needed as usize));
            want.push("posted");
            assert_eq!(names, want);
        }
    }

    #[test]
    fn a_writer_approving_is_a_four_eyes_breach() {
        let mut h = history(1);
        h[7].actor = "ana".into();
        let f = failing(&evidence_story("d", &h));
        assert!(
            f.iter()
                .any(|(s, r)| *s == "approved" && r.contains("four eyes")),
            "{f:?}"
        );
    }

    #[test]
    fn too_few_distinct_approvals_fail_the_post() {
        let mut h = history(2);
        h[8].actor = "rev1".into();
        let f = failing(&evidence_story("d", &h));
        assert!(
            f.iter().any(|(_, r)| r.contains("already approved")),
            "{f:?}"
        );
        let mut h = history(2);
        h.remove(8);
        let f = failing(&evidence_story("d", &h));
        assert!(
            f.iter()
                .any(|(s, r)| *s == "posted" && r.contains("needed")),
            "{f:?}"
        );
    }

    #[test]
    fn order_text_and_missing_steps_are_checked() {
        // Posted before the approval.
        let mut h = history(1);
        h[7].seq = 20;
        h.sort_by_key(|e| e.seq);
        let f = failing(&evidence_story("d", &h));
        assert!(
            f.iter()
                .any(|(s, r)| *s == "posted" && r.contains("before")),
            "{f:?}"
        );
        // Another text posted.
        let mut h = history(1);
        h[8].data["text_sha256"] = json!("bb");
        assert!(failing(&evidence_story("d", &h))
            .iter()
            .any(|(s, _)| *s == "posted"));
        // Another text approved.
        let mut h = history(1);
        h[7].data["text_sha256"] = json!("bb");
        assert!(failing(&evidence_story("d", &h))
            .iter()
            .any(|(s, _)| *s == "approved"));
        // Approved by someone who was no reviewer.
        let mut h = history(1);
        h[2].data["roles"] = json!(["agent"]);
        assert!(failing(&evidence_story("d", &h))
            .iter()
            .any(|(s, r)| *s == "approved" && r.contains("role")));
        // The policy version it was checked under is not in the bundle.
        let mut h = history(1);
        h.remove(0);
        assert!(failing(&evidence_story("d", &h))
            .iter()
            .any(|(s, _)| *s == "checked"));
        // No inbound message.
        let mut h = history(1);
        h.remove(4);
        assert!(failing(&evidence_story("d", &h))
            .iter()
            .any(|(s, _)| *s == "received"));
    }

    #[test]
    fn left_out_revisions_and_approvals_are_noticed() {
        // A revision 2 by the approver, left out, behind revision 3.
        let mut h = history(1);
        h[5].data["revision"] = json!(1);
        h.insert(
            6,
            e(
                6,
                "ana",
                "draft.revised",
                "d",
                json!({"revision": 3, "text_sha256": H}),
            ),
        );
        let f = failing(&evidence_story("d", &h));
        assert!(
            f.iter()
                .any(|(s, r)| *s == "drafted" && r.contains("revision 2")),
            "{f:?}"
        );
        // The first of two approvals left out: the second counts 2.
        let mut h = history(2);
        h.remove(7);
        let f = failing(&evidence_story("d", &h));
        assert!(
            f.iter()
                .any(|(s, r)| *s == "approved" && r.contains("left out")),
            "{f:?}"
        );
    }

    #[test]
    fn a_draft_not_yet_posted_ends_where_it_stands() {
        let h: Vec<EntryBody> = history(1).into_iter().take(7).collect();
        let steps = evidence_story("d", &h);
        assert_eq!(failing(&steps), vec![]);
        assert_eq!(steps.last().map(|s| s.step), Some("submitted"));
    }
}
