//! Reloading the policy set while serving (spec/api.md "Policies"): a good set replaces the
//! one in force; a broken one is refused with file, line and rule, and the old set stays.

use crate::common::{Backend, TestApp};
use countersign::domain::roles::Role;
use serde_json::json;
use std::path::Path;

fn copy_policies(to: &Path) {
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
