//! Builds the running service: database (migrated), policies, HTTP server and workers.

use crate::app::clock::Clock;
use crate::app::{Context, PolicyStore};
use crate::channels::Channels;
use crate::config::Settings;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::{self, middleware::Metrics, AppState};
use actix_web::{web, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Notify;

/// A service ready to run: migrated, policies loaded, socket bound.
pub struct Application {
    listener: TcpListener,
    ctx: Context,
    workers: bool,
}

impl Application {
    /// Opens the database, runs migrations, loads the policies and binds the address.
    ///
    /// Errors: a database that cannot be opened, a broken policy set (file, line, rule), an
    /// address in use.
    pub fn build(settings: Settings) -> Result<Application> {
        // Policies first: a broken set stops the start before anything is created on disk.
        let policies = PolicyStore::load(&settings.policies)?;
        let db = Db::connect(&settings.database_url, 16)?;
        let applied = db.migrate()?;
        tracing::info!(applied = ?applied, "database migrated");
        let clashes = crate::app::users::fill_username_keys(&mut *db.conn()?)?;
        if !clashes.is_empty() {
            let list: Vec<String> = clashes.iter().map(|c| format!("  {c}")).collect();
            return Err(Error::Conflict(format!(
                "these users' names clash with earlier users' (same name ignoring case and \
                 width, or look-alike letters); rename each with \
                 `countersign user rename OLD NEW`, then start again:\n{}",
                list.join("\n")
            )));
        }
        let clock = Clock::system();
        let log = {
            let mut conn = db.conn()?;
            let log = crate::app::checkpoints::LogSigner::open(&mut conn, &settings)?;
            crate::app::policies::record_if_new(&mut conn, &clock, &policies.current())?;
            // A checkpoint at every start, unless the log has not grown since the last.
            let head = crate::db::audit::head_size(&mut conn)?;
            if crate::db::audit::checkpoint_at(&mut conn, head)?.is_none() {
                log.checkpoint_head(&mut conn)?;
            }
            log
        };
        let channels = Channels::from_settings(&settings, &db, &clock)?;
        let mailer = crate::mail::Mailer::from_url(&settings.smtp_url)
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| Error::Unavailable(format!("cannot listen on {}: {e}", settings.bind)))?;
        let mut settings = settings;
        // The default public address is the bind address; when the OS chose the port (0),
        // links must carry the port it chose.
        if let Ok(bound) = listener.local_addr() {
            if settings.public_url == format!("http://{}", settings.bind) {
                settings.public_url = format!("http://{bound}");
            }
        }
        Ok(Application {
            listener,
            ctx: Context {
                db,
                policies,
                hashing: crate::app::passwords::HashingPool::for_this_machine()?,
                jobs_wakeup: Arc::new(Notify::new()),
                clock: clock.clone(),
                channels: Arc::new(channels),
                mailer: Arc::new(mailer),
                log: log.with_clock(clock),
                settings: Arc::new(settings),
            },
            workers: true,
        })
    }

    /// Serves without the background tasks (the job worker, checkpoints, deadlines): jobs
    /// wait until something runs them (`workers::run_pending_jobs`), checkpoints until they
    /// are asked for, so a test decides when each happens.
    pub fn without_workers(mut self) -> Application {
        self.workers = false;
        self
    }

    /// The bound address (the port is the OS's choice when the setting asked for 0).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.listener.local_addr().unwrap_or(self.ctx.settings.bind)
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Serves until SIGTERM or Ctrl-C (or `handle.stop`), finishing requests in flight, then
    /// stops the workers. `on_ready` gets the server handle once it accepts connections.
    pub async fn run(
        self,
        on_ready: impl FnOnce(actix_web::dev::ServerHandle) + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.local_addr();
        let metrics = Metrics::new().map_err(std::io::Error::other)?;
        let state = web::Data::new(AppState {
            ctx: self.ctx.clone(),
            metrics,
        });
        let limits = web::Data::new(http::limits::Limits::from_settings(&self.ctx.settings));
        let counts = limits.counts.clone();
        let server = HttpServer::new(move || http::app(state.clone(), limits.clone()))
            .on_connect(http::limits::on_connect(counts))
            .keep_alive(self.ctx.settings.keep_alive)
            // Headers must arrive within this (actix answers 408 past it).
            .client_request_timeout(std::time::Duration::from_secs(5))
            .listen(self.listener)?
            .shutdown_timeout(30)
            // Our own handler below: actix treats Ctrl-C as a forced stop, dropping requests
            // in flight, and the contract wants both signals to finish them.
            .disable_signals()
            .run();
        // Listen for the signals before saying we are ready, so that none arrives unheard.
        let term = signal(SignalKind::terminate())?;
        let int = signal(SignalKind::interrupt())?;
        let hup = signal(SignalKind::hangup())?;
        let handle = server.handle();
        let stopper = tokio::spawn(stop_gracefully_on_signal(handle.clone(), term, int));
        let reloader = tokio::spawn(reload_on_sighup(
            self.ctx.policies.clone(),
            self.ctx.db.clone(),
            self.ctx.clock.clone(),
            hup,
        ));
        // Ready means answering: actix starts its workers after this point, and until they run
        // a connection would only wait in the backlog.
        let ready = tokio::spawn(async move {
            wait_until_serving(addr).await;
            on_ready(handle);
        });

        let stop = Arc::new(Notify::new());
        let worker = self
            .workers
            .then(|| tokio::spawn(crate::workers::run(self.ctx.clone(), stop.clone())));
        let housekeeping = tokio::spawn(prune_hourly(self.ctx.db.clone(), self.ctx.clock.clone()));
        let checkpoints = self
            .workers
            .then(|| tokio::spawn(crate::app::checkpoints::run(self.ctx.clone())));
        let deadlines = self
            .workers
            .then(|| tokio::spawn(crate::app::deadlines::run(self.ctx.clone())));
        let mentions = self
            .workers
            .then(|| tokio::spawn(crate::app::ingest::run(self.ctx.clone())));

        let result = server.await;
        stop.notify_one();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        reloader.abort();
        housekeeping.abort();
        for task in [checkpoints, deadlines, mentions].into_iter().flatten() {
            task.abort();
        }
        stopper.abort();
        ready.abort();
        result
    }
}

