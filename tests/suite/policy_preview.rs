//! The policy impact preview: a proposed set is run against the drafts of a period next to
//! the set in force, and exactly the revisions it judges otherwise are reported; a reload
//! records the summary in `policy.activated`.

use crate::common::{Backend, TestApp, TestDb};
use countersign::domain::roles::Role;
use serde_json::{json, Value};
use std::path::PathBuf;

on_both_backends!(
    the_preview_reports_exactly_the_drafts_that_change,
    a_reload_records_what_the_new_set_changes,
);

const REFUND_RULE: &str = r#"[[rule]]
id = "extra.refund"
kind = "terms"
category = "refunds"
severity = "block"
message = "Refunds are handled by DM"
terms = ["refund"]
"#;

/// The proposed set: the shipped one without promise.toml, with a rule that blocks refunds.
fn proposed_files() -> Vec<Value> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(crate::common::repo_path("policies")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name != "promise.toml" {
            files.push(
                json!({"name": name, "text": std::fs::read_to_string(entry.path()).unwrap()}),
            );
        }
    }
    files.push(json!({"name": "extra/refunds.toml", "text": REFUND_RULE}));
    files
}

/// Four drafts, five revisions; returns (agent token, [guaranteed, refund, thanks, revised]).
fn drafts(app: &TestApp) -> (String, Vec<String>) {
    let agent = app.user("ana", &[Role::Agent]);
    let mut ids = Vec::new();
    for (i, text) in [
        "Your money back, guaranteed.",
        "We'll process the refund today.",
        "Thanks for your patience!",
        "We'll refund you by Friday.",
    ]
    .iter()
    .enumerate()
    {
        let inbound = app.inbound(&agent, &format!("p-{i}"), &format!("c{i}"), "help");
        ids.push(app.draft(&agent, &inbound, text));
    }
    let r = app.put(
        &format!("/api/v1/drafts/{}", ids[3]),
        Some(&agent),
        &json!({"text": "All sorted, see you soon!"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    (agent, ids)
}

fn the_preview_reports_exactly_the_drafts_that_change(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let (agent, ids) = drafts(&app);
    let auditor = app.user("eva", &[Role::Auditor]);
    let size = app.audit_size();
    let body = json!({"files": proposed_files()});
    assert_eq!(
        app.post("/api/v1/policies/preview", Some(&agent), &body)
            .status,
        403
    );
    let r = app.post("/api/v1/policies/preview", Some(&auditor), &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let p = &r.body;
    assert_eq!(p["revisions"], 5);
    assert_eq!(p["drafts"], 4);
    assert_eq!(p["changed"], 3, "{p}");
    let mut transitions: Vec<(String, String, u64, u64)> = p["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().into(),
                t["to"].as_str().unwrap().into(),
                t["revisions"].as_u64().unwrap(),
                t["drafts"].as_u64().unwrap(),
            )
        })
        .collect();
    transitions.sort();
    assert_eq!(
        transitions,
        [
            ("escalate".into(), "pass".into(), 1, 1),
            ("pass".into(), "block".into(), 2, 2)
        ]
    );
    let rule = |id: &str| {
        p["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {p}"))
    };
    assert_eq!(rule("extra.refund")["now_reported"], 2);
    assert_eq!(rule("promise.guarantee")["no_longer_reported"], 1);
    assert_eq!(p["rules"].as_array().unwrap().len(), 2);
    let mut examples: Vec<(String, i64)> = p["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["draft_id"].as_str().unwrap().into(),
                e["revision"].as_i64().unwrap(),
            )
        })
        .collect();
    examples.sort();
    let mut want = vec![
        (ids[0].clone(), 1),
        (ids[1].clone(), 1),
        (ids[3].clone(), 1),
    ];
    want.sort();
    assert_eq!(examples, want, "the changed revisions, and only those");
    assert_eq!(app.audit_size(), size, "a preview changes nothing");

    // The period: nothing was written in the last minute of a clock moved two on.
    app.advance(chrono::Duration::minutes(2));
    let r = app.post(
        "/api/v1/policies/preview",
        Some(&auditor),
        &json!({"files": proposed_files(), "since": "1m"}),
    );
    assert_eq!(r.body["revisions"], 0, "{}", r.text);
    let r = app.post(
        "/api/v1/policies/preview",
        Some(&auditor),
        &json!({"files": proposed_files(), "since": "soon"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    // A proposed set that does not load: file and line, as a reload says.
    let mut broken = proposed_files();
    broken.push(json!({"name": "bad.toml", "text": "[[rule]]\nid = \"x\"\nkind = \"nope\"\n"}));
    let r = app.post(
        "/api/v1/policies/preview",
        Some(&auditor),
        &json!({"files": broken}),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["errors"][0]["file"], "bad.toml");
    assert_eq!(r.body["errors"][0]["line"], 3);
    for name in ["../etc.toml", "/abs.toml", "notes.txt"] {
        let r = app.post(
            "/api/v1/policies/preview",
            Some(&auditor),
            &json!({"files": [{"name": name, "text": REFUND_RULE}]}),
        );
        assert_eq!(r.status, 422, "{name}: {}", r.text);
    }

    // The command line gives the same preview from the folder (SQLite: the same file).
    if b == Backend::Sqlite {
        let dir = app.db.dir.path().join("proposed");
        std::fs::create_dir_all(dir.join("extra")).unwrap();
        for f in proposed_files() {
            std::fs::write(
                dir.join(f["name"].as_str().unwrap()),
                f["text"].as_str().unwrap(),
            )
            .unwrap();
        }
        let out = crate::cli::bin()
            .env("COUNTERSIGN_DATABASE_URL", &app.db.url)
            .env("COUNTERSIGN_POLICIES", crate::common::repo_path("policies"))
            .args([
                "policy",
                "preview",
                "--since",
                "30d",
                "--json",
                "--policies",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(cli["changed"], 3);
        assert_eq!(cli["transitions"].as_array().unwrap().len(), 2);
    }
}

fn a_reload_records_what_the_new_set_changes(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let dir: PathBuf = crate::cli::copy_policies(db.dir.path());
    let app = TestApp::start_with(
        db,
        &[("COUNTERSIGN_POLICIES", dir.to_str().unwrap())],
        false,
    );
    drafts(&app);
    let admin = app.user("root", &[Role::Admin]);
    std::fs::remove_file(dir.join("promise.toml")).unwrap();
    std::fs::create_dir_all(dir.join("extra")).unwrap();
    std::fs::write(dir.join("extra/refunds.toml"), REFUND_RULE).unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    let activated = app.entries_of("policy.activated");
    let last = &activated.last().unwrap()["data"];
    assert!(
        activated[0]["data"].get("preview").is_none(),
        "none at the first start"
    );
    let preview = &last["preview"];
    assert_eq!(preview["changed"], 3, "{last}");
    assert_eq!(preview["revisions"], 5);
    assert!(
        preview.get("examples").is_none(),
        "no reply texts in the summary"
    );
    assert_eq!(preview["to_version"], last["policy_version"]);
}
