//! Export and evidence bundles verified offline, and the state check (spec/audit.md
//! "Verify and export", "Bundles").

use crate::audit_tamper::verify_cli;
use crate::common::{Backend, TestApp};
use countersign::domain::roles::Role;
use diesel::RunQueryDsl;
use serde_json::Value;
use std::path::Path;

on_both_backends!(
    an_evidence_bundle_tells_the_story_and_verifies_offline,
    a_tampered_bundle_fails_and_says_what,
    export_bundles_verify_offline_with_or_without_filters,
    verify_state_names_rows_the_log_does_not_explain,
);

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
}

/// A reply taken from inbound to posted; returns (draft id, verifier key).
fn posted_reply(app: &TestApp, reviewers: usize) -> (String, String) {
    let agent = app.user("ana", &[Role::Agent]);
    let auditor = app.user("aud", &[Role::Auditor]);
    let inbound = app.inbound(&agent, "m1", "@cust", "Where is my parcel?");
    let text = if reviewers > 1 {
        // Investment talk escalates: two approvals needed.
        "We can't give investment advice here, but our team will DM you the fund's terms."
    } else {
        "Thanks for asking! Your parcel left our depot today."
    };
    let draft = app.draft(&agent, &inbound, text);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    let needed = r.body["approvals_needed"].as_i64().unwrap_or(1) as usize;
    for i in 0..needed.max(reviewers) {
        let reviewer = app.user(&format!("rev{i}"), &[Role::Reviewer]);
        let r = app.review(&reviewer, &draft, "approve", 1);
        if r.status != 200 {
            break;
        }
    }
    app.wait_for_state(&auditor, &draft, "posted");
    let key = app.get("/api/v1/audit/key", Some(&auditor)).text;
    (draft, key)
}

fn verify_bundle(file: &Path, key: &str, json: bool) -> (bool, String) {
    let mut cmd = bin();
    cmd.args(["audit", "verify-bundle"])
        .arg(file)
        .args(["--key", key.trim()]);
    if json {
        cmd.arg("--json");
    }
    // Offline: no database, no settings.
    let out = cmd.env_clear().output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn an_evidence_bundle_tells_the_story_and_verifies_offline(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (draft, key) = posted_reply(&app, 1);
    let auditor = app.login("aud");
    let r = app.get(&format!("/api/v1/audit/evidence/{draft}"), Some(&auditor));
    assert_eq!(r.status, 200, "{}", r.text);
    let file = app.db.dir.path().join("evidence.jsonl");
    std::fs::write(&file, &r.text).unwrap();
    let header: Value = serde_json::from_str(r.text.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "countersign-bundle/1");
    assert_eq!(header["kind"], "evidence");
    assert_eq!(header["draft_id"], draft.as_str());

    let (ok, story) = verify_bundle(&file, &key, false);
    assert!(ok, "{story}");
    for step in [
        "received",
        "drafted",
        "checked",
        "submitted",
        "approved",
        "posted",
    ] {
        assert!(story.contains(step), "{step} missing from:\n{story}");
    }
    assert!(story.contains("rev0"), "names the approver: {story}");
    let (ok, json) = verify_bundle(&file, &key, true);
    assert!(ok);
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ok"], true);
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "received",
            "drafted",
            "checked",
            "submitted",
            "approved",
            "posted"
        ]
    );
    assert!(report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["ok"] == true && s["seq"].is_i64() && s["at"].is_string()));
    // The bundle holds the policy version the reply was checked under and the people.
    assert!(r.text.contains("policy.activated"));
    assert!(r.text.contains("user.created"));

    // The command line writes the same kind of bundle.
    let out_file = app.db.dir.path().join("cli-evidence.jsonl");
    let out = bin()
        .args(["audit", "evidence", &draft, "--out"])
        .arg(&out_file)
        .env("COUNTERSIGN_DATABASE_URL", &app.db.url)
        .env("COUNTERSIGN_KEY_FILE", &app.settings.key_file)
        .env("COUNTERSIGN_POLICIES", &app.settings.policies)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(verify_bundle(&out_file, &key, false).0);

    // An unknown draft is 404; a malformed id 400.
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        app.get(&format!("/api/v1/audit/evidence/{unknown}"), Some(&auditor))
            .status,
        404
    );
    assert_eq!(
        app.get("/api/v1/audit/evidence/not-an-id", Some(&auditor))
            .status,
        400
    );
    let agent = app.login("ana");
    assert_eq!(
        app.get(&format!("/api/v1/audit/evidence/{draft}"), Some(&agent))
            .status,
        403
    );
}

