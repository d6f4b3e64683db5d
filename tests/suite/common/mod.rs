//! The test harness: the real server on a real database (a fresh SQLite file per test, or a
//! fresh PostgreSQL database per test when COUNTERSIGN_TEST_POSTGRES_URL is set), driven
//! over HTTP like any client.
#![allow(dead_code)]

pub mod fake_http;
pub mod fake_mastodon;
pub mod fake_x;
pub mod smtp;

use countersign::app::Context;
use countersign::audit::Actor;
use countersign::config::Settings;
use countersign::domain::roles::Role;
use countersign::startup::Application;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "correct horse battery";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fresh, empty database of the given backend; dropped with the value.
pub struct TestDb {
    pub url: String,
    pg: Option<(String, String)>,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// `None` (with a note on stderr) when PostgreSQL is asked for but not configured.
    pub fn new(backend: Backend) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Some(TestDb {
                url: format!("sqlite://{}", dir.path().join("countersign.db").display()),
                pg: None,
                dir,
            }),
            Backend::Postgres => {
                let Ok(admin) = std::env::var("COUNTERSIGN_TEST_POSTGRES_URL") else {
                    note_postgres_skipped();
                    return None;
                };
                let name = format!("cs_test_{}", uuid::Uuid::now_v7().simple());
                pg_admin(&admin, &format!("CREATE DATABASE {name}"));
                let url = match admin.rsplit_once('/') {
                    Some((base, _)) => format!("{base}/{name}"),
                    None => panic!("COUNTERSIGN_TEST_POSTGRES_URL needs a database path"),
                };
                Some(TestDb {
                    url,
                    pg: Some((admin, name)),
                    dir,
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            pg_admin(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// Says once per test binary, past the test harness's output capture (which only takes
/// `print!`/`eprint!`), that the PostgreSQL half of the tests did not run.
fn note_postgres_skipped() {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the postgres:: tests ran nothing: COUNTERSIGN_TEST_POSTGRES_URL is not set"
        );
    });
}

fn pg_admin(admin_url: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    let mut conn = diesel::PgConnection::establish(admin_url)
        .expect("connect to COUNTERSIGN_TEST_POSTGRES_URL");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The settings every test server of `db` runs with (files in its temporary folder), plus
/// `extra` (`COUNTERSIGN_*` names).
pub fn test_settings(db: &TestDb, extra: &[(&str, &str)]) -> Settings {
    test_settings_from(db, None, extra)
}

/// The same, with a settings file (TOML text, written into the test's folder) as well.
pub fn test_settings_from(db: &TestDb, file: Option<&str>, extra: &[(&str, &str)]) -> Settings {
    let path = file.map(|text| {
        let p = db.dir.path().join("countersign.toml");
        std::fs::write(&p, text).expect("write the settings file");
        p
    });
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("COUNTERSIGN_DATABASE_URL".into(), db.url.clone());
    env.insert("COUNTERSIGN_BIND".into(), "127.0.0.1:0".into());
    env.insert(
        "COUNTERSIGN_POLICIES".into(),
        repo_path("policies").display().to_string(),
    );
    env.insert(
        "COUNTERSIGN_POST_LOG".into(),
        db.dir.path().join("posted.jsonl").display().to_string(),
    );
    env.insert(
        "COUNTERSIGN_KEY_FILE".into(),
        db.dir.path().join("countersign.key").display().to_string(),
    );
    env.insert(
        "COUNTERSIGN_SMTP_URL".into(),
        format!("file://{}", db.dir.path().join("mail").display()),
    );
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::from_sources(path.as_deref(), &env).expect("settings")
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub ctx: Context,
    pub settings: Settings,
    handle: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
    agent: ureq::Agent,
    pub db: TestDb,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[])
    }

    /// Starts the server with extra settings (`COUNTERSIGN_*` names).
    pub fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        let db = TestDb::new(backend)?;
        Some(Self::start(db, extra))
    }

    pub fn start(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
        Self::start_with(db, extra, true)
    }

