//! Review routes: which reviewers must approve a draft, in which order (issue "review routes
//! by risk"; docs/policies.md "Review routes"). A route, chosen at submission from
//! `policies/routes.toml` (or the default), becomes the draft's [`Plan`]: ordered steps, each
//! a reviewer group and how many of it must approve. The rules here are pure; the app
//! supplies who is in a group and who wrote the draft.
//!
//! Four eyes holds at every step: nobody who wrote or revised the draft approves, and
//! nobody approves twice, across steps too.

use crate::domain::ids::UserId;
use crate::policy::Verdict;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The name of the route that applies when no route of the policy set matches.
pub const DEFAULT_ROUTE: &str = "default";

/// How many of a step's group must approve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NeedRepr", into = "NeedRepr")]
pub enum Need {
    /// One member.
    Any,
    /// Every member eligible when the step starts (not a writer of the draft, not an
    /// approver of an earlier step).
    All,
    /// This many different members (≥ 1).
    AtLeast(u32),
}

/// The written form: `"any"`, `"all"` or a count.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NeedRepr {
    Word(String),
    Count(i64),
}

impl TryFrom<NeedRepr> for Need {
    type Error = String;
    fn try_from(r: NeedRepr) -> Result<Need, String> {
        match r {
            NeedRepr::Word(w) if w == "any" => Ok(Need::Any),
            NeedRepr::Word(w) if w == "all" => Ok(Need::All),
            NeedRepr::Count(n) if (1..=100).contains(&n) => Ok(Need::AtLeast(n as u32)),
            NeedRepr::Word(w) => Err(format!(
                "approvals must be \"any\", \"all\" or a number from 1 to 100, not {w:?}"
            )),
            NeedRepr::Count(n) => Err(format!(
                "approvals must be \"any\", \"all\" or a number from 1 to 100, not {n}"
            )),
        }
    }
}

impl From<Need> for NeedRepr {
    fn from(n: Need) -> NeedRepr {
        match n {
            Need::Any => NeedRepr::Word("any".into()),
            Need::All => NeedRepr::Word("all".into()),
            Need::AtLeast(k) => NeedRepr::Count(k.into()),
        }
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Any => f.write_str("any"),
            Need::All => f.write_str("all"),
            Need::AtLeast(k) => write!(f, "{k}"),
        }
    }
}

/// One step of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The reviewer group; `None`: every user with the reviewer role.
    pub group: Option<String>,
    pub approvals: Need,
    /// For [`Need::All`]: the members who must approve, fixed when the step starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<Vec<UserId>>,
}

impl Step {
    /// Approvals this step needs: for `all` the members fixed at its start (1 before it
    /// starts, the least it can need).
    pub fn needed(&self) -> u32 {
        match self.approvals {
            Need::Any => 1,
            Need::AtLeast(k) => k,
            Need::All => self.required.as_ref().map_or(1, |r| r.len().max(1) as u32),
        }
    }

    /// What the group is called in messages.
    pub fn group_label(&self) -> String {
        match &self.group {
            Some(g) => format!("group {g}"),
            None => "the reviewers".into(),
        }
    }
}

/// The route a draft takes through review, as stored with the draft at submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The route's name (`default` when none of the policy set's routes matched).
    pub route: String,
    pub steps: Vec<Step>,
}

/// An approval that counts: who, and for which step (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approval {
    pub reviewer: UserId,
    pub step: usize,
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("four eyes: nobody reviews a draft they wrote or revised")]
    FourEyes,
    #[error("you already approved this draft (nobody approves twice, across steps too)")]
    AlreadyApproved,
    #[error("this draft waits for {group} (step {step} of {steps}), and you are not one of those who may approve it now")]
    NotEligible {
        group: String,
        step: usize,
        steps: usize,
    },
    #[error("every step of this draft's route is complete")]
    Complete,
}

/// What an approval does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The step it counts for (0-based).
    pub step: usize,
    /// The step is complete with it; the next one (if any) starts.
    pub completes_step: bool,
    /// The whole route is complete: the draft is approved.
    pub completes_route: bool,
}

