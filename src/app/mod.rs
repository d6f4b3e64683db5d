//! The use cases: what a user (or a worker) can do, each in one database transaction with
//! its audit entries. Free of HTTP: handlers in `http` parse the request and call these; the
//! CLI calls them too. Every function here is blocking (async callers go through `Db::run`),
//! except `users::sign_in`, which awaits the password-hashing pool between two transactions.

pub mod audit;
pub mod audit_state;
pub mod bundles;
pub mod checkpoints;
pub mod clock;
pub mod customers;
pub mod deadlines;
pub mod drafts;
pub mod expiry;
pub mod groups;
pub mod inbound;
pub mod ingest;
pub mod jobs;
pub mod mail;
pub mod notify;
pub mod passwords;
pub mod policies;
pub mod post_log;
pub mod posting;
pub mod review_route;
pub mod user_admin;
pub mod users;
pub mod views;

use crate::config::Settings;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::policy::PolicySet;
use std::sync::{Arc, RwLock};

/// The policy set in force, replaceable at run time (reload) without stopping checks: a
/// check takes the current `Arc` and keeps using it even if a reload swaps it meanwhile.
#[derive(Clone)]
pub struct PolicyStore {
    current: Arc<RwLock<Arc<PolicySet>>>,
    dir: std::path::PathBuf,
}

impl PolicyStore {
    /// Loads the set in `dir`. Errors: [`Error::PolicyInvalid`] naming file, line and rule.
    pub fn load(dir: &std::path::Path) -> Result<PolicyStore> {
        let set = PolicySet::load(dir).map_err(Error::PolicyInvalid)?;
        Ok(PolicyStore {
            current: Arc::new(RwLock::new(Arc::new(set))),
            dir: dir.to_path_buf(),
        })
    }

    pub fn current(&self) -> Arc<PolicySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the folder again; on failure the set in force stays and the error says why.
    /// `activate` runs with the new set before it comes into force (to record it in the
    /// audit log, so no check is ever reported under a version the log does not hold); if
    /// it fails, the set in force stays too.
    pub fn reload(
        &self,
        activate: impl FnOnce(&PolicySet) -> Result<()>,
    ) -> Result<Arc<PolicySet>> {
        let set = Arc::new(PolicySet::load(&self.dir).map_err(Error::PolicyInvalid)?);
        activate(&set)?;
        match self.current.write() {
            Ok(mut guard) => *guard = set.clone(),
            Err(poisoned) => *poisoned.into_inner() = set.clone(),
        }
        Ok(set)
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// What every use case needs: the database, the policies and the settings.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub policies: PolicyStore,
    pub settings: Arc<Settings>,
    /// Where every password hash of the service is computed (bounded memory).
    pub hashing: passwords::HashingPool,
    /// Wakes the job worker when a job was enqueued (it also polls).
    pub jobs_wakeup: Arc<tokio::sync::Notify>,
    /// The one clock of the service (tests move it forward).
    pub clock: clock::Clock,
    /// Where approved replies go, and where customers' posts are read from.
    pub channels: Arc<crate::channels::Channels>,
    /// Where mail goes.
    pub mailer: Arc<crate::mail::Mailer>,
    /// Signs the audit log's checkpoints.
    pub log: checkpoints::LogSigner,
}

impl Context {
    /// Tells the job worker that jobs were enqueued; call after the transaction commits
    /// (a worker woken before it would not see them yet, and sleep until its next poll).
    pub fn wake_workers(&self) {
        self.jobs_wakeup.notify_one();
    }
}

/// The signed-in user a use case acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: crate::domain::ids::UserId,
    pub username: String,
    pub roles: crate::domain::roles::RoleSet,
}

impl Caller {
    /// Fails with 403 unless one of the caller's roles grants `permission`.
    pub fn require(&self, permission: crate::domain::roles::Permission) -> Result<()> {
        if permission.allowed_for(&self.roles) {
            Ok(())
        } else {
            let roles: Vec<&str> = permission.granted_by().iter().map(|r| r.as_str()).collect();
            Err(Error::Forbidden(format!(
                "this needs one of the roles: {}",
                roles.join(", ")
            )))
        }
    }
}

/// The system's time, as stored in the database (UTC, to the microsecond), for code that
/// runs without a [`Context`] (the command line, tools). The service reads `Context::clock`.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    clock::Clock::system().now()
}
