//! Reloading the policy set while serving (spec/api.md "Policies"): a good set replaces the
//! one in force; a broken one is refused with file, line and rule, and the old set stays.

use crate::common::{Backend, TestApp};
use countersign::domain::roles::Role;
use serde_json::json;
use std::path::Path;

pub(crate) fn copy_policies(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(crate::common::repo_path("policies")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_broken_reload_keeps_the_set_in_force_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let Some(app) = TestApp::spawn_with(
        Backend::Sqlite,
        &[("COUNTERSIGN_POLICIES", policies.to_str().unwrap())],
    ) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let before = app.get("/api/v1/policies", Some(&admin));
    assert_eq!(before.status, 200);
    let v1 = before.body["policy_version"].as_str().unwrap().to_string();
    assert!(before.body["rules"].as_u64().unwrap() > 10);
    assert!(before.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "organisation.toml"));

    std::fs::write(
        policies.join("zz-broken.toml"),
        "[[rule]]\nid = \"promise.broken\"\nkind = \"pattern\"\ncategory = \"promise\"\nmessage = \"m\"\npatterns = ['''(unclosed''']\n",
    )
    .unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "policy_invalid");
    let e = &r.body["errors"][0];
    assert_eq!(e["file"], "zz-broken.toml", "{e}");
    assert_eq!(e["rule"], "promise.broken");
    assert!(e["line"].as_u64().is_some_and(|l| l >= 1), "{e}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
    let still = app.post(
        "/api/v1/check",
        Some(&admin),
        &json!({"text": "Your money back, guaranteed."}),
    );
    assert_eq!(
        still.body["policy_version"],
        v1.as_str(),
        "the old set stays in force"
    );
    assert_eq!(still.body["verdict"], "escalate");

    std::fs::remove_file(policies.join("zz-broken.toml")).unwrap();
    let mut promise = std::fs::read_to_string(policies.join("promise.toml")).unwrap();
    promise.push_str("\n# reviewed by compliance, November\n");
    std::fs::write(policies.join("promise.toml"), promise).unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = r.body["policy_version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2, "any change to a file changes the version");
    let now = app.post("/api/v1/check", Some(&admin), &json!({"text": "Thanks!"}));
    assert_eq!(now.body["policy_version"], v2.as_str());
}

/// `policy.activated` entries: the audit log entries with that action, as (actor, data).
fn activations(app: &TestApp) -> Vec<(String, serde_json::Value)> {
    let mut conn = app.ctx.db.conn().unwrap();
    let filter = countersign::db::audit::AuditFilter {
        action: Some("policy.activated".into()),
        limit: 1000,
        ..Default::default()
    };
    countersign::db::audit::query(&mut conn, &filter)
        .unwrap()
        .into_iter()
        .map(|e| {
            let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
            assert_eq!(body["subject"], serde_json::Value::Null);
            (e.actor, body["data"].clone())
        })
        .collect()
}

#[test]
fn each_policy_set_in_force_is_in_the_log_with_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    copy_policies(&policies);
    let settings = [("COUNTERSIGN_POLICIES", policies.to_str().unwrap())];
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &settings) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let first = activations(&app);
    assert_eq!(first.len(), 1, "one at the first start");
    let (actor, data) = &first[0];
    assert_eq!(actor, "system");
    let v1 = app.get("/api/v1/policies", Some(&admin)).body["policy_version"].clone();
    assert_eq!(data["policy_version"], v1);
    let files = data["files"].as_array().unwrap();
    let on_disk = std::fs::read_to_string(policies.join("organisation.toml")).unwrap();
    let org = files
        .iter()
        .find(|f| f["name"] == "organisation.toml")
        .expect("every file is recorded");
    assert_eq!(org["text"], on_disk.as_str());
    assert_eq!(
        org["sha256"],
        countersign::audit::text_sha256(&on_disk).as_str(),
        "SHA-256 of the file's bytes"
    );

    // The same set at the next start: nothing new.
    let db = app.stop();
    let app = TestApp::start(db, &settings);
    assert_eq!(activations(&app).len(), 1);

    // A reload records the set that comes into force, by whom.
    let admin = app.login("root");
    let mut extra = on_disk.clone();
    extra.push_str("\n# reviewed 2026-12-03\n");
    std::fs::write(policies.join("organisation.toml"), &extra).unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    let all = activations(&app);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0, app.user_id(&admin));
    assert_eq!(all[1].1["policy_version"], r.body["policy_version"]);
    assert_ne!(all[1].1["policy_version"], v1);
    // A broken reload records nothing.
    std::fs::write(policies.join("zz.toml"), "[[rule]]\nid = 1\n").unwrap();
    assert_eq!(
        app.post_empty("/api/v1/policies/reload", Some(&admin))
            .status,
        422
    );
    assert_eq!(activations(&app).len(), 2);
}