    /// Starts the server without its background job worker: jobs run only when the test
    /// calls [`TestApp::run_jobs`].
    pub fn spawn_without_workers(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        let db = TestDb::new(backend)?;
        Some(Self::start_with(db, extra, false))
    }

    pub fn start_with(db: TestDb, extra: &[(&str, &str)], workers: bool) -> TestApp {
        let settings = test_settings(&db, extra);
        Self::start_settings(db, settings, workers)
    }

    /// Starts the server with a settings file (TOML text) besides the test settings, without
    /// background tasks.
    pub fn spawn_with_file(
        backend: Backend,
        file: &str,
        extra: &[(&str, &str)],
    ) -> Option<TestApp> {
        let db = TestDb::new(backend)?;
        let settings = test_settings_from(&db, Some(file), extra);
        Some(Self::start_settings(db, settings, false))
    }

    fn start_settings(db: TestDb, settings: Settings, workers: bool) -> TestApp {
        let mut app = Application::build(settings.clone()).expect("the server builds");
        if !workers {
            app = app.without_workers();
        }
        let addr = app.local_addr();
        let ctx = app.context().clone();
        // As the service runs with them (the public address carries the port it got).
        let settings = (*ctx.settings).clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            let _ = system.block_on(app.run(move |h| {
                let _ = tx.send(h);
            }));
        });
        let handle = rx.recv().expect("the server starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        TestApp {
            base: format!("http://{addr}"),
            ctx,
            settings,
            handle: Some(handle),
            thread: Some(thread),
            agent,
            db,
        }
    }

    /// Stops the server (finishing requests in flight) and hands back its database.
    pub fn stop(mut self) -> TestDb {
        self.shutdown();
        let placeholder = TestDb {
            url: String::new(),
            pg: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::mem::replace(&mut self.db, placeholder)
    }

    fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            drop(h.stop(true));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Creates a user directly (as `countersign user add` does) and signs in over HTTP.
    pub fn user(&self, name: &str, roles: &[Role]) -> String {
        self.user_with_email(name, roles, None)
    }

    /// The same, with an e-mail address.
    pub fn user_with_email(&self, name: &str, roles: &[Role], email: Option<&str>) -> String {
        let mut conn = self.ctx.db.conn().expect("db");
        countersign::app::users::create_user(
            &mut conn,
            &Actor::System,
            name,
            PASSWORD,
            roles,
            email,
        )
        .expect("create user");
        self.login(name)
    }

    /// Runs every job that is due now (posting, mail); returns how many ran.
    pub fn run_jobs(&self) -> usize {
        countersign::workers::run_pending_jobs(&self.ctx)
    }

    /// Moves the service's clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        self.ctx.clock.advance(by);
    }

    /// The mails written by the `file://` transport (the default of the tests), as raw
    /// RFC 5322 text, in no particular order.
    pub fn mail_files(&self) -> Vec<String> {
        let dir = self.db.dir.path().join("mail");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| {
                decode_quoted_printable(&std::fs::read_to_string(e.path()).expect("a mail file"))
            })
            .collect()
    }

    pub fn login(&self, name: &str) -> String {
        let r = self.post(
            "/api/v1/login",
            None,
            &json!({"username": name, "password": PASSWORD}),
        );
        assert_eq!(r.status, 200, "login {name}: {}", r.text);
        r.body["token"].as_str().expect("token").to_string()
    }

    pub fn user_id(&self, token: &str) -> String {
        let mut conn = self.ctx.db.conn().expect("db");
        countersign::app::users::authenticate(&mut conn, &self.ctx.clock, token)
            .expect("token")
            .id
            .to_string()
    }

    fn finish(&self, resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = resp.expect("the request reaches the server");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.finish(authed(self.agent.get(self.url(path)), token).call())
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.finish(authed(self.agent.post(self.url(path)), token).send_json(body))
    }

    pub fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let req = self
            .agent
            .post(self.url(path))
            .header("Content-Type", content_type);
        self.finish(authed(req, token).send(body))
    }

    /// POSTs `body` with these headers and no token (a network's webhook call).
    pub fn post_signed(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = self.agent.post(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.finish(req.send(body))
    }

    pub fn post_empty(&self, path: &str, token: Option<&str>) -> Reply {
        self.finish(authed(self.agent.post(self.url(path)), token).send_empty())
    }

    pub fn patch(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.finish(authed(self.agent.patch(self.url(path)), token).send_json(body))
    }

    pub fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.finish(authed(self.agent.put(self.url(path)), token).send_json(body))
    }

    /// Records a customer's post; returns its id.
    pub fn inbound(&self, token: &str, external_id: &str, handle: &str, text: &str) -> String {
        let r = self.post(
            "/api/v1/inbound",
            Some(token),
            &json!({"channel": "x", "external_id": external_id, "author": {"handle": handle}, "text": text}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().expect("id").to_string()
    }

    /// Writes a draft; returns its id.
    pub fn draft(&self, token: &str, inbound_id: &str, text: &str) -> String {
        let r = self.post(
            "/api/v1/drafts",
            Some(token),
            &json!({"inbound_id": inbound_id, "text": text}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().expect("id").to_string()
    }

    pub fn review(&self, token: &str, draft: &str, decision: &str, revision: i64) -> Reply {
        self.post(
            &format!("/api/v1/drafts/{draft}/reviews"),
            Some(token),
            &json!({"decision": decision, "comment": "", "revision": revision}),
        )
    }

    /// The audit log's size, read from the database.
    pub fn audit_size(&self) -> i64 {
        let mut conn = self.ctx.db.conn().expect("db");
        countersign::db::audit::head_size(&mut conn).expect("audit size")
    }

    /// The seq of the first entry with this action.
    pub fn first_seq(&self, action: &str) -> i64 {
        let mut conn = self.ctx.db.conn().expect("db");
        let filter = countersign::db::audit::AuditFilter {
            action: Some(action.into()),
            limit: 1,
            ..Default::default()
        };
        countersign::db::audit::query(&mut conn, &filter).expect("audit")[0].seq
    }

    /// Every audit entry with this action, as `GET /audit` shows it (data included).
    pub fn entries_of(&self, action: &str) -> Vec<Value> {
        let mut conn = self.ctx.db.conn().expect("db");
        let filter = countersign::db::audit::AuditFilter {
            action: Some(action.into()),
            limit: 100_000,
            ..Default::default()
        };
        countersign::db::audit::query(&mut conn, &filter)
            .expect("audit")
            .into_iter()
            .map(|e| serde_json::from_str(&e.body).expect("a body"))
            .collect()
    }

    /// Every audit entry's action, in order.
    pub fn audit_actions(&self) -> Vec<(String, Option<String>)> {
        let mut conn = self.ctx.db.conn().expect("db");
        let filter = countersign::db::audit::AuditFilter {
            limit: 100_000,
            ..Default::default()
        };
        countersign::db::audit::query(&mut conn, &filter)
            .expect("audit")
            .into_iter()
            .map(|e| (e.action, e.subject))
            .collect()
    }

    /// Waits (bounded) until the draft reaches `state`.
    pub fn wait_for_state(&self, token: &str, draft: &str, state: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/api/v1/drafts/{draft}"), Some(token));
            if r.body["state"] == state {
                return r.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "draft never reached {state}: {}",
                r.text
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn posted_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.settings.post_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// A raw mail with its quoted-printable parts decoded (soft line breaks joined, `=XX`
/// turned back into bytes), as a mail reader shows it; other text is left as it is.
pub fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Adds `Authorization: Bearer TOKEN` when there is a token.
fn authed<B>(req: ureq::RequestBuilder<B>, token: Option<&str>) -> ureq::RequestBuilder<B> {
    match token {
        Some(t) => req.header("Authorization", format!("Bearer {t}")),
        None => req,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Declares each scenario once per backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::Backend::Postgres) } )*
        }
    };
}
