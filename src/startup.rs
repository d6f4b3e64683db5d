//! Builds the running service: database (migrated), policies, HTTP server and workers.

use crate::app::{Context, PolicyStore};
use crate::channels::log::LogChannel;
use crate::channels::Channel;
use crate::config::Settings;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::http::{self, middleware::Metrics, AppState};
use actix_web::{web, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::Notify;

/// A service ready to run: migrated, policies loaded, socket bound.
pub struct Application {
    listener: TcpListener,
    ctx: Context,
}

impl Application {
    /// Opens the database, runs migrations, loads the policies and binds the address.
    ///
    /// Errors: a database that cannot be opened, a broken policy set (file, line, rule), an
    /// address in use.
    pub fn build(settings: Settings) -> Result<Application> {
        let db = Db::connect(&settings.database_url, 16)?;
        db.migrate()?;
        let policies = PolicyStore::load(&settings.policies)?;
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| Error::Unavailable(format!("cannot listen on {}: {e}", settings.bind)))?;
        Ok(Application {
            listener,
            ctx: Context {
                db,
                policies,
                settings: Arc::new(settings),
                posting_wakeup: Arc::new(Notify::new()),
            },
        })
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
        on_ready: impl FnOnce(actix_web::dev::ServerHandle),
    ) -> std::io::Result<()> {
        let metrics = Metrics::new().map_err(std::io::Error::other)?;
        let state = web::Data::new(AppState {
            ctx: self.ctx.clone(),
            metrics,
        });
        let server = HttpServer::new(move || http::app(state.clone()))
            .listen(self.listener)?
            .shutdown_timeout(30)
            .run();
        on_ready(server.handle());

        let channel: Arc<dyn Channel> =
            Arc::new(LogChannel::new(self.ctx.settings.post_log.clone()));
        let stop = Arc::new(Notify::new());
        let worker = tokio::spawn(crate::workers::posting::run(
            self.ctx.db.clone(),
            channel,
            self.ctx.posting_wakeup.clone(),
            stop.clone(),
        ));
        let reloader = tokio::spawn(reload_on_sighup(self.ctx.policies.clone()));
        let housekeeping = tokio::spawn(prune_hourly(self.ctx.db.clone()));

        let result = server.await;
        stop.notify_one();
        let _ = worker.await;
        reloader.abort();
        housekeeping.abort();
        result
    }
}

/// Removes expired sessions and old failed sign-ins once an hour.
async fn prune_hourly(db: crate::db::Db) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        if let Err(e) = db.run(crate::app::users::prune_expired).await {
            tracing::warn!(error = %e, "pruning expired sessions failed");
        }
    }
}

/// SIGHUP reloads the policies, like `POST /policies/reload`; a broken set is logged and the
/// set in force stays.
async fn reload_on_sighup(policies: PolicyStore) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let store = policies.clone();
            match tokio::task::spawn_blocking(move || store.reload()).await {
                Ok(Ok(set)) => {
                    tracing::info!(policy_version = set.version(), "policies reloaded (SIGHUP)")
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "policy reload failed; the policies in force stay")
                }
                Err(e) => tracing::error!(error = %e, "policy reload task failed"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = policies;
}
