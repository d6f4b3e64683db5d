//! Persistence: one Diesel connection type over SQLite and PostgreSQL, chosen by the
//! database URL's scheme, a pool, the embedded migrations, and one module of queries per
//! table group. Everything here is blocking: async callers go through [`Db::run`], which
//! moves the work to a blocking thread so actix's workers never wait on the database.

pub mod audit;
pub mod cached;
pub mod channels;
pub mod customers;
pub mod drafts;
pub mod groups;
pub mod inbound;
pub mod jobs;
pub mod schema;
pub mod state;
pub mod users;
pub mod writer;

use crate::error::{Error, Result};
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// A connection to either backend. Queries written against it run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(diesel::SqliteConnection),
    Postgres(diesel::PgConnection),
}

/// Runs a Diesel statement on the backend's own connection inside a [`DbConn`]: `$body` is
/// compiled once per backend with `$c` bound to the `SqliteConnection` or `PgConnection`.
///
/// Why: through the multi-connection every execution renders the statement's SQL again
/// (for the bind pass), and statements that are not safe to cache there are prepared
/// again each time. On the backend's own connection a statement of a fixed shape is
/// prepared once per connection and looked up by its type. The hot path's statements use
/// this; the write path's profile had half of the writer's time in rendering and
/// preparing SQL (docs/performance.md).
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
        }
    };
}
pub use cached::fixed_update;
pub use on_backend;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Which engine a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite://PATH` (or `sqlite:PATH`) and `postgres://…` / `postgresql://…`.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// The file path of a `sqlite://PATH` URL, as SQLite wants it.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// Sets each new SQLite connection up for durability and concurrency: `synchronous=FULL` so
/// a commit survives power loss, foreign keys on, and a busy timeout so concurrent writers
/// wait instead of failing. (WAL, so readers don't block the writer, is a property of the
/// file, set once by [`Db::connect`] before the pool opens: the pool opens its connections
/// in parallel, and switching the journal mode from several at once made one of them fail
/// with "database is locked" on a fresh file.)
#[derive(Debug)]
struct ConnectionSetup;

impl CustomizeConnection<DbConn, diesel::r2d2::Error> for ConnectionSetup {
    fn on_acquire(&self, conn: &mut DbConn) -> std::result::Result<(), diesel::r2d2::Error> {
        match conn {
            DbConn::Sqlite(c) => c
                .batch_execute(
                    "PRAGMA busy_timeout = 15000; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                )
                .map_err(diesel::r2d2::Error::QueryError),
            DbConn::Postgres(c) => c
                .batch_execute("SET TIME ZONE 'UTC'")
                .map_err(diesel::r2d2::Error::QueryError),
        }
    }
}

/// Puts the SQLite file at `path` (created if missing) in WAL mode, from one connection.
fn use_wal(path: &str) -> Result<()> {
    let mut conn = diesel::SqliteConnection::establish(path)
        .map_err(|e| Error::Unavailable(format!("cannot open the database {path}: {e}")))?;
    conn.batch_execute("PRAGMA busy_timeout = 15000; PRAGMA journal_mode = WAL;")?;
    Ok(())
}

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<DbConn>>,
    backend: Backend,
    /// The URL's credentials, scrubbed from every connection error this pool reports.
    secrets: std::sync::Arc<Vec<String>>,
    /// SQLite: the group-commit writer every write transaction goes to.
    writer: Option<std::sync::Arc<writer::Writer>>,
}

/// A pooled connection. While it is checked out, write transactions begun on this thread
/// go to its database's group-commit writer (SQLite; see [`writer`]).
pub struct Conn {
    conn: diesel::r2d2::PooledConnection<ConnectionManager<DbConn>>,
    _bound: Option<writer::Bound>,
}

impl std::ops::Deref for Conn {
    type Target = DbConn;
    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl Db {
    /// Opens a pool on `url`. SQLite files are created if missing.
    ///
    /// Errors: [`Error::BadRequest`] for an unknown scheme, [`Error::Unavailable`] when the
    /// database cannot be reached.
    pub fn connect(url: &str, max_connections: u32) -> Result<Db> {
        let backend = Backend::of_url(url).ok_or_else(|| {
            Error::BadRequest(format!(
                "database URL must start with sqlite:// or postgres://, got {:?}",
                url.split(':').next().unwrap_or("")
            ))
        })?;
        // Diesel's SQLite connection takes a path, not a URL.
        let target = match backend {
            Backend::Sqlite => sqlite_path(url).to_string(),
            Backend::Postgres => url.to_string(),
        };
        let secrets = std::sync::Arc::new(crate::config::url_secrets(url));
        let writer = match backend {
            Backend::Sqlite => {
                use_wal(&target)?;
                Some(writer::Writer::new(&target))
            }
            Backend::Postgres => None,
        };
        // SQLite writes through its one writer; the pooled connections serve the readers
        // and the requests waiting for a commit.
        let size = match backend {
            Backend::Sqlite => max_connections.min(32),
            Backend::Postgres => max_connections,
        };
        // Connections open as they are needed (two kept idle), not all at start: several
        // instances on one PostgreSQL should not hold max_connections between them idle.
        let pool = Pool::builder()
            .max_size(size.max(1))
            .min_idle(Some(2.min(size.max(1))))
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(ConnectionSetup))
            .build(ConnectionManager::<DbConn>::new(target))
            .map_err(|e| {
                Error::Unavailable(crate::config::scrub(
                    &format!("cannot open the database: {e}"),
                    &secrets,
                ))
            })?;
        Ok(Db {
            pool,
            backend,
            secrets,
            writer,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// SQLite: what the group-commit writer has committed so far; `None` on PostgreSQL.
    pub fn write_stats(&self) -> Option<writer::WriterStats> {
        self.writer.as_ref().map(|w| w.stats())
    }

    /// A pooled connection, for blocking code (CLI, workers, inside [`Db::run`]).
    pub fn conn(&self) -> Result<Conn> {
        let conn = self
            .pool
            .get()
            .map_err(|e| Error::Unavailable(crate::config::scrub(&e.to_string(), &self.secrets)))?;
        Ok(Conn {
            conn,
            _bound: self.writer.clone().map(writer::Bound::new),
        })
    }

    /// Runs blocking database work on tokio's blocking pool and awaits it.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&mut DbConn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn()?;
            work(&mut conn)
        })
        .await
        .map_err(|e| Error::Internal(format!("blocking task failed: {e}")))?
    }

