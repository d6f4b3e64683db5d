//! The audit vocabulary: every action the log records, each with its typed data. The
//! append path (`db::audit::append`) takes an [`AuditAction`], so an entry's name and its
//! data's shape are decided here once; `docs/audit.md` lists the same table (a test holds
//! the two together). Names and subjects: spec/api.md "Audit log" and spec/audit.md
//! "Subjects and the text hash".

use crate::domain::ids::{CustomerId, DraftId, InboundId, JobId, UserId};
use crate::domain::roles::Role;
use crate::domain::routing::Plan;
use crate::domain::workflow::DraftState;
use crate::policy::CheckReport;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of a reply's UTF-8 text (`text_sha256`, spec/audit.md).
pub fn text_sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The name of an action, as it appears in an entry's `action` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::EnumIter)]
pub enum ActionName {
    UserCreated,
    UserUpdated,
    UserPasswordSet,
    UserPasswordReset,
    UserLogin,
    UserLoginFailed,
    UserLockedOut,
    UserLogout,
    GroupCreated,
    GroupUpdated,
    CustomerCreated,
    CustomerUpdated,
    CustomerLinked,
    CustomerMerged,
    InboundReceived,
    InboundAtRisk,
    InboundBreached,
    InboundClosed,
    DraftCreated,
    DraftRevised,
    DraftSubmitted,
    DraftSuperseded,
    ReviewApproved,
    ReviewRejected,
    ReviewChangesRequested,
    ReviewExpired,
    PostSucceeded,
    PostFailed,
    PostRefused,
    PostRetried,
    MailSent,
    MailFailed,
    PolicyActivated,
}

impl ActionName {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionName::UserCreated => "user.created",
            ActionName::UserUpdated => "user.updated",
            ActionName::UserPasswordSet => "user.password_set",
            ActionName::UserPasswordReset => "user.password_reset",
            ActionName::UserLogin => "user.login",
            ActionName::UserLoginFailed => "user.login_failed",
            ActionName::UserLockedOut => "user.locked_out",
            ActionName::UserLogout => "user.logout",
            ActionName::GroupCreated => "group.created",
            ActionName::GroupUpdated => "group.updated",
            ActionName::CustomerCreated => "customer.created",
            ActionName::CustomerUpdated => "customer.updated",
            ActionName::CustomerLinked => "customer.linked",
            ActionName::CustomerMerged => "customer.merged",
            ActionName::InboundReceived => "inbound.received",
            ActionName::InboundAtRisk => "inbound.at_risk",
            ActionName::InboundBreached => "inbound.breached",
            ActionName::InboundClosed => "inbound.closed",
            ActionName::DraftCreated => "draft.created",
            ActionName::DraftRevised => "draft.revised",
            ActionName::DraftSubmitted => "draft.submitted",
            ActionName::DraftSuperseded => "draft.superseded",
            ActionName::ReviewApproved => "review.approved",
            ActionName::ReviewRejected => "review.rejected",
            ActionName::ReviewChangesRequested => "review.changes_requested",
            ActionName::ReviewExpired => "review.expired",
            ActionName::PostSucceeded => "post.succeeded",
            ActionName::PostFailed => "post.failed",
            ActionName::PostRefused => "post.refused",
            ActionName::PostRetried => "post.retried",
            ActionName::MailSent => "mail.sent",
            ActionName::MailFailed => "mail.failed",
            ActionName::PolicyActivated => "policy.activated",
        }
    }

    /// Every action, in the order of `docs/audit.md`'s table.
    pub fn all() -> impl Iterator<Item = ActionName> {
        <ActionName as strum::IntoEnumIterator>::iter()
    }

    pub fn parse(name: &str) -> Option<ActionName> {
        Self::all().find(|a| a.as_str() == name)
    }
}

impl std::fmt::Display for ActionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a sign-in failed (`user.login_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    WrongPassword,
    UnknownUser,
}

/// What a lock-out covers (`user.locked_out`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum LockScope {
    Username,
    Address { address: String },
}

/// Why a draft was superseded (`draft.superseded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupersededBecause {
    /// Another draft for the same message was approved.
    AnotherApproved,
    /// The message was closed.
    Closed,
}

/// One policy file as it came into force (`policy.activated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFileRecord {
    pub name: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub text: String,
}

