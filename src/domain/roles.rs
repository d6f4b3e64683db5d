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

/// A user's roles: a set, kept sorted and without repeats, stored as `"agent,reviewer"`.
///
/// Reading a stored set is strict: a name that is not a role fails the load
/// ([`UnknownRole`]), so a damaged row is an error and never silently grants less or more.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "Vec<Role>", into = "Vec<Role>")]
#[schema(value_type = Vec<Role>)]
pub struct RoleSet(Vec<Role>);

impl RoleSet {
    pub fn new(roles: &[Role]) -> RoleSet {
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        RoleSet(roles)
    }

    pub fn as_slice(&self) -> &[Role] {
        &self.0
    }

    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Role>> for RoleSet {
    fn from(roles: Vec<Role>) -> RoleSet {
        RoleSet::new(&roles)
    }
}

impl From<RoleSet> for Vec<Role> {
    fn from(set: RoleSet) -> Vec<Role> {
        set.0
    }
}

impl std::ops::Deref for RoleSet {
    type Target = [Role];
    fn deref(&self) -> &[Role] {
        &self.0
    }
}

/// The stored form: names joined by commas, sorted.
impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(r.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for RoleSet {
    type Err = UnknownRole;
    fn from_str(stored: &str) -> Result<RoleSet, UnknownRole> {
        if stored.is_empty() {
            return Ok(RoleSet::default());
        }
        let roles = stored
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<Role>, _>>()?;
        Ok(RoleSet::new(&roles))
    }
}

/// For reading a stored set (`#[diesel(deserialize_as = String)]`).
impl TryFrom<String> for RoleSet {
    type Error = UnknownRole;
    fn try_from(s: String) -> Result<RoleSet, UnknownRole> {
        s.parse()
    }
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
    fn role_sets_round_trip_and_refuse_unknown_names() {
        let set: RoleSet = "reviewer,agent,agent".parse().unwrap();
        assert_eq!(set.as_slice(), &[Role::Agent, Role::Reviewer]);
        assert_eq!(set.to_string(), "agent,reviewer");
        assert_eq!(
            "reviewer,wizard".parse::<RoleSet>(),
            Err(UnknownRole("wizard".into()))
        );
        assert_eq!(
            "agent, reviewer".parse::<RoleSet>().map(|_| ()),
            Err(UnknownRole(" reviewer".into()))
        );
        assert!("".parse::<RoleSet>().unwrap().is_empty());
    }
}
