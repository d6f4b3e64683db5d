//! The `countersign` binary as an operator uses it: serve, user add, migrate, check,
//! policy test, audit verify, and a clear refusal of bad settings.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "a long enough password";

/// The binary, with none of the caller's COUNTERSIGN_* settings.
pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_countersign"));
    for (k, _) in std::env::vars() {
        if k.starts_with("COUNTERSIGN_") {
            c.env_remove(k);
        }
    }
    c
}

pub(crate) fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped policies in `dir/policies`, to change in a test.
pub(crate) fn copy_policies(dir: &Path) -> std::path::PathBuf {
    let policies = dir.join("policies");
    std::fs::create_dir(&policies).unwrap();
    for entry in std::fs::read_dir(repo("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), policies.join(entry.file_name())).unwrap();
    }
    policies
}

/// `countersign user add …` in `dir`, the password piped on stdin.
pub(crate) fn add_user(dir: &Path, args: &[&str]) -> std::process::Output {
    add_user_with(dir, args, &[])
}

/// The same with extra settings.
pub(crate) fn add_user_with(
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut add = bin()
        .current_dir(dir)
        .envs(envs.iter().copied())
        .env("COUNTERSIGN_POLICIES", repo("policies"))
        .args(["user", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    add.wait_with_output().unwrap()
}

/// `countersign serve` in `dir` on a free port; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    http: ureq::Agent,
}

impl Server {
    fn start(dir: &Path, policies: &str) -> Server {
        Server::start_with(dir, policies, &[], "serve.log")
    }

    /// `serve` in `dir` with extra settings, its stderr in `dir/log`.
    pub(crate) fn start_with(
        dir: &Path,
        policies: &str,
        envs: &[(&str, &str)],
        log: &str,
    ) -> Server {
        let mut child = bin()
            .current_dir(dir)
            .envs(envs.iter().copied())
            .env("COUNTERSIGN_POLICIES", policies)
            .env("COUNTERSIGN_BIND", "127.0.0.1:0")
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(log)).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.starts_with("countersign listening on http://127.0.0.1:") {
            // Not left running when the test fails here.
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve did not say where it listens: {line:?}");
        }
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Server { child, url, http }
    }

    pub(crate) fn login(&self, user: &str) -> String {
        let mut r = self
            .http
            .post(format!("{}/api/v1/login", self.url))
            .send_json(json!({"username": user, "password": PASSWORD}))
            .unwrap();
        assert_eq!(r.status(), 200);
        r.body_mut().read_json::<Value>().unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// POSTs JSON with the token; the status and the JSON answer.
    pub(crate) fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(body)
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    pub(crate) fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let mut r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_json().unwrap_or(Value::Null),
        )
    }

    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub(crate) fn terminate(self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.terminate_wait()
    }

    /// Waits (bounded) for the process to exit after a signal.
    pub(crate) fn terminate_wait(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop after the signal"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// The process id of `serve`.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the process to end by itself, e.g. after a `kill -9`.
    pub(crate) fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_prints_its_address_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = add_user(
        dir.path(),
        &["ana", "--role", "agent", "--email", "ana@example.com"],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user ana"));
    // The default database is a SQLite file in the working folder.
    assert!(dir.path().join("countersign.db").exists());

    let server = Server::start(dir.path(), &repo("policies"));
    let token = server.login("ana");
    assert_eq!(server.get("/api/v1/inbound", &token).0, 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");

    let out = bin()
        .current_dir(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["size"], 3,
        "policy.activated, user.created and user.login"
    );
}

#[test]
fn sighup_reloads_the_policies() {
    let dir = tempfile::tempdir().unwrap();
    let policies = copy_policies(dir.path());
    assert!(add_user(dir.path(), &["root", "--role", "admin"])
        .status
        .success());
    let server = Server::start(dir.path(), policies.to_str().unwrap());
    let token = server.login("root");
    let version = || {
        server.get("/api/v1/policies", &token).1["policy_version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let v1 = version();
    let mut length = std::fs::read_to_string(policies.join("length.toml")).unwrap();
    length.push_str("\n# touched\n");
    std::fs::write(policies.join("length.toml"), length).unwrap();
    server.signal("-HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while version() == v1 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload the policies"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.terminate().success());
}

#[test]
fn a_bad_setting_stops_the_start_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("COUNTERSIGN_BIND", "not-an-address"),
        ("COUNTERSIGN_SESSION_HOURS", "0"),
        ("COUNTERSIGN_DATABASE_URL", "mysql://localhost/x"),
        ("COUNTERSIGN_SMTP_URL", "mail.example.com"),
    ] {
        let out = bin()
            .current_dir(dir.path())
            .env(var, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
    let config = dir.path().join("cs.toml");
    std::fs::write(&config, "bind = \"127.0.0.1:9\"\nunknown_key = 1\n").unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["--config", config.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown_key"));
}

#[test]
fn serve_refuses_a_broken_policy_set_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let policies = copy_policies(dir.path());
    std::fs::write(
        policies.join("broken.toml"),
        "[[rule]]\nid = \"x.y\"\nkind = \"pattern\"\ncategory = \"promise\"\nmessage = \"m\"\npatterns = ['''(unclosed''']\n",
    )
    .unwrap();
    let out = bin()
        .current_dir(dir.path())
        .env("COUNTERSIGN_BIND", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.toml:6") && err.contains("x.y"),
        "{err}"
    );
}

#[test]
fn migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let first = bin()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied"));
    let second = bin()
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
}

/// `post-log adopt` from the command line: the first file is recorded at its first use;
/// another file is adopted with both named (the refusal while a reply may be a line of the
/// old file only is `outbox.rs`'s test).
#[test]
fn post_log_adopt_names_the_new_and_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let adopt = |file: &str| {
        let out = bin()
            .current_dir(dir.path())
            .env("COUNTERSIGN_POST_LOG", file)
            .args(["post-log", "adopt"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert!(adopt("posted.jsonl").contains("posted.jsonl is already the log channel's file"));
    let moved = adopt("moved/posted.jsonl");
    assert!(
        moved.contains("now posts to") && moved.contains("moved/posted.jsonl"),
        "{moved}"
    );
    assert!(
        moved.contains("instead of") && moved.ends_with(")\n"),
        "{moved}"
    );
    assert!(adopt("moved/posted.jsonl").contains("already"));
}

#[test]
fn check_prints_the_report_of_the_contract() {
    let policies = repo("policies");
    let out = bin()
        .args([
            "check",
            "--policies",
            &policies,
            "--text",
            "Charged to 5105-1051-0510-5100 yesterday.",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verdict"], "block");
    assert_eq!(report["findings"][0]["category"], "pii.card");
    assert_eq!(report["findings"][0]["start"], 11);
    assert_eq!(report["findings"][0]["end"], 30);
    assert_eq!(report["weighted_length"], 41);
    assert_eq!(report["policy_version"].as_str().unwrap().len(), 64);
    assert!(report.get("id").is_none());

    let mut child = bin()
        .args(["check", "--policies", &policies, "--jsonl"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"id\": \"a\", \"text\": \"Your money back, guaranteed.\"}\n{\"id\": \"b\", \"text\": \"Thanks!\"}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["id"].as_str(), lines[0]["verdict"].as_str()),
        (Some("a"), Some("escalate"))
    );
    assert_eq!(
        (lines[1]["id"].as_str(), lines[1]["verdict"].as_str()),
        (Some("b"), Some("pass"))
    );

    let bad = bin()
        .args([
            "check",
            "--policies",
            "/nonexistent/policies",
            "--text",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent/policies"));
}

#[test]
fn policy_test_passes_on_the_shipped_sets() {
    for set in ["policies", "examples/real-replay/policies"] {
        let out = bin()
            .args(["policy", "test", "--policies", &repo(set)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{set}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("all examples pass"));
    }
}

#[test]
fn ctrl_c_finishes_the_requests_in_flight() {
    use std::io::Read;
    use std::sync::{Arc, Barrier};
    let dir = tempfile::tempdir().unwrap();
    assert!(add_user(dir.path(), &["ana", "--role", "agent"])
        .status
        .success());
    let server = Server::start(dir.path(), &repo("policies"));
    let addr = server.url.trim_start_matches("http://").to_string();
    let body = json!({"username": "ana", "password": PASSWORD}).to_string();
    let request = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // Each sign-in hashes a password (tens of milliseconds): eight of them on two cores are
    // still being answered when the signal arrives.
    let sent = Arc::new(Barrier::new(9));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (addr, request, sent) = (addr.clone(), request.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut conn = std::net::TcpStream::connect(&addr).unwrap();
                conn.write_all(request.as_bytes()).unwrap();
                sent.wait();
                let mut answer = String::new();
                let _ = conn.read_to_string(&mut answer);
                answer
            })
        })
        .collect();
    sent.wait();
    std::thread::sleep(Duration::from_millis(20));
    server.signal("-INT");
    for c in clients {
        let answer = c.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "a request in flight was dropped: {answer:?}\n{}",
            std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
        );
    }
    assert!(server.terminate_wait().success());
}

#[test]
fn fresh_starts_never_log_a_locking_error() {
    // One fresh start in about twenty used to log "database is locked" while the pool opened
    // its connections; ten in a row now log none.
    for i in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(dir.path(), &repo("policies"));
        assert!(server.terminate().success());
        let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
        assert!(!log.to_lowercase().contains("locked"), "start {i}: {log}");
        assert!(!log.contains("ERROR"), "start {i}: {log}");
    }
}

#[test]
fn serve_names_clashing_users_until_user_rename_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    assert!(add_user(dir.path(), &["bob", "--role", "agent"])
        .status
        .success());
    // A look-alike of bob as an older version could store it: no comparison forms.
    {
        use diesel::{Connection, RunQueryDsl};
        let path = dir.path().join("countersign.db");
        let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        diesel::sql_query(format!(
            "INSERT INTO users (id, username, password_hash, roles, created_at) \
             VALUES ('{}', 'B\u{041E}B', 'x', 'agent', '2030-01-01 00:00:00')",
            uuid::Uuid::now_v7()
        ))
        .execute(&mut conn)
        .unwrap();
    }
    let refused = bin()
        .current_dir(dir.path())
        .env("COUNTERSIGN_POLICIES", repo("policies"))
        .env("COUNTERSIGN_BIND", "127.0.0.1:0")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("\"B\u{041E}B\""), "{err}");
    assert!(err.contains("\"bob\""), "{err}");
    assert!(err.contains("countersign user rename"), "{err}");

    let renamed = bin()
        .current_dir(dir.path())
        .args(["user", "rename", "B\u{041E}B", "bobby"])
        .output()
        .unwrap();
    assert!(
        renamed.status.success(),
        "{}",
        String::from_utf8_lossy(&renamed.stderr)
    );
    assert!(String::from_utf8_lossy(&renamed.stdout).contains("renamed"));
    let server = Server::start(dir.path(), &repo("policies"));
    server.login("bob");
    assert!(server.terminate().success());
}
