//! What an attacker without an account can try from the network, and what must hold anyway:
//! bounded sign-in, stalled bodies timed out, connection caps, times and names that cannot
//! mislead, one credential per request.

use crate::common::{self, Backend, TestApp, TestDb};
use countersign::audit::Actor;
use countersign::domain::roles::Role;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

on_both_backends!(
    times_out_of_bounds_are_refused_and_change_nothing,
    stored_times_sort_as_time_across_years,
    look_alike_usernames_are_refused_and_sign_in_is_canonical,
    a_lock_out_is_recorded_once_and_costs_no_hash,
    concurrent_failures_lock_out_after_exactly_five,
    clashing_names_from_before_stop_the_start_until_renamed,
);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Sends `request` on a new connection and reads until the server closes it (or 10 s).
fn raw(app: &TestApp, request: &str) -> String {
    let mut s = TcpStream::connect(addr(app)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn login_body(user: &str, password: &str) -> Value {
    json!({"username": user, "password": password})
}

fn times_out_of_bounds_are_refused_and_change_nothing(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let auditor = app.user("aud", &[Role::Auditor]);
    let size = app.audit_size();
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    for (i, at) in [
        "9999-12-31T23:59:59.999999Z",
        "+10000-01-01T01:59:59.999999Z",
        "-0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2005-01-01T00:00:00Z", // before X existed
        soon.as_str(),          // more than 5 minutes ahead
        "2026-12-03 10:00",
        "yesterday",
    ]
    .iter()
    .enumerate()
    {
        let r = app.post(
            "/api/v1/inbound",
            Some(&agent),
            &json!({"channel": "x", "external_id": format!("t{i}"), "author": {"handle": "cust"},
                    "text": "Where is my parcel?", "received_at": at}),
        );
        assert_eq!(r.status, 400, "{at}: {}", r.text);
        assert_eq!(r.body["error"], "bad_request", "{at}");
    }
    for q in [
        "since=1999-01-01T00:00:00Z",
        "until=%2B10000-01-01T00:00:00Z",
        "since=-0001-01-01T00:00:00Z",
        "until=2026-13-01T00:00:00Z",
    ] {
        let r = app.get(&format!("/api/v1/audit?{q}"), Some(&auditor));
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
    assert_eq!(app.audit_size(), size, "nothing was recorded");
    let queue = app.get("/api/v1/inbound?state=open", Some(&agent));
    assert_eq!(
        queue.body.as_array().map(Vec::len),
        Some(0),
        "{}",
        queue.text
    );

    // In bounds, with an offset: stored and answered in UTC, RFC 3339.
    let r = app.post(
        "/api/v1/inbound",
        Some(&agent),
        &json!({"channel": "x", "external_id": "ok", "author": {"handle": "cust"},
                "text": "Where is my parcel?", "received_at": "2026-03-01T10:00:00+02:00"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["received_at"], "2026-03-01T08:00:00.000000Z");
    assert_eq!(r.body["due_at"], "2026-03-01T10:00:00.000000Z");
}

fn stored_times_sort_as_time_across_years(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    // Through the API: messages received across twenty years, posted out of order; the
    // queue lists them soonest due first, and the audit filters cut by time.
    let times = [
        "2019-07-04T12:00:00.5Z",
        "2006-03-21T00:00:00Z",
        "2026-01-01T00:00:00.000001Z",
        "2019-07-04T12:00:00Z",
        "2010-12-31T23:59:59.999999Z",
        "2019-07-04T12:00:00.25Z",
    ];
    for (i, t) in times.iter().enumerate() {
        let r = app.post(
            "/api/v1/inbound",
            Some(&agent),
            &json!({"channel": "x", "external_id": format!("y{i}"), "author": {"handle": format!("c{i}")},
                    "text": "Hello?", "received_at": t}),
        );
        assert_eq!(r.status, 201, "{t}: {}", r.text);
    }
    let queue = app.get("/api/v1/inbound?state=open", Some(&agent));
    let got: Vec<String> = queue
        .body
        .as_array()
        .expect("the queue")
        .iter()
        .map(|m| m["received_at"].as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    want.sort();
    let want: Vec<String> = want
        .iter()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .collect();
    assert_eq!(got, want);

    // In the store itself, across the whole range the API accepts: a failure at each time,
    // read back in time order and cut by a bound in between, on this engine.
    let mut conn = app.ctx.db.conn().unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().naive_utc();
    let stored = [
        "9999-12-31T23:59:59.999999Z",
        "2000-01-01T00:00:00Z",
        "2999-06-01T00:00:00.5Z",
        "2000-01-01T00:00:00.000001Z",
        "9999-12-31T23:59:59Z",
        "2100-02-28T23:00:00.123Z",
    ];
    for s in stored {
        countersign::db::users::record_login_failure(&mut conn, "k", "a", at(s)).unwrap();
    }
    let read = countersign::db::users::failures_for_username(
        &mut conn,
        "k",
        at("2000-01-01T00:00:00.000001Z"),
    )
    .unwrap();
    let mut want: Vec<_> = stored.iter().map(|s| at(s)).collect();
    want.sort();
    assert_eq!(read, want[1..].to_vec());
}

fn look_alike_usernames_are_refused_and_sign_in_is_canonical(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.user("alice", &[Role::Agent]);
    let mut conn = app.ctx.db.conn().unwrap();
    for clash in [
        "Alice",
        "ALICE",
        "ａｌｉｃｅ",
        "\u{0430}lice",
        " alice",
        "AIice",
        "aIice",
    ] {
        let e = countersign::app::users::create_user(
            &mut conn,
            &Actor::System,
            clash,
            common::PASSWORD,
            &[Role::Admin],
            None,
        )
        .expect_err(clash);
        assert!(
            matches!(e, countersign::error::Error::Conflict(_)),
            "{clash}: {e}"
        );
        assert!(e.to_string().contains("\"alice\""), "names the clash: {e}");
    }
    // Sign-in takes any spelling of the same name, and answers with the name as created.
    for spelling in ["ALICE", "ａｌｉｃｅ", "Alice"] {
        let r = app.post(
            "/api/v1/login",
            None,
            &login_body(spelling, common::PASSWORD),
        );
        assert_eq!(r.status, 200, "{spelling}: {}", r.text);
        assert_eq!(r.body["user"]["username"], "alice");
    }
    // The Cyrillic look-alike is nobody, and costs the same hash as a real name.
    let hashes = app.ctx.hashing.jobs_done();
    let r = app.post(
        "/api/v1/login",
        None,
        &login_body("\u{0430}lice", common::PASSWORD),
    );
    assert_eq!(r.status, 401);
    assert_eq!(app.ctx.hashing.jobs_done(), hashes + 1, "a decoy hash");
    // Failures under any spelling count against one lock-out key.
    for (i, spelling) in ["Alice", "ALICE", "alice", "ａｌｉｃｅ", "aLiCe"]
        .iter()
        .enumerate()
    {
        let r = app.post(
            "/api/v1/login",
            None,
            &login_body(spelling, &format!("wrong password {i}")),
        );
        assert_eq!(r.status, 401, "{spelling}");
    }
    let r = app.post(
        "/api/v1/login",
        None,
        &login_body("alice", common::PASSWORD),
    );
    assert_eq!(r.status, 429, "locked across spellings: {}", r.text);
}

fn a_lock_out_is_recorded_once_and_costs_no_hash(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.user("ana", &[Role::Agent]);
    let auditor = app.user("aud", &[Role::Auditor]);
    for i in 0..5 {
        let r = app.post(
            "/api/v1/login",
            None,
            &login_body("ana", &format!("nope {i}")),
        );
        assert_eq!(r.status, 401);
    }
    let hashes = app.ctx.hashing.jobs_done();
    let size = app.audit_size();
    for _ in 0..30 {
        let r = app.post("/api/v1/login", None, &login_body("ana", common::PASSWORD));
        assert_eq!(r.status, 429);
    }
    assert_eq!(
        app.ctx.hashing.jobs_done(),
        hashes,
        "a locked-out attempt computes no hash"
    );
    assert_eq!(app.audit_size(), size, "refused attempts add no entries");
    let locks = app.get("/api/v1/audit?action=user.locked_out", Some(&auditor));
    let entries = locks.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", locks.text);
    let ana = {
        let mut conn = app.ctx.db.conn().unwrap();
        countersign::db::users::by_canonical_name(&mut conn, "ana")
            .unwrap()
            .unwrap()
            .id
    };
    assert_eq!(entries[0]["subject"], ana.to_string());
    let data = &entries[0]["data"];
    assert_eq!(data["scope"], "username", "{data}");
    assert!(data["until"].as_str().is_some_and(|u| u.ends_with('Z')));
}

fn concurrent_failures_lock_out_after_exactly_five(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.user("ana", &[Role::Agent]);
    let auditor = app.user("aud", &[Role::Auditor]);
    // Twelve wrong passwords at once all pass the first lock-out read; the write step must
    // count them again, so only five are recorded as failures and the rest refused.
    let url = format!("{}/api/v1/login", app.base);
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                agent
                    .post(&url)
                    .send_json(login_body("ana", &format!("wrong {i}")))
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let statuses: Vec<u16> = attempts.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    let r = app.post("/api/v1/login", None, &login_body("ana", common::PASSWORD));
    assert_eq!(r.status, 429, "{}", r.text);
    let count = |action: &str| {
        let page = app.get(&format!("/api/v1/audit?action={action}"), Some(&auditor));
        page.body["entries"].as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(count("user.login_failed"), 5);
    assert_eq!(count("user.locked_out"), 1);
}

fn clashing_names_from_before_stop_the_start_until_renamed(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let app = TestApp::start(db, &[]);
    app.user("bob", &[Role::Agent]);
    // Two users as an older version could create them: the same name in other case, with
    // no comparison forms (inserted past the checks, as the old code did).
    {
        use diesel::RunQueryDsl;
        let mut conn = app.ctx.db.conn().unwrap();
        for (id, name) in [
            (uuid::Uuid::now_v7(), "BOB"),
            (uuid::Uuid::now_v7(), "r\u{043E}se"),
        ] {
            diesel::sql_query(format!(
                "INSERT INTO users (id, username, password_hash, roles, created_at) \
                 VALUES ('{id}', '{name}', 'x', 'agent', '2030-01-01 00:00:00')"
            ))
            .execute(&mut *conn)
            .unwrap();
        }
        diesel::sql_query("UPDATE users SET username_canonical = NULL, username_skeleton = NULL")
            .execute(&mut *conn)
            .unwrap();
    }
    let settings = app.settings.clone();
    let db = app.stop();
    let refused = match countersign::startup::Application::build(settings.clone()) {
        Ok(_) => panic!("the start must be refused while names clash"),
        Err(e) => e.to_string(),
    };
    assert!(refused.contains("\"BOB\""), "{refused}");
    assert!(refused.contains("\"bob\""), "{refused}");
    assert!(refused.contains("countersign user rename"), "{refused}");
    assert!(
        !refused.contains("r\u{043E}se"),
        "no clash for rose: {refused}"
    );

    {
        let app_db = countersign::db::Db::connect(&settings.database_url, 1).unwrap();
        let mut conn = app_db.conn().unwrap();
        // The new name is checked like any other.
        let e = countersign::app::users::rename_user(&mut conn, &Actor::System, "BOB", "Bob")
            .unwrap_err();
        assert!(e.to_string().contains("taken"), "{e}");
        countersign::app::users::rename_user(&mut conn, &Actor::System, "BOB", "robert").unwrap();
    }
    let app = TestApp::start(db, &[]);
    let admin = app.user("root", &[Role::Auditor]);
    let renamed = app.get("/api/v1/audit?action=user.updated", Some(&admin));
    let entry = &renamed.body["entries"][0]["data"];
    assert_eq!(entry["username"], "robert", "{}", renamed.text);
    assert_eq!(entry["previous_username"], "BOB");
}

#[test]
fn two_authorization_headers_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).unwrap();
    let token = app.user("ana", &[Role::Agent]);
    let answer = raw(
        &app,
        &format!(
            "GET /api/v1/inbound?state=open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\nAuthorization: Bearer other\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"error\":\"bad_request\""), "{answer}");
    // One is served.
    let one = app.get("/api/v1/inbound?state=open", Some(&token));
    assert_eq!(one.status, 200);
}

#[test]
fn stalled_bodies_are_closed_in_time_while_others_are_served() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("COUNTERSIGN_BODY_TIMEOUT_SECONDS", "1")],
    )
    .unwrap();
    let token = app.user("ana", &[Role::Agent]);
    let started = Instant::now();
    let stalled: Vec<TcpStream> = (0..12)
        .map(|i| {
            let mut s = TcpStream::connect(addr(&app)).unwrap();
            let (path, auth) = if i % 2 == 0 {
                ("/api/v1/login", String::new())
            } else {
                (
                    "/api/v1/check",
                    format!("Authorization: Bearer {token}\r\n"),
                )
            };
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}\
                 Content-Length: 100000\r\n\r\n{{\"username\": \"a"
            )
            .unwrap();
            s
        })
        .collect();
    // Meanwhile a normal client is served at once.
    let r = app.post("/api/v1/check", Some(&token), &json!({"text": "Hello!"}));
    assert_eq!(r.status, 200);
    assert!(started.elapsed() < Duration::from_secs(1), "not held up");
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out); // returns once the server closes
        let answer = String::from_utf8_lossy(&out);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "stalled bodies closed after {waited:?}"
    );
}

