//! A draft's review route in the use cases: chosen at submission from the policy set's
//! routes, who may act on its current step (from the reviewer groups), and its view. The
//! rules themselves are `domain::routing`'s.

use super::Context;
use crate::db::drafts::{counted_approvals, DraftRow, ReviewRow};
use crate::db::inbound::InboundRow;
use crate::db::{self, DbConn};
use crate::domain::ids::UserId;
use crate::domain::inbound::Channel;
use crate::domain::routing::{Approval, Plan, Step, DEFAULT_ROUTE};
use crate::error::{Error, Result};
use crate::policy::CheckReport;
use serde::Serialize;
use utoipa::ToSchema;

/// The channel of the message a draft answers, for matching routes.
///
/// Errors: 409 for a stored channel Countersign does not know (a row from before channels
/// were checked): no route is guessed for it.
pub fn channel_of(inbound: &InboundRow) -> Result<Channel> {
    inbound.channel.parse().map_err(|_| {
        Error::Conflict(format!(
            "the message's channel {:?} is not one Countersign routes",
            inbound.channel
        ))
    })
}

/// The reviewers of `step`'s group now (with the reviewer role, not disabled).
pub fn eligible(conn: &mut DbConn, step: &Step) -> Result<Vec<UserId>> {
    db::groups::reviewers(conn, step.group.as_deref())
}

/// The route of the policies in force for a draft checked as `report`, answering
/// `inbound`, started: its first step's `all` members fixed. Returns it with who may act
/// on it now.
///
/// Errors: 409 naming the step when a route of the policy set cannot be completed by the
/// groups' members as they are (an empty or unknown group, too few reviewers who did not
/// write the draft).
pub fn start(
    ctx: &Context,
    conn: &mut DbConn,
    report: &CheckReport,
    inbound: &InboundRow,
    writers: &[UserId],
) -> Result<(Plan, Vec<UserId>)> {
    let mut plan = ctx
        .policies
        .current()
        .routes()
        .plan_for(report, channel_of(inbound)?);
    let members = plan
        .steps
        .iter()
        .map(|s| eligible(conn, s))
        .collect::<Result<Vec<_>>>()?;
    // The default route keeps the behaviour from before routes: a draft may wait for
    // reviewers who are yet to be made. A route of the policy set must be completable.
    if plan.route != DEFAULT_ROUTE {
        plan.feasible(writers, &members)
            .map_err(|why| Error::Conflict(format!("this draft cannot be submitted: {why}")))?;
    }
    plan.start_step(0, &[], writers, &members[0]);
    let may_act = plan.may_act(&[], writers, &members[0]);
    Ok((plan, may_act))
}

/// Routes a draft again under the policies in force after its approvals were voided by
/// expiry (its checks were re-run as `report`): the route they choose now, started. A
/// route that its groups cannot complete is still set (the draft is in review either way)
/// and logged; nobody may act on it until an admin mends the groups. Returns who may act.
pub fn reroute(
    ctx: &Context,
    conn: &mut DbConn,
    d: &mut DraftRow,
    report: &CheckReport,
    inbound: &InboundRow,
    writers: &[UserId],
) -> Result<Vec<UserId>> {
    let plan = match start(ctx, conn, report, inbound, writers) {
        Ok((plan, may_act)) => {
            d.set_plan(&plan)?;
            return Ok(may_act);
        }
        Err(Error::Conflict(why)) => {
            tracing::error!(draft_id = %d.id, "{why}");
            ctx.policies
                .current()
                .routes()
                .plan_for(report, channel_of(inbound)?)
        }
        Err(e) => return Err(e),
    };
    d.set_plan(&plan)?;
    restart(conn, d, writers)
}

/// Starts the route again after its approvals were voided (expiry, a refusal at posting):
/// `all` steps are fixed anew. Returns who may act on the first step.
pub fn restart(conn: &mut DbConn, d: &mut DraftRow, writers: &[UserId]) -> Result<Vec<UserId>> {
    let mut plan = d.plan()?;
    plan.restart();
    let Some(first) = plan.steps.first() else {
        return Ok(Vec::new());
    };
    let members = eligible(conn, first)?;
    plan.start_step(0, &[], writers, &members);
    d.set_plan(&plan)?;
    Ok(plan.may_act(&[], writers, &members))
}

