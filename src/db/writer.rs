//! SQLite's group commit: one writer connection per database file, shared by every write
//! transaction of this process, committing several requests' work with one fsync.
//!
//! SQLite has one writer at a time. Left to itself, a second writer waits in SQLite's busy
//! handler, which sleeps 1, 2, 5 … 100 ms whatever happens to the lock, and every request
//! pays its own commit (one fsync with `synchronous=FULL`). Here the requests queue on a
//! mutex instead, and take turns on the one write connection:
//!
//! - The first to arrive opens a transaction (`BEGIN IMMEDIATE`).
//! - Each request runs its work in its own savepoint (`SAVEPOINT … RELEASE`, or `ROLLBACK
//!   TO` when the work fails), so a failing request undoes only its own work and gets its
//!   own error, on its own thread (the work never crosses threads).
//! - A request that finds others waiting leaves the transaction open for them and waits
//!   for the commit; the last one in the group (nobody waiting, or the group full) commits,
//!   and everyone learns the outcome. Nobody is answered before the commit is durable.
//!
//! While one group commits, the next one forms: that is where the batching comes from.
//! Reads keep their own pooled connections (WAL readers never wait for the writer).

use super::DbConn;
use crate::error::{Error, Result};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::Connection;
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// At most this many requests share one commit, so the first of a group waits for a
/// bounded amount of others' work.
const MAX_GROUP: usize = 64;

/// The write connection of one SQLite file, and the group being formed on it.
pub struct Writer {
    path: String,
    slot: Mutex<Slot>,
    /// Signalled whenever a group's outcome is known.
    closed: Condvar,
    /// Requests blocked on `slot` right now: while there are any, the group stays open.
    waiting: AtomicUsize,
    /// Groups committed, and the requests they carried (for `/metrics` and the tests).
    groups: AtomicU64,
    grouped: AtomicU64,
}

/// What a writer has committed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Commits (each one fsync with `synchronous=FULL`).
    pub groups: u64,
    /// Requests whose work those commits carried (failed requests included).
    pub requests: u64,
}

#[derive(Default)]
struct Slot {
    conn: Option<DbConn>,
    /// The group whose transaction is open, and how many requests have joined it.
    open: Option<u64>,
    members: usize,
    next_group: u64,
    /// Outcomes of closed groups that followers have not read yet: how many still will,
    /// and the commit's error if it failed.
    outcomes: HashMap<u64, (usize, Option<String>)>,
    /// Followers (members that wait for someone else's commit) of the open group.
    followers: usize,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("path", &self.path).finish()
    }
}

