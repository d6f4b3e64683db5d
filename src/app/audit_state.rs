//! The state check (`audit verify --state`, spec/audit.md "Verify and export"): replays the
//! log and compares the service's own tables with what its entries say. Every user,
//! customer, handle, inbound message, draft, revision and review must be what the log says,
//! and no such row may exist that the log does not explain. Sessions, password hashes, job
//! attempts and leases, and timestamps the entries do not carry are out of scope.

use super::audit::{StateMismatch, Verification};
use crate::audit::{ActionName, EntryBody};
use crate::db::{self, DbConn};
use crate::domain::inbound::InboundState;
use crate::domain::roles::RoleSet;
use crate::domain::workflow::DraftState;
use crate::error::Result;
use std::collections::{BTreeMap, HashMap};

/// At most this many mismatches are listed (the count is in `reason`).
const MAX_LISTED: usize = 1000;

#[derive(Debug, Default, Clone, PartialEq)]
struct User {
    username: String,
    email: Option<String>,
    roles: String,
    disabled: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Inbound {
    channel: String,
    external_id: String,
    customer_id: String,
    text: String,
    state: InboundState,
}

#[derive(Debug, Clone, PartialEq)]
struct Draft {
    inbound_id: String,
    state: DraftState,
    revision: i64,
    text: String,
}

/// What the log says the tables hold.
#[derive(Debug, Default)]
struct Replayed {
    users: HashMap<String, User>,
    /// id -> (crm_ref, merged_into)
    customers: HashMap<String, (Option<String>, Option<String>)>,
    handles: HashMap<(String, String), String>,
    inbound: HashMap<String, Inbound>,
    drafts: HashMap<String, Draft>,
    /// (draft, revision) -> (text, author)
    revisions: HashMap<(String, i64), (String, String)>,
    /// draft -> [(reviewer, decision, revision)] in log order
    reviews: HashMap<String, Vec<(String, &'static str, i64)>>,
    /// reviewer group id -> (name, member ids, sorted)
    groups: HashMap<String, (String, Vec<String>)>,
    /// Entries the replay could not apply: (seq, why).
    faults: Vec<(i64, String)>,
}

fn text(e: &EntryBody, key: &str) -> String {
    e.data
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

fn opt_text(e: &EntryBody, key: &str) -> Option<String> {
    e.data.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

fn int(e: &EntryBody, key: &str) -> i64 {
    e.data.get(key).and_then(|v| v.as_i64()).unwrap_or(0)
}

impl Replayed {
    fn apply(&mut self, e: &EntryBody) {
        let Some(action) = ActionName::parse(&e.action) else {
            return self
                .faults
                .push((e.seq, format!("unknown action {:?}", e.action)));
        };
        let subject = e.subject.clone().unwrap_or_default();
        use ActionName as A;
        match action {
            A::UserCreated => {
                let roles: RoleSet = e
                    .data
                    .get("roles")
                    .and_then(|r| serde_json::from_value(r.clone()).ok())
                    .unwrap_or_default();
                self.users.insert(
                    subject,
                    User {
                        username: text(e, "username"),
                        email: e
                            .data
                            .get("email")
                            .and_then(|v| v.as_str())
                            .map(str::to_string),
                        roles: roles.to_string(),
                        disabled: false,
                    },
                );
            }
            A::UserUpdated => match self.users.get_mut(&subject) {
                Some(u) => {
                    if let Some(name) = e.data.get("username").and_then(|v| v.as_str()) {
                        u.username = name.to_string();
                    }
                    if let Some(roles) = e.data.get("roles") {
                        match serde_json::from_value::<RoleSet>(roles.clone()) {
                            Ok(r) => u.roles = r.to_string(),
                            Err(_) => self
                                .faults
                                .push((e.seq, "user.updated: unreadable roles".into())),
                        }
                    }
                    if let Some(email) = e.data.get("email") {
                        u.email = email.as_str().map(str::to_string);
                    }
                    if let Some(d) = e.data.get("disabled").and_then(|v| v.as_bool()) {
                        u.disabled = d;
                    }
                }
                None => self
                    .faults
                    .push((e.seq, "user.updated of an unknown user".into())),
            },
            A::CustomerCreated => {
                self.customers.insert(subject.clone(), (None, None));
                self.handles
                    .insert((text(e, "channel"), text(e, "handle")), subject);
            }
            A::CustomerUpdated => match self.customers.get_mut(&subject) {
                Some((crm_ref, _)) => *crm_ref = opt_text(e, "crm_ref"),
                None => self
                    .faults
                    .push((e.seq, "customer.updated of an unknown customer".into())),
            },
            A::CustomerLinked => {
                if !self.customers.contains_key(&subject) {
                    self.faults
                        .push((e.seq, "customer.linked of an unknown customer".into()));
                }
                self.handles
                    .insert((text(e, "channel"), text(e, "handle")), subject);
            }
            A::CustomerMerged => {
                let from = text(e, "from");
                if !self.customers.contains_key(&subject) || !self.customers.contains_key(&from) {
                    self.faults
                        .push((e.seq, "customer.merged of an unknown customer".into()));
                    return;
                }
                // The merged-away record points at the survivor; its handles and messages
                // move there, and the survivor's CRM reference is the one recorded.
                self.customers
                    .insert(from.clone(), (None, Some(subject.clone())));
                if let Some((crm_ref, _)) = self.customers.get_mut(&subject) {
                    *crm_ref = opt_text(e, "crm_ref");
                }
                for owner in self.handles.values_mut() {
                    if *owner == from {
                        *owner = subject.clone();
                    }
                }
                for m in self.inbound.values_mut() {
                    if m.customer_id == from {
                        m.customer_id = subject.clone();
                    }
                }
            }
            A::InboundClosed => match self.inbound.get_mut(&subject) {
                Some(m) => m.state = InboundState::Closed,
                None => self
                    .faults
                    .push((e.seq, "inbound.closed of an unknown message".into())),
            },
            A::DraftSuperseded => self.move_draft(e, &subject, DraftState::Superseded),
            A::InboundReceived => {
                self.inbound.insert(
                    subject,
                    Inbound {
                        channel: text(e, "channel"),
                        external_id: text(e, "external_id"),
                        customer_id: text(e, "customer_id"),
                        text: text(e, "text"),
                        state: InboundState::Open,
                    },
                );
            }
            A::DraftCreated => {
                self.drafts.insert(
                    subject.clone(),
                    Draft {
                        inbound_id: text(e, "inbound_id"),
                        state: DraftState::Draft,
                        revision: int(e, "revision"),
                        text: text(e, "text"),
                    },
                );
                self.revisions.insert(
                    (subject, int(e, "revision")),
                    (text(e, "text"), e.actor.clone()),
                );
            }
            A::DraftRevised => {
                if let Some(d) = self.drafts.get_mut(&subject) {
                    d.state = DraftState::Draft;
                    d.revision = int(e, "revision");
                    d.text = text(e, "text");
                }
                self.revisions.insert(
                    (subject, int(e, "revision")),
                    (text(e, "text"), e.actor.clone()),
                );
            }
            A::DraftSubmitted => self.move_draft(e, &subject, DraftState::PendingReview),
            A::ReviewApproved => {
                let complete = int(e, "approvals") >= int(e, "approvals_needed");
                let to = if complete {
                    DraftState::Approved
                } else {
                    DraftState::PendingReview
                };
                self.move_draft(e, &subject, to);
                self.review(e, &subject, "approve");
            }
            A::ReviewRejected => {
                self.move_draft(e, &subject, DraftState::Rejected);
                self.review(e, &subject, "reject");
            }
            A::ReviewChangesRequested => {
                self.move_draft(e, &subject, DraftState::ChangesRequested);
                self.review(e, &subject, "request_changes");
            }
            A::PostSucceeded => {
                self.move_draft(e, &subject, DraftState::Posted);
                let inbound = self.drafts.get(&subject).map(|d| d.inbound_id.clone());
                if let Some(m) = inbound.and_then(|i| self.inbound.get_mut(&i)) {
                    m.state = InboundState::Answered;
                }
            }
            // With a retry ahead the draft stays `approved`; without, it is `post_failed`.
            A::PostFailed => {
                if e.data.get("retry_at").is_some_and(|r| r.is_null()) {
                    self.move_draft(e, &subject, DraftState::PostFailed)
                }
            }
            A::PostRefused => {
                // Entries from before the checks re-ran at posting carry no `state`.
                let to = e
                    .data
                    .get("state")
                    .and_then(|s| s.as_str())
                    .map(|s| s.parse::<DraftState>());
                match to {
                    None => self.move_draft(e, &subject, DraftState::PendingReview),
                    Some(Ok(to)) => self.move_draft(e, &subject, to),
                    Some(Err(err)) => self.faults.push((e.seq, format!("post.refused: {err}"))),
                }
            }
            A::PostRetried => self.move_draft(e, &subject, DraftState::Approved),
            A::ReviewExpired => {
                match e
                    .data
                    .get("state")
                    .and_then(|s| s.as_str())
                    .map(str::parse::<DraftState>)
                {
                    Some(Ok(to)) => self.move_draft(e, &subject, to),
                    _ => self
                        .faults
                        .push((e.seq, "review.expired: no readable state".into())),
                }
            }
            A::UserLogin
            | A::UserLoginFailed
            | A::UserLockedOut
            | A::UserLogout
            | A::UserPasswordSet
            | A::UserPasswordReset
            | A::MailSent
            | A::MailFailed
            | A::InboundAtRisk
            | A::InboundBreached
            | A::PolicyActivated => {}
            A::GroupCreated => {
                self.groups.insert(subject, (text(e, "name"), Vec::new()));
            }
            A::GroupUpdated => {
                let members: Option<Vec<String>> = e
                    .data
                    .get("members")
                    .and_then(|m| serde_json::from_value(m.clone()).ok());
                match (self.groups.get_mut(&subject), members) {
                    (Some(g), Some(mut members)) => {
                        members.sort();
                        g.1 = members;
                    }
                    (None, _) => self
                        .faults
                        .push((e.seq, "group.updated of an unknown group".into())),
                    (_, None) => self
                        .faults
                        .push((e.seq, "group.updated: unreadable members".into())),
                }
            }
        }
    }

    fn move_draft(&mut self, e: &EntryBody, draft: &str, to: DraftState) {
        match self.drafts.get_mut(draft) {
            Some(d) => d.state = to,
            None => self
                .faults
                .push((e.seq, format!("{} of an unknown draft", e.action))),
        }
    }

    fn review(&mut self, e: &EntryBody, draft: &str, decision: &'static str) {
        self.reviews.entry(draft.to_string()).or_default().push((
            e.actor.clone(),
            decision,
            int(e, "revision"),
        ));
    }
}

struct Report(Vec<StateMismatch>);

impl Report {
    fn add(&mut self, table: &str, id: impl Into<String>, reason: impl Into<String>) {
        self.0.push(StateMismatch {
            table: table.into(),
            id: id.into(),
            reason: reason.into(),
        });
    }

    /// Rows the log knows that the table lacks.
    fn missing<'a>(&mut self, table: &str, ids: impl Iterator<Item = &'a String>) {
        for id in ids {
            self.add(table, id.clone(), "the log has it but the table does not");
        }
    }
}

fn differ(what: &str, table: &str, log: &str) -> String {
    format!("{what} is {table:?} but the log says {log:?}")
}

/// Replays the whole log and lists every table row that disagrees with it.
pub fn mismatches(conn: &mut DbConn) -> Result<Vec<StateMismatch>> {
    let mut replay = Replayed::default();
    let mut after = 0;
    loop {
        let batch = db::audit::rows_after(conn, after, 10_000)?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for row in &batch {
            match serde_json::from_str::<EntryBody>(&row.body) {
                Ok(e) => replay.apply(&e),
                Err(_) => replay
                    .faults
                    .push((row.seq, "the body is not an entry".into())),
            }
        }
    }
    let mut r = Report(Vec::new());
    for (seq, why) in &replay.faults {
        r.add("audit_entries", seq.to_string(), why.clone());
    }

    let mut expected = replay.users;
    for (id, username, email, roles, disabled) in db::state::users(conn)? {
        let Some(u) = expected.remove(&id) else {
            r.add("users", id, "no user.created entry explains this user");
            continue;
        };
        // Compared as stored: a list that is not sorted, repeats or names no role differs.
        if username != u.username {
            r.add("users", &id, differ("username", &username, &u.username));
        }
        if roles != u.roles {
            r.add("users", &id, differ("roles", &roles, &u.roles));
        }
        if disabled != u.disabled {
            r.add(
                "users",
                &id,
                differ("disabled", &disabled.to_string(), &u.disabled.to_string()),
            );
        }
        if email != u.email {
            r.add(
                "users",
                &id,
                differ(
                    "email",
                    email.as_deref().unwrap_or(""),
                    u.email.as_deref().unwrap_or(""),
                ),
            );
        }
    }
    r.missing("users", expected.keys());

    let mut expected = replay.groups;
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, user) in db::groups::all_members(conn)? {
        members
            .entry(group.to_string())
            .or_default()
            .push(user.to_string());
    }
    for g in db::groups::all(conn)? {
        let id = g.id.to_string();
        let Some((name, want)) = expected.remove(&id) else {
            r.add(
                "review_groups",
                id,
                "no group.created entry explains this group",
            );
            continue;
        };
        if g.name != name {
            r.add("review_groups", &id, differ("name", &g.name, &name));
        }
        let mut have = members.remove(&id).unwrap_or_default();
        have.sort();
        if have != want {
            r.add(
                "review_group_members",
                &id,
                differ("members", &have.join(","), &want.join(",")),
            );
        }
    }
    r.missing("review_groups", expected.keys());

    let mut expected = replay.customers;
    for (id, crm_ref, merged_into) in db::state::customers(conn)? {
        let Some((want_ref, want_merged)) = expected.remove(&id) else {
            r.add(
                "customers",
                id,
                "no customer.created entry explains this customer",
            );
            continue;
        };
        if crm_ref != want_ref {
            let show = |v: &Option<String>| v.clone().unwrap_or_default();
            r.add(
                "customers",
                &id,
                differ("crm_ref", &show(&crm_ref), &show(&want_ref)),
            );
        }
        if merged_into != want_merged {
            let show = |v: &Option<String>| v.clone().unwrap_or_default();
            r.add(
                "customers",
                &id,
                differ("merged_into", &show(&merged_into), &show(&want_merged)),
            );
        }
    }
    r.missing("customers", expected.keys());

    let mut expected = replay.handles;
    for (channel, handle, customer) in db::state::handles(conn)? {
        let key = format!("{channel}:{handle}");
        match expected.remove(&(channel, handle)) {
            None => r.add("customer_handles", key, "no entry links this handle"),
            Some(c) if c != customer => r.add(
                "customer_handles",
                key,
                differ("customer_id", &customer, &c),
            ),
            Some(_) => {}
        }
    }
    for (channel, handle) in expected.keys() {
        r.add(
            "customer_handles",
            format!("{channel}:{handle}"),
            "the log has it but the table does not",
        );
    }

    let mut expected = replay.inbound;
    for m in db::state::inbound(conn)? {
        let Some(want) = expected.remove(&m.id) else {
            r.add(
                "inbound_messages",
                m.id,
                "no inbound.received entry explains this message",
            );
            continue;
        };
        for (what, table, log) in [
            ("channel", &m.channel, &want.channel),
            ("external_id", &m.external_id, &want.external_id),
            ("customer_id", &m.customer_id, &want.customer_id),
            ("text", &m.text, &want.text),
        ] {
            if table != log {
                r.add("inbound_messages", &m.id, differ(what, table, log));
            }
        }
        if m.state != want.state.as_str() {
            r.add(
                "inbound_messages",
                &m.id,
                differ("state", &m.state, want.state.as_str()),
            );
        }
    }
    r.missing("inbound_messages", expected.keys());

    let mut expected = replay.drafts;
    for (id, state, revision, text) in db::state::drafts(conn)? {
        let Some(want) = expected.remove(&id) else {
            r.add("drafts", id, "no draft.created entry explains this draft");
            continue;
        };
        if state != want.state.as_str() {
            r.add("drafts", &id, differ("state", &state, want.state.as_str()));
        }
        if i64::from(revision) != want.revision {
            r.add(
                "drafts",
                &id,
                differ(
                    "revision",
                    &revision.to_string(),
                    &want.revision.to_string(),
                ),
            );
        }
        if text != want.text {
            r.add("drafts", &id, differ("text", &text, &want.text));
        }
    }
    r.missing("drafts", expected.keys());

    let mut expected = replay.revisions;
    for (draft, revision, text, author) in db::state::revisions(conn)? {
        let key = format!("{draft}/{revision}");
        let Some((want_text, want_author)) = expected.remove(&(draft, i64::from(revision))) else {
            r.add("draft_revisions", key, "no entry explains this revision");
            continue;
        };
        if text != want_text {
            r.add("draft_revisions", &key, differ("text", &text, &want_text));
        }
        if author != want_author {
            r.add(
                "draft_revisions",
                &key,
                differ("author", &author, &want_author),
            );
        }
    }
    for (draft, revision) in expected.keys() {
        r.add(
            "draft_revisions",
            format!("{draft}/{revision}"),
            "the log has it but the table does not",
        );
    }

    // Reviews carry no id in the log: each draft's rows, oldest first, must be its review
    // entries, in order.
    let mut by_draft: BTreeMap<String, Vec<(String, String, String, i32)>> = BTreeMap::new();
    for (id, draft, reviewer, decision, revision) in db::state::reviews(conn)? {
        by_draft
            .entry(draft)
            .or_default()
            .push((id, reviewer, decision, revision));
    }
    let mut expected = replay.reviews;
    for (draft, rows) in by_draft {
        let want = expected.remove(&draft).unwrap_or_default();
        for (i, (id, reviewer, decision, revision)) in rows.iter().enumerate() {
            match want.get(i) {
                None => r.add("reviews", id, "no review entry explains this review"),
                Some((w_reviewer, w_decision, w_revision)) => {
                    if reviewer != w_reviewer
                        || decision != w_decision
                        || i64::from(*revision) != *w_revision
                    {
                        r.add(
                            "reviews",
                            id,
                            format!(
                                "{decision} of revision {revision} by {reviewer}, but the log \
                                 says {w_decision} of revision {w_revision} by {w_reviewer}"
                            ),
                        );
                    }
                }
            }
        }
        for (reviewer, decision, revision) in want.iter().skip(rows.len()) {
            r.add(
                "reviews",
                format!("{draft}: {decision} of revision {revision} by {reviewer}"),
                "the log has it but the table does not",
            );
        }
    }
    for (draft, want) in expected {
        for (reviewer, decision, revision) in want {
            r.add(
                "reviews",
                format!("{draft}: {decision} of revision {revision} by {reviewer}"),
                "the log has it but the table does not",
            );
        }
    }
    Ok(r.0)
}

/// Adds the state check to a log verification: intact only if both hold.
pub fn with_state(conn: &mut DbConn, log: Verification) -> Result<Verification> {
    let mut found = mismatches(conn)?;
    let count = found.len();
    found.truncate(MAX_LISTED);
    Ok(match log {
        Verification::Intact { size, root, .. } if count == 0 => Verification::Intact {
            ok: true,
            size,
            root,
            state: Some(found),
        },
        Verification::Intact { .. } => Verification::Broken {
            ok: false,
            first_bad_seq: None,
            reason: format!("{count} rows of the service's tables do not match the log"),
            state: Some(found),
        },
        Verification::Broken {
            first_bad_seq,
            reason,
            ..
        } => Verification::Broken {
            ok: false,
            first_bad_seq,
            reason,
            state: Some(found),
        },
    })
}
