//! Roles and what each may do (spec/api.md "People and roles"). Every permission check of
//! the service goes through [`Permission::allowed_for`], so the rules live in one table and
//! fail closed: a user with no role may do nothing.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads inbound messages and writes drafts.
    Agent,
    /// Approves or rejects drafts.
    Reviewer,
    /// Reads everything, changes nothing; queries and exports the audit log.
    Auditor,
    /// Manages users and policies.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Agent, Role::Reviewer, Role::Auditor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (roles: agent, reviewer, auditor, admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// Parses the stored form of a role set (`"agent,reviewer"`); unknown names are dropped,
/// so a role removed from the code grants nothing.
pub fn parse_role_list(stored: &str) -> Vec<Role> {
    let mut roles: Vec<Role> = stored
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

pub fn format_role_list(roles: &[Role]) -> String {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// What a signed-in user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the queue, customers, drafts and reviews; run a check.
    Read,
    /// Post an inbound message by hand or from an integration.
    CreateInbound,
    /// Create, revise and submit drafts.
    WriteDrafts,
    /// Link handles, merge customers, set a CRM reference, close a message.
    ManageCustomers,
    /// Approve, reject or ask for changes.
    Review,
    /// Query and verify the audit log.
    ReadAudit,
    /// Read the policy set in force.
    ReadPolicies,
    /// Reload the policies, manage users.
    Administer,
}

impl Permission {
    /// The roles that grant this permission.
    pub fn granted_by(self) -> &'static [Role] {
        use Role::*;
        match self {
            Permission::Read => &[Agent, Reviewer, Auditor, Admin],
            Permission::CreateInbound => &[Agent, Admin],
            Permission::WriteDrafts => &[Agent],
            Permission::ManageCustomers => &[Agent, Admin],
            Permission::Review => &[Reviewer],
            Permission::ReadAudit => &[Auditor, Admin],
            Permission::ReadPolicies => &[Auditor, Admin],
            Permission::Administer => &[Admin],
        }
    }

    pub fn allowed_for(self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.granted_by().contains(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_role_may_do_nothing() {
        for p in [
            Permission::Read,
            Permission::CreateInbound,
            Permission::WriteDrafts,
            Permission::ManageCustomers,
            Permission::Review,
            Permission::ReadAudit,
            Permission::ReadPolicies,
            Permission::Administer,
        ] {
            assert!(!p.allowed_for(&[]), "{p:?} allowed without a role");
        }
    }

    #[test]
    fn auditor_changes_nothing() {
        let auditor = [Role::Auditor];
        assert!(Permission::ReadAudit.allowed_for(&auditor));
        assert!(!Permission::WriteDrafts.allowed_for(&auditor));
        assert!(!Permission::Review.allowed_for(&auditor));
        assert!(!Permission::CreateInbound.allowed_for(&auditor));
    }

    #[test]
    fn role_lists_round_trip_and_ignore_unknown_names() {
        assert_eq!(
            parse_role_list("reviewer,agent,wizard"),
            vec![Role::Agent, Role::Reviewer]
        );
        assert_eq!(
            format_role_list(&[Role::Reviewer, Role::Agent, Role::Agent]),
            "agent,reviewer"
        );
    }
}