impl Plan {
    /// Today's rule when no route matches (spec/checks.md): one reviewer, two different
    /// reviewers for an escalated draft.
    pub fn default_for(verdict: Verdict) -> Plan {
        let approvals = match verdict {
            Verdict::Escalate => Need::AtLeast(2),
            Verdict::Pass | Verdict::Block => Need::Any,
        };
        Plan {
            route: DEFAULT_ROUTE.into(),
            steps: vec![Step {
                group: None,
                approvals,
                required: None,
            }],
        }
    }

    /// Approvals the whole route needs (its steps' [`Step::needed`] added up).
    pub fn approvals_needed(&self) -> u32 {
        self.steps.iter().map(Step::needed).sum()
    }

    /// Whether step `i` has what it needs from `approvals`.
    fn step_complete(&self, i: usize, approvals: &[Approval]) -> bool {
        let at: Vec<UserId> = approvals
            .iter()
            .filter(|a| a.step == i)
            .map(|a| a.reviewer)
            .collect();
        let step = &self.steps[i];
        match (&step.approvals, &step.required) {
            // Fails closed: an `all` step left with nobody (all writers, or all approved an
            // earlier step) is never complete.
            (Need::All, Some(required)) => {
                !required.is_empty() && required.iter().all(|u| at.contains(u))
            }
            // Not started yet.
            (Need::All, None) => false,
            _ => at.len() as u32 >= step.needed(),
        }
    }

    /// The step waiting for approvals (0-based), or `None` when every step is complete.
    pub fn current_step(&self, approvals: &[Approval]) -> Option<usize> {
        (0..self.steps.len()).find(|&i| !self.step_complete(i, approvals))
    }

    /// Who may approve the current step now: `eligible` (the group's reviewers now) less the
    /// draft's writers and everyone who approved already; for `all`, only its members fixed
    /// at the step's start (someone who left the group since may not approve, and the step
    /// then waits: fail closed).
    pub fn may_act(
        &self,
        approvals: &[Approval],
        writers: &[UserId],
        eligible: &[UserId],
    ) -> Vec<UserId> {
        let Some(i) = self.current_step(approvals) else {
            return Vec::new();
        };
        let approved = |u: &UserId| approvals.iter().any(|a| a.reviewer == *u);
        let fixed = match (&self.steps[i].approvals, &self.steps[i].required) {
            (Need::All, Some(required)) => Some(required),
            _ => None,
        };
        eligible
            .iter()
            .filter(|u| fixed.is_none_or(|r| r.contains(u)))
            .filter(|u| !writers.contains(u) && !approved(u))
            .copied()
            .collect()
    }

    /// Fixes the members of step `i` if it is an `all` step: the group's reviewers now
    /// (`eligible`), less the writers and whoever approved an earlier step.
    pub fn start_step(
        &mut self,
        i: usize,
        approvals: &[Approval],
        writers: &[UserId],
        eligible: &[UserId],
    ) {
        let Some(step) = self.steps.get_mut(i) else {
            return;
        };
        if step.approvals == Need::All {
            let mut members: Vec<UserId> = eligible
                .iter()
                .filter(|u| !writers.contains(u) && !approvals.iter().any(|a| a.reviewer == **u))
                .copied()
                .collect();
            members.sort();
            members.dedup();
            step.required = Some(members);
        }
    }

    /// Forgets the fixed members of every step (the approvals were voided: the route
    /// starts again, and `all` steps are fixed anew when they start).
    pub fn restart(&mut self) {
        for step in &mut self.steps {
            step.required = None;
        }
    }

    /// Decides `reviewer`'s approval, given the approvals that count so far, the draft's
    /// writers, and `eligible`: the members of the current step's group who hold the
    /// reviewer role now.
    pub fn approve(
        &self,
        approvals: &[Approval],
        reviewer: UserId,
        writers: &[UserId],
        eligible: &[UserId],
    ) -> Result<Outcome, Refusal> {
        if writers.contains(&reviewer) {
            return Err(Refusal::FourEyes);
        }
        if approvals.iter().any(|a| a.reviewer == reviewer) {
            return Err(Refusal::AlreadyApproved);
        }
        let step = self.current_step(approvals).ok_or(Refusal::Complete)?;
        if !self
            .may_act(approvals, writers, eligible)
            .contains(&reviewer)
        {
            return Err(Refusal::NotEligible {
                group: self.steps[step].group_label(),
                step: step + 1,
                steps: self.steps.len(),
            });
        }
        let mut after = approvals.to_vec();
        after.push(Approval { reviewer, step });
        let completes_step = self.step_complete(step, &after);
        Ok(Outcome {
            step,
            completes_step,
            completes_route: completes_step && self.current_step(&after).is_none(),
        })
    }