    /// Applies the embedded migrations that have not run yet, then fills in the stored
    /// audit tree of entries written before it existed; returns the migrations' names.
    pub fn migrate(&self) -> Result<Vec<String>> {
        let applied = self.run_migrations()?;
        audit::fill_tree(&mut *self.conn()?)?;
        Ok(applied)
    }

    fn run_migrations(&self) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        let names = |applied: Vec<diesel::migration::MigrationVersion<'_>>| {
            applied.iter().map(|m| m.to_string()).collect::<Vec<_>>()
        };
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            Error::Internal(format!("migration failed: {e}"))
        };
        match &mut *conn {
            DbConn::Sqlite(c) => c
                .run_pending_migrations(SQLITE_MIGRATIONS)
                .map(names)
                .map_err(failed),
            DbConn::Postgres(c) => {
                // A service role without schema rights (docs/operations.md) must still start
                // on a database its owner has migrated: look before trying, since diesel's
                // harness always begins with a CREATE TABLE IF NOT EXISTS.
                if all_applied(c)? {
                    return Ok(Vec::new());
                }
                // Several instances may start at once: one migrates, the others wait.
                c.batch_execute("SELECT pg_advisory_lock(7295001)")?;
                let result = c
                    .run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(names)
                    .map_err(|e| {
                        let text = e.to_string();
                        if text.contains("permission denied") || text.contains("must be owner") {
                            // The set-up of docs/operations.md: the service role may not
                            // change the schema (nor rewrite the log); its owner migrates.
                            Error::Unavailable(format!(
                                "the database role cannot apply the migrations ({text}); run \
                                 `countersign migrate` as the database owner, then start again"
                            ))
                        } else {
                            failed(e)
                        }
                    });
                c.batch_execute("SELECT pg_advisory_unlock(7295001)")?;
                result
            }
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub fn ping(&self) -> bool {
        self.conn()
            .and_then(|mut c| c.batch_execute("SELECT 1").map_err(Error::from))
            .is_ok()
    }
}

/// Runs `work` in one read-only snapshot: every query sees the database as of one moment,
/// so a long check (`audit verify`) is not confused by appends made while it reads.
/// (SQLite in WAL mode: one read transaction; PostgreSQL: REPEATABLE READ, READ ONLY.)
pub fn read_snapshot<T, F>(conn: &mut DbConn, work: F) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T>,
{
    conn.transaction::<T, Error, _>(|conn| {
        if let DbConn::Postgres(pg) = conn {
            pg.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        }
        work(conn)
    })
}

/// Whether every embedded PostgreSQL migration is recorded as applied (read-only).
fn all_applied(c: &mut diesel::PgConnection) -> Result<bool> {
    #[derive(QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let exists: Vec<Version> = diesel::sql_query(
        "SELECT CAST(to_regclass('__diesel_schema_migrations') AS TEXT) AS version \
         WHERE to_regclass('__diesel_schema_migrations') IS NOT NULL",
    )
    .load(c)?;
    if exists.is_empty() {
        return Ok(false);
    }
    let applied: std::collections::HashSet<String> =
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Version>(c)?
            .into_iter()
            .map(|v| v.version)
            .collect();
    let embedded = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
        .map_err(|e| Error::Internal(format!("embedded migrations: {e}")))?;
    Ok(embedded
        .iter()
        .all(|m| applied.contains(&m.name().version().to_string())))
}

