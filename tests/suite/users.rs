//! Users over the API (spec/api.md "Users"): admins create, change, disable and reset;
//! a one-time set-password link, mailed or handed back; the 12-character minimum; the last
//! admin kept; every change in the log.

use crate::common::{Backend, TestApp, PASSWORD};
use chrono::Duration;
use countersign::domain::roles::Role;
use serde_json::{json, Value};

on_both_backends!(
    an_admin_creates_users_who_set_their_own_password,
    disabling_ends_sessions_and_refuses_sign_in,
    a_reset_ends_sessions_and_sends_a_new_link,
    admins_cannot_lock_themselves_out,
);

fn token_of(url: &str) -> String {
    url.split_once("token=")
        .expect("a token in the link")
        .1
        .to_string()
}

fn sign_in(app: &TestApp, name: &str, password: &str) -> crate::common::Reply {
    app.post(
        "/api/v1/login",
        None,
        &json!({"username": name, "password": password}),
    )
}

fn link_in_mail(app: &TestApp, to: &str) -> String {
    app.run_jobs();
    let mail = app
        .mail_files()
        .into_iter()
        .find(|m| m.contains(&format!("<{to}>")) && m.contains("Subject: Set your password"))
        .unwrap_or_else(|| panic!("a set-password mail to {to}"));
    let start = mail
        .find("/set-password?token=")
        .expect("the link in the mail");
    let rest = &mail[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .unwrap_or(rest.len());
    format!("{}{}", app.settings.public_url, &rest[..end])
}

fn an_admin_creates_users_who_set_their_own_password(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let agent = app.user("ana", &[Role::Agent]);
    // Only admins manage users; everyone else is turned away.
    assert_eq!(app.get("/api/v1/users", Some(&agent)).status, 403);
    assert_eq!(app.get("/api/v1/users", None).status, 401);
    assert_eq!(
        app.post(
            "/api/v1/users",
            Some(&agent),
            &json!({"username": "x", "roles": ["agent"]})
        )
        .status,
        403
    );

    // With a password: it must have 12 characters.
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "bea", "roles": ["agent"], "password": "elevenchars"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "bea", "roles": ["agent", "reviewer"], "password": PASSWORD}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["roles"], json!(["agent", "reviewer"]));
    assert!(r.body.get("set_password_url").is_none());
    assert_eq!(sign_in(&app, "bea", PASSWORD).status, 200);
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "root2", "roles": ["wizard"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    // Without a password and with an address: the link goes by mail, not in the answer.
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "cruz", "roles": ["reviewer"], "email": "cruz@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.body.get("set_password_url").is_none(), "{}", r.body);
    let link = link_in_mail(&app, "cruz@example.com");
    // The page the link opens sends no referrer onwards and holds no script.
    let path = link.trim_start_matches(&app.settings.public_url);
    let page = app.get(path, None);
    assert_eq!(page.status, 200);
    assert!(
        page.text
            .contains("<form method=\"post\" action=\"/set-password\">"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<script"));
    // (The test client reads the body only; the header is checked with a raw request.)
    let raw = ureq::get(&link).call().unwrap();
    assert_eq!(raw.headers().get("referrer-policy").unwrap(), "no-referrer");
    let token = token_of(&link);
    let set = |token: &str, password: &str| {
        app.post(
            "/api/v1/password",
            None,
            &json!({"token": token, "password": password}),
        )
    };
    assert_eq!(set(&token, "too short").status, 400);
    assert_eq!(sign_in(&app, "cruz", "cruz's own passphrase").status, 401);
    let r = set(&token, "cruz's own passphrase");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "cruz", "cruz's own passphrase").status, 200);
    assert_eq!(
        set(&token, "another passphrase").status,
        400,
        "a link works once"
    );
    // The sent mail's job no longer holds the token; the log never did.
    let mut conn = app.ctx.db.conn().unwrap();
    for job in countersign::db::jobs::of_kind(&mut conn, "mail").unwrap() {
        assert!(!job.payload.contains(&token), "{}", job.payload);
    }
    drop(conn);
    let log = app.get("/api/v1/audit?limit=1000", Some(&admin)).text;
    assert!(!log.contains(&token));
    let set_entries = app.entries_of("user.password_set");
    assert_eq!(set_entries.len(), 1);
    assert_eq!(
        set_entries[0]["actor"], set_entries[0]["subject"],
        "the user set it"
    );

    // Without an address: the admin is handed the link; it expires after 24 hours.
    let r = app.post(
        "/api/v1/users",
        Some(&admin),
        &json!({"username": "dan", "roles": ["auditor"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.body["set_password_url"]
        .as_str()
        .expect("set_password_url")
        .to_string();
    assert!(url.starts_with(&format!("{}/set-password?token=", app.settings.public_url)));
    app.advance(Duration::hours(25));
    assert_eq!(
        set(&token_of(&url), "dan's own passphrase").status,
        400,
        "expired"
    );

    let users = app.get("/api/v1/users", Some(&app.login("root"))).body;
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["root", "ana", "bea", "cruz", "dan"]);
    assert!(users["users"][0].get("password_hash").is_none());
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

fn disabling_ends_sessions_and_refuses_sign_in(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let agent = app.user_with_email("ana", &[Role::Agent], Some("ana@example.com"));
    let id = app.user_id(&agent);
    let patch = |body: Value| app.patch(&format!("/api/v1/users/{id}"), Some(&admin), &body);
    let r = patch(json!({"disabled": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["disabled"], true);
    assert_eq!(
        app.get("/api/v1/inbound", Some(&agent)).status,
        401,
        "the session ended at once"
    );
    let r = sign_in(&app, "ana", PASSWORD);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("disabled"));
    // Back, with other roles and no address.
    let r = patch(json!({"disabled": false, "roles": ["agent", "reviewer"], "email": null}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["email"], Value::Null);
    assert_eq!(sign_in(&app, "ana", PASSWORD).status, 200);
    assert_eq!(patch(json!({"email": "not an address"})).status, 400);
    assert_eq!(patch(json!({"roles": []})).status, 400);
    assert_eq!(patch(json!({"nickname": "a"})).status, 400);
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        app.patch(
            &format!("/api/v1/users/{unknown}"),
            Some(&admin),
            &json!({"disabled": true})
        )
        .status,
        404
    );
    let updates = app.entries_of("user.updated");
    assert_eq!(updates[0]["data"], json!({"disabled": true}));
    assert_eq!(
        updates[1]["data"],
        json!({"disabled": false, "roles": ["agent", "reviewer"], "email": null})
    );
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

fn a_reset_ends_sessions_and_sends_a_new_link(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let agent = app.user_with_email("ana", &[Role::Agent], Some("ana@example.com"));
    let id = app.user_id(&agent);
    let r = app.post_empty(&format!("/api/v1/users/{id}/password-reset"), Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"set_password_url": null}),
        "mailed, not returned"
    );
    assert_eq!(app.get("/api/v1/inbound", Some(&agent)).status, 401);
    let link = link_in_mail(&app, "ana@example.com");
    let r = app.post(
        "/api/v1/password",
        None,
        &json!({"token": token_of(&link), "password": "a brand new passphrase"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "ana", PASSWORD).status, 401);
    assert_eq!(sign_in(&app, "ana", "a brand new passphrase").status, 200);
    let reset = app.entries_of("user.password_reset");
    assert_eq!(reset.len(), 1);
    assert_eq!(reset[0]["actor"], app.user_id(&admin).as_str());
    assert_eq!(reset[0]["subject"], id.as_str());
    // The set-password page's form works too.
    let bob = app.user("bob", &[Role::Agent]);
    let bob_id = app.user_id(&bob);
    let r = app.post_empty(
        &format!("/api/v1/users/{bob_id}/password-reset"),
        Some(&admin),
    );
    let url = r.body["set_password_url"].as_str().unwrap().to_string();
    let r = app.post_raw(
        "/set-password",
        None,
        "application/x-www-form-urlencoded",
        &format!("token={}&password=bob%27s+new+passphrase", token_of(&url)),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Your password is set"));
    assert_eq!(sign_in(&app, "bob", "bob's new passphrase").status, 200);
    let r = app.post_raw(
        "/set-password",
        None,
        "application/x-www-form-urlencoded",
        "token=nope&password=bob%27s+new+passphrase",
    );
    assert_eq!(r.status, 400);
    assert!(r.text.contains("unknown, used or expired"));
}

fn admins_cannot_lock_themselves_out(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let root = app.user("root", &[Role::Admin]);
    let root_id = app.user_id(&root);
    let me = |body: Value| app.patch(&format!("/api/v1/users/{root_id}"), Some(&root), &body);
    assert_eq!(me(json!({"disabled": true})).status, 409);
    assert_eq!(me(json!({"roles": ["agent"]})).status, 409);
    let other = app.user("ops", &[Role::Admin, Role::Auditor]);
    let other_id = app.user_id(&other);
    // Another admin may be changed; one's own other roles may change.
    let r = app.patch(
        &format!("/api/v1/users/{other_id}"),
        Some(&root),
        &json!({"roles": ["auditor"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = me(json!({"roles": ["admin", "auditor"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        me(json!({"roles": ["auditor"]})).status,
        409,
        "still the only admin"
    );
}

#[test]
fn the_command_line_refuses_short_passwords() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut add = crate::cli::bin()
        .current_dir(dir.path())
        .env("COUNTERSIGN_POLICIES", crate::cli::repo("policies"))
        .args(["user", "add", "ana", "--role", "agent"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"elevenchars\n")
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 12 characters"), "{err}");
}