    /// Whether the route can be completed by these people at all, before it starts:
    /// `members[i]` are the reviewers of step `i`'s group now. Nobody approves twice, an
    /// `all` step takes every member of its group left when it starts (so later steps
    /// cannot count on them), and writers never approve.
    ///
    /// Errors: the first step that cannot be completed, and why.
    pub fn feasible(&self, writers: &[UserId], members: &[Vec<UserId>]) -> Result<(), String> {
        self.feasible_numbered(0, writers, members)
    }

    /// [`Plan::feasible`] with step numbers in messages counted from `first + 1`.
    fn feasible_numbered(
        &self,
        first: usize,
        writers: &[UserId],
        members: &[Vec<UserId>],
    ) -> Result<(), String> {
        // Each step's candidates: its members, less writers and less the members of an
        // earlier `all` step (taken there).
        let mut taken: Vec<UserId> = Vec::new();
        let mut slots: Vec<(usize, Vec<UserId>)> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let candidates: Vec<UserId> = members
                .get(i)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|u| !writers.contains(u) && !taken.contains(u))
                .copied()
                .collect();
            let need = match step.approvals {
                Need::All => 1,
                other => Step {
                    group: None,
                    approvals: other,
                    required: None,
                }
                .needed(),
            };
            if (candidates.len() as u32) < need {
                return Err(format!(
                    "step {} of route {:?} needs {} approval{} from {}, and only {} of its \
                     reviewers may approve this draft",
                    first + i + 1,
                    self.route,
                    need,
                    if need == 1 { "" } else { "s" },
                    step.group_label(),
                    candidates.len()
                ));
            }
            if step.approvals == Need::All {
                taken.extend(candidates.iter().copied());
            }
            slots.extend((0..need).map(|_| (i, candidates.clone())));
        }
        // Nobody approves twice: the slots need distinct people (a bipartite matching).
        let mut holder: Vec<Option<UserId>> = vec![None; slots.len()];
        for s in 0..slots.len() {
            let mut seen = vec![false; slots.len()];
            if !assign(s, &slots, &mut holder, &mut seen, &slots[s].1.clone()) {
                let step = slots[s].0;
                return Err(format!(
                    "route {:?} needs {} different approvers, and its groups do not have \
                     enough different reviewers who may approve this draft (step {} cannot be \
                     completed by someone who did not approve an earlier step)",
                    self.route,
                    slots.len(),
                    first + step + 1
                ));
            }
        }
        Ok(())
    }
}

impl Plan {
    /// Whether the rest of the route can still be completed after `approvals`: the same
    /// test as [`Plan::feasible`], for the steps from the current one, with what the current
    /// step still needs and nobody who approved already. `members[i]` are step `i`'s group's
    /// reviewers now (every step).
    ///
    /// Errors: the step that could no longer be completed, and why.
    pub fn feasible_after(
        &self,
        approvals: &[Approval],
        writers: &[UserId],
        members: &[Vec<UserId>],
    ) -> Result<(), String> {
        let Some(current) = self.current_step(approvals) else {
            return Ok(());
        };
        let mut blocked = writers.to_vec();
        blocked.extend(approvals.iter().map(|a| a.reviewer));
        let mut rest = Plan {
            route: self.route.clone(),
            steps: self.steps[current..].to_vec(),
        };
        let mut rest_members = members.get(current..).unwrap_or_default().to_vec();
        let done = approvals.iter().filter(|a| a.step == current).count() as u32;
        let first = &mut rest.steps[0];
        match (&first.approvals, &first.required) {
            (Need::All, Some(required)) => {
                let left: Vec<UserId> = required
                    .iter()
                    .filter(|u| !approvals.iter().any(|a| a.reviewer == **u))
                    .copied()
                    .collect();
                first.approvals = Need::AtLeast(left.len().max(1) as u32);
                if let Some(m) = rest_members.first_mut() {
                    m.retain(|u| left.contains(u));
                }
            }
            (Need::All, None) => {}
            (other, _) => {
                let needed = Step {
                    group: None,
                    approvals: *other,
                    required: None,
                }
                .needed();
                first.approvals = Need::AtLeast(needed.saturating_sub(done).max(1));
            }
        }
        rest.feasible_numbered(current, &blocked, &rest_members)
    }
}