/// Runs `work` in one write transaction, serialised against every other write: the safe
/// default for a change whose decision reads rows that it does not lock itself. Either all
/// of `work` (the change and the audit entries it records) commits, or none of it.
///
/// - SQLite: the work goes to this database's group-commit writer (see [`writer`]), which
///   runs one transaction at a time anyway.
/// - PostgreSQL: the transaction first takes [`WRITE_GATE`] exclusively, so it runs alone
///   among the writes of every instance (serialised writes take it exclusively; the hot
///   path's [`write_tx_concurrent`] shared).
///
/// The audit entries are written at the end (see [`audit::append`]). Inside another write
/// transaction this is a savepoint of it.
pub fn write_tx<T, F>(conn: &mut DbConn, work: F) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T>,
{
    write(conn, Gate::Exclusive, work)
}

/// Like [`write_tx`], but on PostgreSQL it runs beside other concurrent writes: the caller
/// must lock every row its decision reads before reading it ([`lock_key`],
/// [`lock_inbound`], [`lock_draft`]), always in the order natural keys, inbound message,
/// draft, job. The
/// audit head is locked last, for the time of the entries' insert and the commit, so
/// concurrent commits group. On SQLite the same as [`write_tx`].
pub fn write_tx_concurrent<T, F>(conn: &mut DbConn, work: F) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T>,
{
    write(conn, Gate::Shared, work)
}

/// The PostgreSQL advisory lock that orders serialised writes against concurrent ones.
pub const WRITE_GATE: i64 = 7_295_002;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Exclusive,
    Shared,
}

fn write<T, F>(conn: &mut DbConn, gate: Gate, work: F) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T>,
{
    if !writer::in_transaction() {
        // Entries a panicking write left on this (pooled) thread are not this write's.
        audit::forget_pending_after(0);
    } else {
        // A nested write: a savepoint, its entries forgotten if it rolls back.
        let mark = audit::pending_mark();
        return conn.transaction::<T, Error, _>(work).inspect_err(|_| {
            audit::forget_pending_after(mark);
        });
    }
    match conn {
        DbConn::Sqlite(_) => match writer::current() {
            Some(w) => w.run(|conn| with_entries(conn, work)),
            // A connection that no pool handed out (tests, tools): its own transaction,
            // taking the write lock with its first statement so that two such writers
            // never deadlock upgrading a read lock.
            None => conn.transaction::<T, Error, _>(|conn| {
                audit::lock_head(conn)?;
                with_entries(conn, work)
            }),
        },
        DbConn::Postgres(_) => conn.transaction::<T, Error, _>(|conn| {
            let lock = match gate {
                Gate::Exclusive => "pg_advisory_xact_lock",
                Gate::Shared => "pg_advisory_xact_lock_shared",
            };
            conn.batch_execute(&format!("SELECT {lock}({WRITE_GATE})"))?;
            with_entries(conn, work)
        }),
    }
}

/// Runs `work`, then writes the audit entries it recorded, in the caller's transaction.
fn with_entries<T, F>(conn: &mut DbConn, work: F) -> Result<T>
where
    F: FnOnce(&mut DbConn) -> Result<T>,
{
    let _inside = writer::InTransaction::enter();
    match work(conn) {
        Ok(value) => {
            audit::flush_pending(conn)?;
            Ok(value)
        }
        Err(e) => {
            audit::forget_pending_after(0);
            Err(e)
        }
    }
}

/// Locks an inbound message's row until the transaction ends (PostgreSQL; on SQLite the
/// writer already runs one transaction at a time). Every write that decides on a message or
/// its drafts takes it first.
pub fn lock_inbound(conn: &mut DbConn, id: crate::domain::ids::InboundId) -> Result<()> {
    lock_row(conn, "inbound_messages", &id.to_string())
}

/// Locks a draft's inbound message and then the draft (PostgreSQL): the order every write
/// that decides on a draft keeps. A draft that does not exist locks nothing (the caller's
/// read then finds nothing).
pub fn lock_draft(conn: &mut DbConn, id: crate::domain::ids::DraftId) -> Result<()> {
    if let DbConn::Postgres(pg) = conn {
        let id = id.to_string();
        diesel::sql_query(
            "SELECT 1 FROM inbound_messages WHERE id = \
             (SELECT inbound_id FROM drafts WHERE id = $1) FOR UPDATE",
        )
        .bind::<diesel::sql_types::Text, _>(&id)
        .execute(pg)?;
        lock_row(conn, "drafts", &id)?;
    }
    Ok(())
}

fn lock_row(conn: &mut DbConn, table: &'static str, id: &str) -> Result<()> {
    if let DbConn::Postgres(pg) = conn {
        diesel::sql_query(format!("SELECT 1 FROM {table} WHERE id = $1 FOR UPDATE"))
            .bind::<diesel::sql_types::Text, _>(id)
            .execute(pg)?;
    }
    Ok(())
}

/// Locks a natural key (a channel's post id, a handle) until the transaction ends, so two
/// writes that would both create the row for it run one after the other (PostgreSQL).
pub fn lock_key(conn: &mut DbConn, key: &str) -> Result<()> {
    if let DbConn::Postgres(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7295003))")
            .bind::<diesel::sql_types::Text, _>(key)
            .execute(pg)?;
    }
    Ok(())
}

impl From<diesel::result::ConnectionError> for Error {
    fn from(e: diesel::result::ConnectionError) -> Self {
        Error::Unavailable(e.to_string())
    }
}