/// Whether two plans are the same route (the members fixed so far aside).
pub fn same_route(a: &Plan, b: &Plan) -> bool {
    let shape = |p: &Plan| {
        (
            p.route.clone(),
            p.steps
                .iter()
                .map(|s| (s.group.clone(), s.approvals))
                .collect::<Vec<_>>(),
        )
    };
    shape(a) == shape(b)
}

/// Whether the fresh check at approval may keep the draft on its route: the same route, or
/// the default route asking for more approvals than at submission (a reload that raised
/// the verdict to escalate), which the draft then takes.
pub fn reconcile(stored: &Plan, fresh: &Plan) -> Result<Option<Plan>> {
    if same_route(stored, fresh) {
        return Ok(None);
    }
    if stored.route == DEFAULT_ROUTE && fresh.route == DEFAULT_ROUTE {
        return Ok((fresh.approvals_needed() > stored.approvals_needed()).then(|| fresh.clone()));
    }
    Err(Error::Conflict(format!(
        "the policies in force now route this draft through {:?}, and it was submitted \
         through {:?}: ask for changes, so that it is submitted again",
        fresh.route, stored.route
    )))
}

/// A step of a draft's route, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// The reviewer group; null: any reviewer.
    pub group: Option<String>,
    /// `any`, `all`, or how many, as written in routes.toml (a number as text).
    pub approvals: String,
    /// Approvals this step needs (for `all`: its members fixed when it started).
    pub needed: u32,
    /// Who approved it (this revision, still counting).
    pub approved_by: Vec<UserId>,
    /// `done`, `current` or `waiting`.
    pub state: String,
}

/// A draft's review route, as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// The route's name in routes.toml; `default` when none matched.
    pub name: String,
    pub steps: Vec<StepView>,
    /// The step waiting for approvals (1-based); null when none is (not in review, or
    /// every step is done).
    pub current_step: Option<usize>,
    /// Who may approve the current step now.
    pub may_act: Vec<UserId>,
}

/// Who may act on `d`'s current step now (nobody unless it is pending review).
pub fn may_act(
    conn: &mut DbConn,
    d: &DraftRow,
    plan: &Plan,
    approvals: &[Approval],
    writers: &[UserId],
) -> Result<Vec<UserId>> {
    if d.state != crate::domain::workflow::DraftState::PendingReview {
        return Ok(Vec::new());
    }
    let Some(i) = plan.current_step(approvals) else {
        return Ok(Vec::new());
    };
    let members = eligible(conn, &plan.steps[i])?;
    Ok(plan.may_act(approvals, writers, &members))
}

/// The route view of `d` (`None` before it was first submitted).
pub fn view(conn: &mut DbConn, d: &DraftRow, reviews: &[ReviewRow]) -> Result<Option<RouteView>> {
    if d.route.is_none() && d.state == crate::domain::workflow::DraftState::Draft {
        return Ok(None);
    }
    let plan = d.plan()?;
    let approvals = counted_approvals(reviews, d);
    let writers = db::drafts::writers(conn, d.id)?;
    let pending = d.state == crate::domain::workflow::DraftState::PendingReview;
    let first_open = plan.current_step(&approvals);
    let current = first_open.filter(|_| pending);
    let steps = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| StepView {
            group: s.group.clone(),
            approvals: s.approvals.to_string(),
            needed: s.needed(),
            approved_by: approvals
                .iter()
                .filter(|a| a.step == i)
                .map(|a| a.reviewer)
                .collect(),
            state: match first_open {
                Some(c) if c == i && pending => "current",
                Some(c) if c <= i => "waiting",
                _ => "done",
            }
            .into(),
        })
        .collect();
    Ok(Some(RouteView {
        name: plan.route.clone(),
        steps,
        current_step: current.map(|c| c + 1),
        may_act: may_act(conn, d, &plan, &approvals, &writers)?,
    }))
}