/// An action and its data. Serialises to the entry's `data` object (the variant's fields).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AuditAction {
    UserCreated {
        username: String,
        roles: Vec<Role>,
        email: Option<String>,
    },
    /// What changed, and only that: a rename (`countersign user rename`: username and
    /// previous_username), or an admin's change of roles, e-mail address or disabled.
    UserUpdated {
        #[serde(skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous_username: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        roles: Option<Vec<Role>>,
        /// The new address; null when it was removed.
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<Option<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        disabled: Option<bool>,
    },
    /// The user set a password through a one-time link.
    UserPasswordSet {},
    /// An admin reset the user's password (the user's sessions ended; a link went out).
    UserPasswordReset {},
    UserLogin {},
    UserLoginFailed {
        reason: LoginFailure,
    },
    UserLockedOut {
        #[serde(flatten)]
        scope: LockScope,
        /// RFC 3339.
        until: String,
    },
    UserLogout {},
    /// A reviewer group was made (subject: the group).
    GroupCreated {
        name: String,
    },
    /// A reviewer group's members were set (subject: the group): all of them after the
    /// change, so one entry says who was in it from then on.
    GroupUpdated {
        name: String,
        members: Vec<UserId>,
    },
    CustomerCreated {
        channel: String,
        handle: String,
    },
    /// The CRM reference was set (or cleared: null).
    CustomerUpdated {
        crm_ref: Option<String>,
        previous_crm_ref: Option<String>,
    },
    /// A handle was linked to the customer.
    CustomerLinked {
        channel: String,
        handle: String,
        external_user_id: Option<String>,
    },
    /// `from` was merged into the subject (the survivor): its handles and history moved,
    /// and the survivor's CRM reference is now `crm_ref`.
    CustomerMerged {
        from: CustomerId,
        crm_ref: Option<String>,
    },
    InboundReceived {
        channel: String,
        external_id: String,
        customer_id: CustomerId,
        author_handle: String,
        text: String,
        /// RFC 3339.
        received_at: String,
        /// RFC 3339.
        due_at: String,
    },
    /// The message is within `at_risk_minutes` business minutes of its deadline.
    InboundAtRisk {
        /// RFC 3339.
        due_at: String,
    },
    /// The message passed its deadline unanswered.
    InboundBreached {
        /// RFC 3339.
        due_at: String,
    },
    /// An agent closed the message without a reply.
    InboundClosed {
        reason: String,
    },
    DraftCreated {
        inbound_id: InboundId,
        revision: i32,
        text: String,
        text_sha256: String,
        check: CheckReport,
    },
    DraftRevised {
        revision: i32,
        text: String,
        text_sha256: String,
        check: CheckReport,
    },
    DraftSubmitted {
        revision: i32,
        text_sha256: String,
        check: CheckReport,
        /// The review route it takes: its steps, each a group and how many must approve.
        route: Plan,
    },
    /// The draft will never be posted: another draft for its message was approved
    /// (`by`), or the message was closed.
    DraftSuperseded {
        reason: SupersededBecause,
        /// The approved draft, when that is why.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<DraftId>,
    },
    ReviewApproved {
        revision: i32,
        comment: String,
        text_sha256: String,
        /// The checks re-run at approval.
        check: CheckReport,
        /// Approvals of this revision so far, this one included.
        approvals: i32,
        /// What the draft's route needs in all.
        approvals_needed: i32,
        /// The route, and the step (1-based) of it this approval counts for.
        route: String,
        step: usize,
        /// The step's reviewer group; null: any reviewer (the default route).
        group: Option<String>,
    },
    ReviewRejected {
        revision: i32,
        comment: String,
    },
    ReviewChangesRequested {
        revision: i32,
        comment: String,
    },
    /// An approval not posted within its time to live (`COUNTERSIGN_APPROVAL_TTL_HOURS`):
    /// its approvals are void, and the draft is back in review, or with its author when the
    /// checks re-run then block it.
    ReviewExpired {
        revision: i32,
        /// When it was approved (or retried), RFC 3339.
        approved_at: String,
        ttl_hours: u32,
        /// Where the draft went.
        state: DraftState,
        /// The checks run again against the policies in force.
        check: CheckReport,
        /// The route the draft takes again from its first step (chosen by the policies in
        /// force); absent when it went back to its author.
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<Plan>,
    },
    PostSucceeded {
        /// The channel that posted it: the message's network, or `log` standing in for a
        /// network without an account (the quick start).
        channel: String,
        post_id: String,
        /// The post's address on its network, when it has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        in_reply_to: String,
        revision: i32,
        text_sha256: String,
        attempt: i32,
    },
    /// An attempt failed. With `retry_at` the draft stays `approved` and is tried again
    /// then; with `retry_at` null the attempts ran out or the channel refused for good, and
    /// the draft is `post_failed`.
    PostFailed {
        channel: String,
        error: String,
        attempt: i32,
        /// RFC 3339, or null when no attempt follows.
        retry_at: Option<String>,
    },
    /// Nothing was posted: the text about to be posted is not the text that was approved
    /// (back to `pending_review`), or the checks re-run before the attempt now block it
    /// (to `changes_requested`, with the report). The approvals are void either way.
    PostRefused {
        revision: i32,
        /// The hash of the text found in the draft at posting time.
        text_sha256: String,
        /// The hash the counted approvals carry.
        approved_text_sha256: Option<String>,
        reason: String,
        /// Where the draft went.
        state: DraftState,
        /// The blocking report, when the checks refused it.
        #[serde(skip_serializing_if = "Option::is_none")]
        check: Option<CheckReport>,
    },
    /// A reviewer sent a `post_failed` draft back to posting (`approved`), once.
    PostRetried {
        revision: i32,
    },
    /// A mail went out (spec/mail.md). Subject: the mail's job.
    MailSent {
        job_id: JobId,
        to: String,
        subject: String,
    },
    /// A mail was given up. Subject: the mail's job.
    MailFailed {
        job_id: JobId,
        to: String,
        error: String,
    },
    PolicyActivated {
        policy_version: String,
        files: Vec<PolicyFileRecord>,
        /// On a reload: what the new set judges otherwise than the one it replaces, over
        /// the last 30 days' draft revisions (counts and rules, no texts).
        #[serde(skip_serializing_if = "Option::is_none")]
        preview: Option<crate::policy::preview::Preview>,
    },
}

