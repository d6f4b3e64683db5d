//! The audit log's guarantees (spec/audit.md): append-only in the database, gap-free under
//! concurrent requests, each change with its entry or neither, tampering named by `verify`.

use crate::common::{Backend, TestApp};
use countersign::domain::roles::Role;
use diesel::RunQueryDsl;
use serde_json::json;

on_both_backends!(
    the_database_refuses_to_change_or_delete_entries,
    verify_names_the_first_tampered_entry,
    verify_names_a_missing_entry,
    concurrent_requests_keep_seq_gap_free,
    a_change_whose_audit_entry_fails_does_not_happen,
);

fn exec(app: &TestApp, sql: &str) -> Result<usize, diesel::result::Error> {
    let mut conn = app.ctx.db.conn().expect("db");
    diesel::sql_query(sql).execute(&mut *conn)
}

fn seed(app: &TestApp) {
    let agent = app.user("ana", &[Role::Agent]);
    for i in 0..3 {
        app.inbound(&agent, &format!("m{i}"), "@cust", "hello");
    }
}

fn verify_cli(app: &TestApp) -> (bool, serde_json::Value) {
    crate::audit_tamper::verify_cli(app, &[])
}

fn the_database_refuses_to_change_or_delete_entries(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app);
    let size = app.audit_size();
    assert!(exec(&app, "UPDATE audit_entries SET action = 'x' WHERE seq = 1").is_err());
    assert!(exec(&app, "DELETE FROM audit_entries WHERE seq = 1").is_err());
    assert!(exec(&app, "DELETE FROM audit_entries").is_err());
    if b == Backend::Postgres {
        assert!(exec(&app, "TRUNCATE audit_entries").is_err());
        assert!(exec(&app, "TRUNCATE audit_checkpoints").is_err());
    }
    assert_eq!(app.audit_size(), size);
    let (ok, report) = verify_cli(&app);
    assert!(ok, "{report}");
    assert_eq!(report["size"], size);
}

/// Bypasses the append-only triggers the way an attacker with the database's owner
/// rights could.
fn disable_guards(app: &TestApp, b: Backend) {
    match b {
        Backend::Sqlite => {
            exec(app, "DROP TRIGGER audit_entries_no_update").unwrap();
            exec(app, "DROP TRIGGER audit_entries_no_delete").unwrap();
        }
        Backend::Postgres => {
            exec(app, "ALTER TABLE audit_entries DISABLE TRIGGER USER").unwrap();
        }
    }
}

fn verify_names_the_first_tampered_entry(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app);
    let auditor = app.user("aud", &[Role::Auditor]);
    disable_guards(&app, b);
    let seq = app.first_seq("inbound.received");
    exec(
        &app,
        &format!(
            "UPDATE audit_entries SET body = REPLACE(body, 'hello', 'HELLO') WHERE seq = {seq}"
        ),
    )
    .unwrap();
    let (ok, report) = verify_cli(&app);
    assert!(!ok, "verify must fail: {report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad_seq"], seq, "{report}");
    assert!(report["reason"].as_str().unwrap().contains("leaf hash"));
    let api = app.get("/api/v1/audit/verify", Some(&auditor));
    assert_eq!(api.body["first_bad_seq"], seq);
}

fn verify_names_a_missing_entry(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app);
    disable_guards(&app, b);
    exec(&app, "DELETE FROM audit_entries WHERE seq = 3").unwrap();
    let (ok, report) = verify_cli(&app);
    assert!(!ok);
    assert_eq!(report["first_bad_seq"], 3, "{report}");
    assert!(report["reason"].as_str().unwrap().contains("missing"));
}

fn concurrent_requests_keep_seq_gap_free(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let before = app.audit_size();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (app, agent) = (&app, &agent);
            s.spawn(move || {
                for i in 0..10 {
                    let r = app.post(
                        "/api/v1/inbound",
                        Some(agent),
                        &json!({"channel": "x", "external_id": format!("{t}-{i}"), "author": {"handle": format!("c{t}")}, "text": "hi"}),
                    );
                    assert_eq!(r.status, 201, "{}", r.text);
                }
            });
        }
    });
    // 80 messages and 8 new customers.
    assert_eq!(app.audit_size(), before + 88);
    let actions = app.audit_actions();
    assert_eq!(actions.len() as i64, app.audit_size());
    let (ok, report) = verify_cli(&app);
    assert!(ok, "{report}");
    assert_eq!(report["size"], app.audit_size());
}

fn a_change_whose_audit_entry_fails_does_not_happen(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let draft = app.draft(&agent, &inbound, "Thanks, we're looking into it.");
    let size = app.audit_size();
    match b {
        Backend::Sqlite => exec(
            &app,
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        ),
        Backend::Postgres => exec(
            &app,
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
        ),
    }
    .unwrap();
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.body["error"], "internal");
    assert!(
        !r.text.contains("disk full") && !r.text.contains("append-only"),
        "no internals: {}",
        r.text
    );
    assert_eq!(
        app.get(&format!("/api/v1/drafts/{draft}"), Some(&agent))
            .body["state"],
        "draft"
    );
    assert_eq!(app.audit_size(), size);

    exec(
        &app,
        if b == Backend::Sqlite {
            "DROP TRIGGER refuse_audit"
        } else {
            "DROP TRIGGER refuse_audit ON audit_entries"
        },
    )
    .unwrap();
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.audit_size(), size + 1);
}