thread_local! {
    /// The writers of the databases whose pooled connections this thread holds (see
    /// [`Bound`]), and whether this thread is inside a write transaction already.
    static BOUND: std::cell::RefCell<Vec<Arc<Writer>>> = const { std::cell::RefCell::new(Vec::new()) };
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Ties the current thread to a database's writer while one of its pooled connections is
/// checked out (see `Db::conn`): a write transaction begun with that connection goes to
/// the writer. Dropping it unties.
#[derive(Debug)]
pub struct Bound(Arc<Writer>);

impl Bound {
    pub fn new(writer: Arc<Writer>) -> Bound {
        BOUND.with(|b| b.borrow_mut().push(writer.clone()));
        Bound(writer)
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        BOUND.with(|b| {
            let mut b = b.borrow_mut();
            if let Some(i) = b.iter().rposition(|w| Arc::ptr_eq(w, &self.0)) {
                b.remove(i);
            }
        });
    }
}

/// The writer this thread's write transactions go to: the one writer bound, if exactly one
/// database is bound (two different ones would make the choice a guess: those threads
/// write through their own connection, and SQLite's lock arbitrates).
pub fn current() -> Option<Arc<Writer>> {
    BOUND.with(|b| {
        let b = b.borrow();
        let first = b.first()?;
        b.iter()
            .all(|w| Arc::ptr_eq(w, first))
            .then(|| first.clone())
    })
}

/// Whether this thread is inside a write transaction (then a nested one is a savepoint of
/// it, wherever it began).
pub fn in_transaction() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Marks this thread as inside a write transaction until dropped.
pub struct InTransaction(());

impl InTransaction {
    pub fn enter() -> InTransaction {
        DEPTH.with(|d| d.set(d.get() + 1));
        InTransaction(())
    }
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl Writer {
    /// A writer for the SQLite file at `path`; its connection opens on first use.
    pub fn new(path: &str) -> Arc<Writer> {
        Arc::new(Writer {
            path: path.to_string(),
            slot: Mutex::new(Slot::default()),
            closed: Condvar::new(),
            waiting: AtomicUsize::new(0),
            groups: AtomicU64::new(0),
            grouped: AtomicU64::new(0),
        })
    }

    /// Commits so far, and the requests they carried.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            groups: self.groups.load(Ordering::Relaxed),
            requests: self.grouped.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // A panic while holding the slot is handled below (the connection is dropped, so
        // the open transaction rolls back); the slot itself stays consistent.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` in its own savepoint of the current group's transaction and returns its
    /// result once the group has committed. `work`'s error is returned as it is (its
    /// savepoint rolled back, the others' work unaffected); a failed commit is
    /// [`Error::Unavailable`] for every member whose work had succeeded.
    pub fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&mut DbConn) -> Result<T>,
    {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut slot = self.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let group = match slot.open {
            Some(g) => g,
            None => {
                begin(&mut slot, &self.path)?;
                slot.next_group += 1;
                let g = slot.next_group;
                slot.open = Some(g);
                slot.members = 0;
                slot.followers = 0;
                g
            }
        };
        slot.members += 1;
        let conn = match slot.conn.as_mut() {
            Some(c) => c,
            None => return Err(Error::Internal("the write connection is gone".into())),
        };
        let ran = catch_unwind(AssertUnwindSafe(|| conn.transaction::<T, Error, _>(work)));
        let result = match ran {
            Ok(result) => result,
            Err(panic) => {
                // The savepoint may still be open: give up the whole group (dropping the
                // connection rolls its transaction back) and tell the others.
                slot.conn = None;
                self.close(
                    &mut slot,
                    group,
                    Some("a request panicked in the group".into()),
                );
                drop(slot);
                resume_unwind(panic);
            }
        };
        if !group_open(&mut slot) {
            // SQLite rolled the whole transaction back (a full disk, an I/O error): the
            // others' work went with it. End the group as failed, on a fresh connection.
            slot.conn = None;
            let why = "the database rolled the transaction back".to_string();
            self.close(&mut slot, group, Some(why.clone()));
            return result.and(Err(Error::Unavailable(format!(
                "the write could not be committed: {why}"
            ))));
        }
        let more = self.waiting.load(Ordering::SeqCst) > 0 && slot.members < MAX_GROUP;
        if more {
            if let Err(e) = result {
                // Nothing of ours to commit: answer now, the group goes on.
                return Err(e);
            }
            slot.followers += 1;
            loop {
                slot = self.closed.wait(slot).unwrap_or_else(|p| p.into_inner());
                if let Some((left, failure)) = slot.outcomes.get_mut(&group) {
                    *left -= 1;
                    let failure = failure.clone();
                    if *left == 0 {
                        slot.outcomes.remove(&group);
                    }
                    return match failure {
                        None => result,
                        Some(why) => Err(Error::Unavailable(format!(
                            "the write could not be committed: {why}"
                        ))),
                    };
                }
            }
        }
        let failure = commit(&mut slot).err();
        if failure.is_none() {
            self.groups.fetch_add(1, Ordering::Relaxed);
            self.grouped
                .fetch_add(slot.members as u64, Ordering::Relaxed);
        }
        self.close(&mut slot, group, failure.clone());
        match failure {
            None => result,
            Some(why) => result.and(Err(Error::Unavailable(format!(
                "the write could not be committed: {why}"
            )))),
        }
    }

    /// Ends `group` with its outcome and wakes its followers.
    fn close(&self, slot: &mut Slot, group: u64, failure: Option<String>) {
        slot.open = None;
        slot.members = 0;
        if slot.followers > 0 {
            slot.outcomes.insert(group, (slot.followers, failure));
        }
        slot.followers = 0;
        self.closed.notify_all();
    }
}

/// Opens the write connection if needed and begins the group's transaction, taking
/// SQLite's write lock at once (another process, the CLI say, may hold it: then the busy
/// timeout applies, as it must across processes).
fn begin(slot: &mut Slot, path: &str) -> Result<()> {
    if slot.conn.is_none() {
        let mut c = diesel::SqliteConnection::establish(path)
            .map_err(|e| Error::Unavailable(format!("cannot open the database {path}: {e}")))?;
        // temp_store = MEMORY: the savepoints' sub-journal (the pages a member's work
        // changed, to roll it back alone) stays in memory instead of a temporary file
        // written on every first change of a page; it is never needed after a crash.
        c.batch_execute(
            "PRAGMA busy_timeout = 15000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
             PRAGMA temp_store = MEMORY;",
        )?;
        slot.conn = Some(DbConn::Sqlite(c));
    }
    let Some(DbConn::Sqlite(c)) = slot.conn.as_mut() else {
        return Err(Error::Internal("the write connection is not SQLite".into()));
    };
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE") {
        // A connection whose transaction state is unknown is not reused.
        if AnsiTransactionManager::is_broken_transaction_manager(c) {
            slot.conn = None;
        }
        return Err(e.into());
    }
    Ok(())
}

/// Whether the group's transaction is still open, at the depth `begin` opened it (each
/// member's savepoint closed again).
fn group_open(slot: &mut Slot) -> bool {
    let Some(DbConn::Sqlite(c)) = slot.conn.as_mut() else {
        return false;
    };
    matches!(
        <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::transaction_manager_status_mut(c)
            .transaction_depth(),
        Ok(Some(depth)) if depth.get() == 1
    )
}

/// Commits the open transaction (the fsync); on failure rolls it back, and drops the
/// connection if even that fails.
fn commit(slot: &mut Slot) -> std::result::Result<(), String> {
    let Some(DbConn::Sqlite(c)) = slot.conn.as_mut() else {
        return Err("the write connection is gone".into());
    };
    match <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::commit_transaction(c) {
        Ok(()) => Ok(()),
        Err(e) => {
            let rolled_back = <AnsiTransactionManager as TransactionManager<
                diesel::SqliteConnection,
            >>::rollback_transaction(c);
            if rolled_back.is_err() || AnsiTransactionManager::is_broken_transaction_manager(c) {
                slot.conn = None;
            }
            Err(e.to_string())
        }
    }
}