impl AuditAction {
    pub fn name(&self) -> ActionName {
        match self {
            AuditAction::UserCreated { .. } => ActionName::UserCreated,
            AuditAction::UserUpdated { .. } => ActionName::UserUpdated,
            AuditAction::UserPasswordSet {} => ActionName::UserPasswordSet,
            AuditAction::UserPasswordReset {} => ActionName::UserPasswordReset,
            AuditAction::UserLogin {} => ActionName::UserLogin,
            AuditAction::UserLoginFailed { .. } => ActionName::UserLoginFailed,
            AuditAction::UserLockedOut { .. } => ActionName::UserLockedOut,
            AuditAction::UserLogout {} => ActionName::UserLogout,
            AuditAction::GroupCreated { .. } => ActionName::GroupCreated,
            AuditAction::GroupUpdated { .. } => ActionName::GroupUpdated,
            AuditAction::CustomerCreated { .. } => ActionName::CustomerCreated,
            AuditAction::CustomerUpdated { .. } => ActionName::CustomerUpdated,
            AuditAction::CustomerLinked { .. } => ActionName::CustomerLinked,
            AuditAction::CustomerMerged { .. } => ActionName::CustomerMerged,
            AuditAction::InboundReceived { .. } => ActionName::InboundReceived,
            AuditAction::InboundAtRisk { .. } => ActionName::InboundAtRisk,
            AuditAction::InboundBreached { .. } => ActionName::InboundBreached,
            AuditAction::InboundClosed { .. } => ActionName::InboundClosed,
            AuditAction::DraftCreated { .. } => ActionName::DraftCreated,
            AuditAction::DraftRevised { .. } => ActionName::DraftRevised,
            AuditAction::DraftSubmitted { .. } => ActionName::DraftSubmitted,
            AuditAction::DraftSuperseded { .. } => ActionName::DraftSuperseded,
            AuditAction::ReviewApproved { .. } => ActionName::ReviewApproved,
            AuditAction::ReviewRejected { .. } => ActionName::ReviewRejected,
            AuditAction::ReviewChangesRequested { .. } => ActionName::ReviewChangesRequested,
            AuditAction::ReviewExpired { .. } => ActionName::ReviewExpired,
            AuditAction::PostSucceeded { .. } => ActionName::PostSucceeded,
            AuditAction::PostFailed { .. } => ActionName::PostFailed,
            AuditAction::PostRefused { .. } => ActionName::PostRefused,
            AuditAction::PostRetried { .. } => ActionName::PostRetried,
            AuditAction::MailSent { .. } => ActionName::MailSent,
            AuditAction::MailFailed { .. } => ActionName::MailFailed,
            AuditAction::PolicyActivated { .. } => ActionName::PolicyActivated,
        }
    }

    /// The entry's `data`: the variant's fields as a JSON object.
    pub fn data(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_the_variant_fields() {
        let a = AuditAction::UserLockedOut {
            scope: LockScope::Address {
                address: "192.0.2.1".into(),
            },
            until: "2026-12-03T10:00:00.000000Z".into(),
        };
        assert_eq!(a.name().as_str(), "user.locked_out");
        assert_eq!(
            a.data().unwrap(),
            serde_json::json!({"scope": "address", "address": "192.0.2.1",
                               "until": "2026-12-03T10:00:00.000000Z"})
        );
        assert_eq!(
            AuditAction::UserLogin {}.data().unwrap(),
            serde_json::json!({})
        );
        assert_eq!(
            AuditAction::UserLoginFailed {
                reason: LoginFailure::UnknownUser
            }
            .data()
            .unwrap(),
            serde_json::json!({"reason": "unknown_user"})
        );
    }

    /// docs/audit.md's table lists exactly the actions of this enum.
    #[test]
    fn the_documented_table_is_the_vocabulary() {
        let doc = include_str!("../../docs/audit.md");
        let section = doc
            .split("## What is recorded")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/audit.md has a section \"What is recorded\"");
        let documented: std::collections::BTreeSet<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let coded: std::collections::BTreeSet<&str> =
            ActionName::all().map(ActionName::as_str).collect();
        assert_eq!(documented, coded);
    }

    #[test]
    fn names_are_unique_and_parse_back() {
        let names: Vec<&str> = ActionName::all().map(ActionName::as_str).collect();
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for a in ActionName::all() {
            assert_eq!(ActionName::parse(a.as_str()), Some(a));
        }
    }

    #[test]
    fn text_hash_is_lowercase_hex_sha256_of_utf8() {
        assert_eq!(
            text_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            text_sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