/// Returns once the server at `addr` answers `GET /healthz`.
async fn wait_until_serving(addr: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut target = addr;
    if addr.ip().is_unspecified() {
        target.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    loop {
        if let Ok(mut conn) = tokio::net::TcpStream::connect(target).await {
            let probe = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            let mut head = [0u8; 12];
            if conn.write_all(probe).await.is_ok()
                && conn.read_exact(&mut head).await.is_ok()
                && &head == b"HTTP/1.1 200"
            {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// SIGTERM or Ctrl-C (SIGINT): stop accepting, finish the requests in flight (up to the
/// shutdown timeout), then let `run` stop the workers.
async fn stop_gracefully_on_signal(
    handle: actix_web::dev::ServerHandle,
    mut term: Signal,
    mut int: Signal,
) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "stopping: finishing requests in flight");
    handle.stop(true).await;
}

/// Removes expired sessions and old failed sign-ins once an hour.
async fn prune_hourly(db: crate::db::Db, clock: Clock) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let c = clock.clone();
        if let Err(e) = db
            .run(move |conn| crate::app::users::prune_expired(conn, &c))
            .await
        {
            tracing::warn!(error = %e, "pruning expired sessions failed");
        }
    }
}

/// SIGHUP reloads the policies, like `POST /policies/reload`; a broken set is logged and the
/// set in force stays.
async fn reload_on_sighup(policies: PolicyStore, db: Db, clock: Clock, mut hup: Signal) {
    while hup.recv().await.is_some() {
        let (store, db, clock) = (policies.clone(), db.clone(), clock.clone());
        let reload = move || {
            let old = store.current();
            store.reload(|set| {
                crate::app::policies::record_activation(
                    &mut *db.conn()?,
                    &clock,
                    &crate::audit::Actor::System,
                    &old,
                    set,
                )
            })
        };
        match tokio::task::spawn_blocking(reload).await {
            Ok(Ok(set)) => {
                tracing::info!(policy_version = set.version(), "policies reloaded (SIGHUP)")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "policy reload failed; the policies in force are unchanged")
            }
            Err(e) => tracing::error!(error = %e, "policy reload task failed"),
        }
    }
}
