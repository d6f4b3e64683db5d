//! Policy sets coming into force, recorded in the audit log (spec/audit.md "Policy
//! versions"): each file's name, SHA-256 and text, so the rules a reply was checked under
//! can be read back from the log years later.

use super::clock::Clock;
use crate::audit::action::PolicyFileRecord;
use crate::audit::{ActionName, Actor, AuditAction};
use crate::db::{self, write_tx, DbConn};
use crate::error::Result;
use crate::policy::PolicySet;
use sha2::{Digest, Sha256};

fn activation(set: &PolicySet) -> AuditAction {
    AuditAction::PolicyActivated {
        policy_version: set.version().to_string(),
        files: set
            .texts()
            .iter()
            .map(|(name, text)| PolicyFileRecord {
                name: name.clone(),
                sha256: hex::encode(Sha256::digest(text.as_bytes())),
                text: text.clone(),
            })
            .collect(),
    }
}

/// Records `policy.activated` for `set` (on every successful reload).
pub fn record_activation(
    conn: &mut DbConn,
    clock: &Clock,
    actor: &Actor,
    set: &PolicySet,
) -> Result<()> {
    write_tx(conn, |conn| {
        db::audit::append(conn, clock.now().naive_utc(), actor, None, &activation(set))?;
        Ok(())
    })
}

/// At start: records `policy.activated` unless the last one recorded is this version.
pub fn record_if_new(conn: &mut DbConn, clock: &Clock, set: &PolicySet) -> Result<bool> {
    write_tx(conn, |conn| {
        let last = db::audit::last_of_action(conn, ActionName::PolicyActivated)?;
        let same = last
            .as_ref()
            .and_then(|b| b.data.get("policy_version")?.as_str())
            == Some(set.version());
        if same {
            return Ok(false);
        }
        db::audit::append(
            conn,
            clock.now().naive_utc(),
            &Actor::System,
            None,
            &activation(set),
        )?;
        Ok(true)
    })
}