fn a_tampered_bundle_fails_and_says_what(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (draft, key) = posted_reply(&app, 1);
    let auditor = app.login("aud");
    let bundle = app
        .get(&format!("/api/v1/audit/evidence/{draft}"), Some(&auditor))
        .text;
    let dir = app.db.dir.path();
    let check = |name: &str, text: &str, key: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        verify_bundle(&file, key, false)
    };

    // A body edited: its leaf is not in the checkpoint's tree.
    let edited = bundle.replacen("Your parcel left", "Your parcel never left", 1);
    assert_ne!(edited, bundle);
    let (ok, out) = check("edited.jsonl", &edited, &key);
    assert!(!ok, "{out}");
    assert!(out.contains("not in the checkpoint's tree"), "{out}");

    // The approval left out: posted without it.
    let without: String = bundle
        .lines()
        .filter(|l| !l.contains("review.approved"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, out) = check("no-approval.jsonl", &without, &key);
    assert!(!ok, "{out}");
    assert!(out.contains("posted"), "{out}");

    // Another log's key: the checkpoint does not verify.
    let other = countersign::audit::note::NoteSigner::generate("someone/else")
        .unwrap()
        .verifier()
        .to_string();
    let (ok, out) = check("key.jsonl", &bundle, &other);
    assert!(!ok);
    assert!(out.contains("checkpoint"), "{out}");

    // The signed note altered in the header.
    let header: Value = serde_json::from_str(bundle.lines().next().unwrap()).unwrap();
    let note = header["checkpoint"].as_str().unwrap();
    let mut lines: Vec<&str> = note.lines().collect();
    let bigger = (lines[1].parse::<u64>().unwrap() + 1).to_string();
    lines[1] = &bigger;
    let forged_note = format!("{}\n", lines.join("\n"));
    let mut forged_header = header.clone();
    forged_header["checkpoint"] = Value::String(forged_note);
    let rest: String = bundle.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let (ok, out) = check("note.jsonl", &format!("{forged_header}\n{rest}"), &key);
    assert!(!ok);
    assert!(out.contains("checkpoint"), "{out}");
}

fn export_bundles_verify_offline_with_or_without_filters(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (draft, key) = posted_reply(&app, 1);
    let dir = app.db.dir.path();
    let export = |name: &str, args: &[&str]| {
        let file = dir.join(name);
        let out = bin()
            .args(["audit", "export", "--out"])
            .arg(&file)
            .args(args)
            .env("COUNTERSIGN_DATABASE_URL", &app.db.url)
            .env("COUNTERSIGN_KEY_FILE", &app.settings.key_file)
            .env("COUNTERSIGN_POLICIES", &app.settings.policies)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&file).unwrap();
        (file, text)
    };
    let (all, text) = export("all.jsonl", &[]);
    let size = app.audit_size();
    assert_eq!(
        text.lines().count() as i64,
        size + 1,
        "header and every entry"
    );
    assert!(text.lines().skip(1).all(|l| l.contains("\"proof\":[]")));
    assert!(verify_bundle(&all, &key, false).0);
    // A whole-log bundle with an entry left out no longer gives the root.
    let cut: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("cut.jsonl"), cut).unwrap();
    let (ok, out) = verify_bundle(&dir.join("cut.jsonl"), &key, false);
    assert!(!ok, "{out}");

    let (one, text) = export("draft.jsonl", &["--subject", &draft]);
    assert!(text.lines().count() >= 5, "{text}");
    assert!(text.lines().skip(1).all(|l| !l.contains("\"proof\":[]")));
    let (ok, out) = verify_bundle(&one, &key, false);
    assert!(ok, "{out}");

    let (none, text) = export("future.jsonl", &["--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(text.lines().count(), 1, "only the header");
    assert!(verify_bundle(&none, &key, false).0);
    let (_, text) = export(
        "window.jsonl",
        &[
            "--since",
            "2000-01-01T00:00:00Z",
            "--until",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert_eq!(text.lines().count() as i64, size + 1);

    let out = bin()
        .args(["audit", "export", "--out"])
        .arg(dir.join("bad.jsonl"))
        .args(["--since", "yesterday"])
        .env("COUNTERSIGN_DATABASE_URL", &app.db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

fn exec(app: &TestApp, sql: &str) {
    let mut conn = app.ctx.db.conn().expect("db");
    diesel::sql_query(sql).execute(&mut *conn).unwrap();
}

fn verify_state_names_rows_the_log_does_not_explain(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (draft, _) = posted_reply(&app, 1);
    let auditor = app.login("aud");
    let (ok, report) = verify_cli(&app, &["--state"]);
    assert!(ok, "an honest database matches its log: {report}");
    assert_eq!(report["state"], serde_json::json!([]));

    exec(
        &app,
        &format!("UPDATE drafts SET text = 'Send us your card number' WHERE id = '{draft}'"),
    );
    exec(
        &app,
        "UPDATE users SET roles = 'admin' WHERE username = 'ana'",
    );
    exec(&app, "UPDATE inbound_messages SET state = 'open'");
    let reviewer: String = app.user_id(&app.login("rev0"));
    exec(
        &app,
        &format!(
            "INSERT INTO reviews (id, draft_id, revision, reviewer_id, decision, comment, created_at) \
             VALUES ('{}', '{draft}', 1, '{reviewer}', 'approve', '', '2026-12-01 00:00:00')",
            uuid::Uuid::now_v7()
        ),
    );
    let (ok, report) = verify_cli(&app, &["--state"]);
    assert!(!ok, "{report}");
    let state = report["state"].as_array().unwrap();
    let named = |table: &str, needle: &str| {
        state
            .iter()
            .any(|m| m["table"] == table && m["reason"].as_str().unwrap().contains(needle))
    };
    assert!(named("drafts", "text"), "{report}");
    assert!(state
        .iter()
        .any(|m| m["table"] == "drafts" && m["id"] == draft.as_str()));
    assert!(named("users", "roles"), "{report}");
    assert!(named("inbound_messages", "state"), "{report}");
    assert!(named("reviews", "no review entry"), "{report}");
    // The log itself is intact: verify without --state passes.
    assert!(verify_cli(&app, &[]).0);
    let api = app.get("/api/v1/audit/verify?state=true", Some(&auditor));
    assert_eq!(api.status, 200);
    assert_eq!(api.body["ok"], false);
    assert_eq!(api.body["state"].as_array().unwrap().len(), state.len());
}