#[test]
fn connections_past_the_cap_of_one_address_are_refused_and_idle_ones_closed() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("COUNTERSIGN_MAX_CONNECTIONS_PER_CLIENT", "3"),
            ("COUNTERSIGN_KEEP_ALIVE_SECONDS", "2"),
        ],
    )
    .unwrap();
    let get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let status_of = |s: &mut TcpStream| {
        s.write_all(get.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr(&app)).unwrap())
        .collect();
    for s in &mut held {
        assert!(status_of(s).starts_with("HTTP/1.1 200"));
    }
    let mut fourth = TcpStream::connect(addr(&app)).unwrap();
    let answer = status_of(&mut fourth);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("too_many_requests"), "{answer}");
    // Closing one frees a place.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(200));
    let mut again = TcpStream::connect(addr(&app)).unwrap();
    assert!(status_of(&mut again).starts_with("HTTP/1.1 200"));
    // An idle keep-alive connection is closed by the server after the keep-alive time.
    let idle_since = Instant::now();
    let mut rest = [0u8; 16];
    again
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = again.read(&mut rest).unwrap_or(usize::MAX);
    assert_eq!(n, 0, "the server closed the idle connection");
    assert!(idle_since.elapsed() < Duration::from_secs(6));
}

#[test]
fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    let post_as = |app: &TestApp, forwarded: &str, user: &str, password: &str| {
        let body = login_body(user, password).to_string();
        let answer = raw(
            app,
            &format!(
                "POST /api/v1/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nX-Forwarded-For: {forwarded}\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        answer[9..12].parse::<u16>().unwrap_or(0)
    };
    // Behind a trusted proxy on 127.0.0.1: each forwarded client is its own address.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("COUNTERSIGN_TRUSTED_PROXIES", "127.0.0.0/8")],
    )
    .unwrap();
    app.user("ana", &[Role::Agent]);
    let auditor = app.user("aud", &[Role::Auditor]);
    for i in 0..20 {
        // A client's own claim left of the proxy's entry is not believed.
        let status = post_as(&app, "10.9.9.9, 203.0.113.7", &format!("u{i}"), "wrong one");
        assert_eq!(status, 401);
    }
    assert_eq!(post_as(&app, "203.0.113.7", "ana", common::PASSWORD), 429);
    assert_eq!(post_as(&app, "203.0.113.8", "ana", common::PASSWORD), 200);
    assert_eq!(post_as(&app, "10.9.9.9", "ana", common::PASSWORD), 200);
    let locks = app.get("/api/v1/audit?action=user.locked_out", Some(&auditor));
    assert_eq!(locks.body["entries"][0]["data"]["address"], "203.0.113.7");
    assert_eq!(locks.body["entries"][0]["data"]["scope"], "address");
    drop(app);

    // Without a trusted proxy the header is ignored: the peer is the address.
    let app = TestApp::spawn(Backend::Sqlite).unwrap();
    app.user("ana", &[Role::Agent]);
    for i in 0..20 {
        let forwarded = format!("198.51.100.{i}");
        assert_eq!(
            post_as(&app, &forwarded, &format!("u{i}"), "wrong one"),
            401
        );
    }
    assert_eq!(post_as(&app, "198.51.100.99", "ana", common::PASSWORD), 429);
}

#[test]
fn sign_ins_past_the_hashing_queue_get_503_with_retry_after() {
    let app = TestApp::spawn(Backend::Sqlite).unwrap();
    app.user("ana", &[Role::Agent]);
    let capacity = app.ctx.hashing.threads() * 9;
    let base = app.base.clone();
    let threads: Vec<_> = (0..capacity * 5)
        .map(|i| {
            let url = format!("{base}/api/v1/login");
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                // Right passwords only: failures would lock the address out before the
                // queue fills.
                let _ = i;
                let mut r = agent
                    .post(&url)
                    .send_json(json!({"username": "ana", "password": common::PASSWORD}))
                    .expect("answered");
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: Value = r.body_mut().read_json().unwrap_or(Value::Null);
                (r.status().as_u16(), retry, body)
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let overloaded: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(!overloaded.is_empty(), "some were turned away");
    for (_, retry, body) in &overloaded {
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["error"], "overloaded");
    }
    for (status, _, _) in &answers {
        assert!([200, 503].contains(status), "{status}");
    }
    // Once the storm has passed, sign-in works.
    std::thread::sleep(Duration::from_millis(500));
    app.login("ana");
}
