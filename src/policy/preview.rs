//! Policy impact preview: the drafts a proposed policy set would judge otherwise than the
//! set in force. Every sample (a draft revision, with its channel) is checked under both
//! sets; what changed is counted by verdict transition and by rule, with a few examples.
//! Pure: the caller reads the samples (docs/policies.md "Previewing a change").

use super::{LengthRule, PolicySet, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One draft revision to check.
#[derive(Debug, Clone)]
pub struct Sample {
    pub draft_id: String,
    pub revision: i32,
    pub text: String,
    pub length_rule: LengthRule,
    /// The customer's fediverse handle, allowed as `@user@domain` (Mastodon replies).
    pub mention: Option<String>,
}

/// Revisions whose verdict goes `from` → `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transition {
    pub from: Verdict,
    pub to: Verdict,
    pub revisions: usize,
    /// Distinct drafts among them.
    pub drafts: usize,
}

/// How often a rule's findings appear or disappear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleChange {
    pub rule: String,
    /// Revisions it reports under the proposed set and not under the set in force.
    pub now_reported: usize,
    /// Revisions it reports under the set in force and no longer under the proposed one.
    pub no_longer_reported: usize,
}

/// A revision the proposed set judges otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Example {
    pub draft_id: String,
    pub revision: i32,
    pub from: Verdict,
    pub to: Verdict,
    /// Rules that now report it.
    pub added: Vec<String>,
    /// Rules that no longer report it.
    pub removed: Vec<String>,
    pub text: String,
}

/// What a proposed set changes (recorded, without `examples`, in `policy.activated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Preview {
    /// The policy version in force, and the proposed one.
    pub from_version: String,
    pub to_version: String,
    /// Revisions checked, and the distinct drafts they belong to.
    pub revisions: usize,
    pub drafts: usize,
    /// Revisions whose verdict or reporting rules differ.
    pub changed: usize,
    /// Verdict changes only (`from` ≠ `to`), most frequent first.
    pub transitions: Vec<Transition>,
    /// Rules whose findings appear or disappear, most changes first.
    pub rules: Vec<RuleChange>,
    /// Up to [`EXAMPLES_PER_TRANSITION`] revisions for each (from, to) pair of verdicts,
    /// the same verdict included (only the reporting rules changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
}

/// How many examples a preview keeps for each verdict transition.
pub const EXAMPLES_PER_TRANSITION: usize = 3;

/// One revision's difference, if any.
struct Diff {
    sample: usize,
    from: Verdict,
    to: Verdict,
    added: Vec<String>,
    removed: Vec<String>,
}

fn diff_one(current: &PolicySet, proposed: &PolicySet, i: usize, s: &Sample) -> Option<Diff> {
    let rules = |set: &PolicySet| {
        let r = set.check_reply(&s.text, s.length_rule, s.mention.as_deref());
        let ids: BTreeSet<String> = r.findings.into_iter().map(|f| f.rule).collect();
        (r.verdict, ids)
    };
    let (from, before) = rules(current);
    let (to, after) = rules(proposed);
    if from == to && before == after {
        return None;
    }
    Some(Diff {
        sample: i,
        from,
        to,
        added: after.difference(&before).cloned().collect(),
        removed: before.difference(&after).cloned().collect(),
    })
}

/// Checks every sample under both sets (on every core) and reports the differences.
pub fn compare(current: &PolicySet, proposed: &PolicySet, samples: &[Sample]) -> Preview {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = samples.len().div_ceil(threads).max(1);
    let mut diffs: Vec<Diff> = std::thread::scope(|scope| {
        let handles: Vec<_> = samples
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .filter_map(|(j, s)| diff_one(current, proposed, c * chunk + j, s))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A panic in a checking thread is the preview's panic: never a silent undercount.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    diffs.sort_by_key(|d| d.sample);

    let mut transitions: BTreeMap<(Verdict, Verdict), (usize, BTreeSet<&str>)> = BTreeMap::new();
    let mut rules: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut examples = Vec::new();
    let mut shown: BTreeMap<(Verdict, Verdict), usize> = BTreeMap::new();
    for d in &diffs {
        let s = &samples[d.sample];
        if d.from != d.to {
            let t = transitions.entry((d.from, d.to)).or_default();
            t.0 += 1;
            t.1.insert(s.draft_id.as_str());
        }
        for r in &d.added {
            rules.entry(r).or_default().0 += 1;
        }
        for r in &d.removed {
            rules.entry(r).or_default().1 += 1;
        }
        let n = shown.entry((d.from, d.to)).or_default();
        if *n < EXAMPLES_PER_TRANSITION {
            *n += 1;
            examples.push(Example {
                draft_id: s.draft_id.clone(),
                revision: s.revision,
                from: d.from,
                to: d.to,
                added: d.added.clone(),
                removed: d.removed.clone(),
                text: s.text.clone(),
            });
        }
    }
    let mut transitions: Vec<Transition> = transitions
        .into_iter()
        .map(|((from, to), (revisions, drafts))| Transition {
            from,
            to,
            revisions,
            drafts: drafts.len(),
        })
        .collect();
    transitions.sort_by_key(|t| std::cmp::Reverse(t.revisions));
    let mut rules: Vec<RuleChange> = rules
        .into_iter()
        .map(|(rule, (now, gone))| RuleChange {
            rule: rule.to_string(),
            now_reported: now,
            no_longer_reported: gone,
        })
        .collect();
    rules.sort_by_key(|r| std::cmp::Reverse(r.now_reported + r.no_longer_reported));
    let drafts: BTreeSet<&str> = samples.iter().map(|s| s.draft_id.as_str()).collect();
    Preview {
        from_version: current.version().to_string(),
        to_version: proposed.version().to_string(),
        revisions: samples.len(),
        drafts: drafts.len(),
        changed: diffs.len(),
        transitions,
        rules,
        examples,
    }
}

impl Preview {
    /// The preview without its examples (no reply texts): what `policy.activated` records.
    pub fn summary(mut self) -> Preview {
        self.examples.clear();
        self
    }
}