/// Kuhn's augmenting path: gives slot `s` one of `candidates`, moving other slots' holders
/// to their other candidates where needed.
fn assign(
    s: usize,
    slots: &[(usize, Vec<UserId>)],
    holder: &mut [Option<UserId>],
    seen: &mut [bool],
    candidates: &[UserId],
) -> bool {
    for u in candidates {
        let current = holder.iter().position(|h| h.as_ref() == Some(u));
        match current {
            None => {
                holder[s] = Some(*u);
                return true;
            }
            Some(other) if !seen[other] => {
                seen[other] = true;
                let theirs = slots[other].1.clone();
                if assign(other, slots, holder, seen, &theirs) {
                    holder[s] = Some(*u);
                    return true;
                }
            }
            Some(_) => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(n: usize) -> Vec<UserId> {
        let mut v: Vec<UserId> = (0..n).map(|_| UserId::new()).collect();
        v.sort();
        v
    }

    fn step(group: &str, approvals: Need) -> Step {
        Step {
            group: Some(group.into()),
            approvals,
            required: None,
        }
    }

    fn plan(steps: Vec<Step>) -> Plan {
        Plan {
            route: "r".into(),
            steps,
        }
    }

    #[test]
    fn need_reads_any_all_and_a_count() {
        let parse = |s: &str| serde_json::from_str::<Need>(s);
        assert_eq!(parse("\"any\"").unwrap(), Need::Any);
        assert_eq!(parse("\"all\"").unwrap(), Need::All);
        assert_eq!(parse("3").unwrap(), Need::AtLeast(3));
        for bad in ["0", "-1", "101", "\"most\"", "2.5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&Need::AtLeast(2)).unwrap(), "2");
    }

    #[test]
    fn the_default_route_is_one_reviewer_or_two_for_escalate() {
        assert_eq!(Plan::default_for(Verdict::Pass).approvals_needed(), 1);
        assert_eq!(Plan::default_for(Verdict::Escalate).approvals_needed(), 2);
    }

    #[test]
    fn steps_are_taken_in_order() {
        let [a, b, c, w]: [UserId; 4] = users(4).try_into().unwrap();
        let p = plan(vec![
            step("compliance", Need::Any),
            step("legal", Need::Any),
        ]);
        let writers = [w];
        // Legal may not jump the queue.
        assert!(matches!(
            p.approve(&[], c, &writers, &[a, b]),
            Err(Refusal::NotEligible { step: 1, .. })
        ));
        let first = p.approve(&[], a, &writers, &[a, b]).unwrap();
        assert_eq!(
            first,
            Outcome {
                step: 0,
                completes_step: true,
                completes_route: false
            }
        );
        let so_far = [Approval {
            reviewer: a,
            step: 0,
        }];
        assert_eq!(p.current_step(&so_far), Some(1));
        // Someone in both groups who approved step 1 cannot approve step 2.
        assert_eq!(
            p.approve(&so_far, a, &writers, &[a, c]),
            Err(Refusal::AlreadyApproved)
        );
        assert_eq!(p.may_act(&so_far, &writers, &[a, c]), vec![c]);
        let last = p.approve(&so_far, c, &writers, &[a, c]).unwrap();
        assert!(last.completes_route);
    }

    #[test]
    fn a_writer_never_approves() {
        let [a, b]: [UserId; 2] = users(2).try_into().unwrap();
        let p = plan(vec![step("compliance", Need::Any)]);
        assert_eq!(p.approve(&[], a, &[a], &[a, b]), Err(Refusal::FourEyes));
        assert_eq!(p.may_act(&[], &[a], &[a, b]), vec![b]);
    }

    #[test]
    fn all_waits_for_every_member_fixed_at_the_start() {
        let [a, b, c, late]: [UserId; 4] = users(4).try_into().unwrap();
        let mut p = plan(vec![step("legal", Need::All)]);
        p.start_step(0, &[], &[c], &[a, b, c]);
        assert_eq!(
            p.steps[0].required,
            Some(vec![a, b]),
            "the writer c is left out"
        );
        assert_eq!(p.approvals_needed(), 2);
        let one = [Approval {
            reviewer: a,
            step: 0,
        }];
        assert!(
            !p.approve(&[], a, &[c], &[a, b, late])
                .unwrap()
                .completes_step
        );
        // Someone who joined the group after the step started is not one of "all".
        assert!(matches!(
            p.approve(&one, late, &[c], &[a, b, late]),
            Err(Refusal::NotEligible { .. })
        ));
        assert!(
            p.approve(&one, b, &[c], &[a, b, late])
                .unwrap()
                .completes_route
        );
        p.restart();
        assert_eq!(p.steps[0].required, None);
    }

    #[test]
    fn a_count_needs_that_many_different_members() {
        let [a, b, c]: [UserId; 3] = users(3).try_into().unwrap();
        let p = plan(vec![step("compliance", Need::AtLeast(2))]);
        let first = p.approve(&[], a, &[], &[a, b, c]).unwrap();
        assert!(!first.completes_step);
        let so_far = [Approval {
            reviewer: a,
            step: 0,
        }];
        assert!(
            p.approve(&so_far, b, &[], &[a, b, c])
                .unwrap()
                .completes_route
        );
    }

    #[test]
    fn an_approval_that_would_strand_a_later_step_is_caught() {
        let [x, y]: [UserId; 2] = users(2).try_into().unwrap();
        let p = plan(vec![step("a", Need::Any), step("b", Need::Any)]);
        let members = [vec![x, y], vec![x]];
        p.feasible(&[], &members).unwrap();
        // x approves step 1: step 2 has nobody left.
        let after_x = [Approval {
            reviewer: x,
            step: 0,
        }];
        let err = p.feasible_after(&after_x, &[], &members).unwrap_err();
        assert!(err.contains("step 2"), "{err}");
        // y approves step 1: x is left for step 2.
        let after_y = [Approval {
            reviewer: y,
            step: 0,
        }];
        p.feasible_after(&after_y, &[], &members).unwrap();
    }

    #[test]
    fn someone_who_left_the_group_may_not_approve_an_all_step() {
        let [a, b]: [UserId; 2] = users(2).try_into().unwrap();
        let mut p = plan(vec![step("legal", Need::All)]);
        p.start_step(0, &[], &[], &[a, b]);
        // b left legal: b may not approve, and the step waits for b (fail closed).
        assert_eq!(p.may_act(&[], &[], &[a]), vec![a]);
        assert!(matches!(
            p.approve(&[], b, &[], &[a]),
            Err(Refusal::NotEligible { .. })
        ));
        let after = [Approval {
            reviewer: a,
            step: 0,
        }];
        assert_eq!(p.current_step(&after), Some(0));
    }

    #[test]
    fn feasibility_counts_people_once_across_steps() {
        let [a, b, w]: [UserId; 3] = users(3).try_into().unwrap();
        let p = plan(vec![
            step("compliance", Need::Any),
            step("legal", Need::Any),
        ]);
        // One person in both groups cannot be both approvers.
        let err = p.feasible(&[w], &[vec![a], vec![a]]).unwrap_err();
        assert!(err.contains("different approvers"), "{err}");
        // Two people, one in both groups: a matching exists (b first, a second).
        p.feasible(&[w], &[vec![a, b], vec![a]]).unwrap();
        // Writers do not count.
        let err = p.feasible(&[a], &[vec![a, b], vec![a]]).unwrap_err();
        assert!(err.contains("step 2"), "{err}");
        // An empty or unknown group.
        assert!(p
            .feasible(&[], &[vec![], vec![a]])
            .unwrap_err()
            .contains("step 1"));
        // `all` takes its whole group: a later step cannot use its members.
        let q = plan(vec![
            step("legal", Need::All),
            step("compliance", Need::Any),
        ]);
        assert!(q.feasible(&[], &[vec![a, b], vec![a]]).is_err());
        q.feasible(&[], &[vec![a], vec![a, b]]).unwrap();
    }
}
