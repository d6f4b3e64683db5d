//! Review routes (policies/routes.toml): a financial-advice draft goes to compliance, then
//! to every eligible member of legal; four eyes holds across steps; a route its groups
//! cannot complete refuses the submission; groups are managed over the API and recorded.

use crate::common::{Backend, TestApp, TestDb};
use countersign::app::jobs::Job;
use countersign::domain::roles::Role;
use serde_json::{json, Value};

on_both_backends!(
    financial_advice_needs_compliance_then_all_of_legal,
    nobody_approves_twice_across_steps_and_writers_never,
    a_route_its_groups_cannot_complete_refuses_the_submission,
    groups_are_managed_by_admins_and_recorded,
    a_broken_routes_file_names_file_and_line_and_keeps_the_set,
    an_expired_approval_starts_its_route_again,
);

const ADVICE: &str = "You should invest your bonus in our Tech Fund.";

const ROUTES: &str = r#"
[[route]]
name = "financial-advice"
categories = ["financial_advice"]

[[route.step]]
group = "compliance"
approvals = "any"

[[route.step]]
group = "legal"
approvals = "all"
"#;

/// The shipped policies with `routes` as routes.toml, in the test's folder.
fn policies_with(db: &TestDb, routes: &str) -> String {
    let dir = crate::cli::copy_policies(db.dir.path());
    std::fs::write(dir.join("routes.toml"), routes).unwrap();
    dir.display().to_string()
}

/// A server (without background workers) whose policies route financial advice.
fn app_with_routes(b: Backend, routes: &str) -> Option<TestApp> {
    let db = TestDb::new(b)?;
    let policies = policies_with(&db, routes);
    Some(TestApp::start_with(
        db,
        &[("COUNTERSIGN_POLICIES", policies.as_str())],
        false,
    ))
}

/// Makes the group and sets its members (by token); returns the API's answer.
fn group(app: &TestApp, admin: &str, name: &str, members: &[&str]) -> Value {
    let r = app.post("/api/v1/groups", Some(admin), &json!({"name": name}));
    assert_eq!(r.status, 201, "{}", r.text);
    let ids: Vec<String> = members.iter().map(|t| app.user_id(t)).collect();
    let r = app.put(
        &format!("/api/v1/groups/{name}/members"),
        Some(admin),
        &json!({"members": ids}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// An agent's submitted draft for a new message; returns (agent token, draft id).
fn submitted(app: &TestApp, text: &str) -> (String, String, Value) {
    let agent = app.user("ana", &[Role::Agent]);
    let inbound = app.inbound(&agent, "m-1", "cust", "Where should my bonus go?");
    let draft = app.draft(&agent, &inbound, text);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    (agent, draft, r.body.clone())
}

fn ids_for_me(app: &TestApp, token: &str) -> Vec<String> {
    let r = app.get("/api/v1/drafts?state=pending_review&for=me", Some(token));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

fn review_needed_to(app: &TestApp) -> Vec<String> {
    let mut to: Vec<String> = app
        .mail_files()
        .iter()
        .filter(|m| m.contains("Subject: Review needed"))
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("To: "))
                .map(|l| l.trim_start_matches("To: ").to_string())
        })
        .collect();
    to.sort();
    to
}

fn financial_advice_needs_compliance_then_all_of_legal(b: Backend) {
    let Some(app) = app_with_routes(b, ROUTES) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let reviewer = |name: &str| {
        app.user_with_email(
            name,
            &[Role::Reviewer],
            Some(&format!("{name}@example.org")),
        )
    };
    let (cora, lea, leo, rui) = (
        reviewer("cora"),
        reviewer("lea"),
        reviewer("leo"),
        reviewer("rui"),
    );
    group(&app, &admin, "compliance", &[&cora]);
    group(&app, &admin, "legal", &[&lea, &leo]);

    let (_agent, draft, view) = submitted(&app, ADVICE);
    assert_eq!(view["state"], "pending_review", "{view}");
    assert_eq!(view["check"]["verdict"], "escalate");
    let route = &view["route"];
    assert_eq!(route["name"], "financial-advice");
    assert_eq!(route["current_step"], 1);
    assert_eq!(route["steps"][0]["group"], "compliance");
    assert_eq!(route["steps"][1]["group"], "legal");
    assert_eq!(route["steps"][1]["state"], "waiting");
    assert_eq!(route["may_act"], json!([app.user_id(&cora)]));
    // Only compliance is told, and only compliance finds it in its queue.
    assert!(app.run_jobs() >= 1);
    assert_eq!(review_needed_to(&app), ["cora <cora@example.org>"]);
    assert_eq!(ids_for_me(&app, &cora), vec![draft.clone()]);
    assert!(ids_for_me(&app, &lea).is_empty());
    assert!(
        ids_for_me(&app, &rui).is_empty(),
        "a reviewer in no group of the route"
    );

    // Legal may not jump the queue; a reviewer outside the route may not approve at all.
    for token in [&lea, &rui] {
        let r = app.review(token, &draft, "approve", 1);
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap()
                .contains("group compliance"),
            "{}",
            r.text
        );
    }
    let r = app.review(&cora, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "pending_review");
    assert_eq!(r.body["route"]["current_step"], 2);
    assert_eq!(r.body["route"]["steps"][0]["state"], "done");
    let legal: Vec<String> = [&lea, &leo].iter().map(|t| app.user_id(t)).collect();
    let mut may_act: Vec<String> =
        serde_json::from_value(r.body["route"]["may_act"].clone()).unwrap();
    may_act.sort();
    let mut want = legal.clone();
    want.sort();
    assert_eq!(may_act, want);
    assert_eq!(r.body["approvals_needed"], 3, "compliance 1, legal 2");
    app.run_jobs();
    assert_eq!(
        review_needed_to(&app),
        [
            "cora <cora@example.org>",
            "lea <lea@example.org>",
            "leo <leo@example.org>"
        ]
    );

    // Someone who joins legal after its step started is not one of "all".
    let late = reviewer("lina");
    let ids: Vec<String> = [&lea, &leo, &late].iter().map(|t| app.user_id(t)).collect();
    let r = app.put(
        "/api/v1/groups/legal/members",
        Some(&admin),
        &json!({"members": ids}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.review(&late, &draft, "approve", 1).status, 403);

    // `all`: one of two is not enough.
    let r = app.review(&lea, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "pending_review");
    assert_eq!(ids_for_me(&app, &leo), vec![draft.clone()]);
    assert!(ids_for_me(&app, &lea).is_empty());
    let r = app.review(&leo, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "approved");

    let approvals = app.entries_of("review.approved");
    let last = &approvals.last().unwrap()["data"];
    assert_eq!(last["approvals"], 3);
    assert_eq!(last["approvals_needed"], 3);
    assert_eq!(last["route"], "financial-advice");
    assert_eq!(last["step"], 2);
    assert_eq!(last["group"], "legal");
    let submitted = &app.entries_of("draft.submitted")[0]["data"]["route"];
    assert_eq!(submitted["steps"][1]["approvals"], "all");

    // Posted; the evidence bundle carries the groups' membership and verifies offline.
    app.run_jobs();
    let auditor = app.user("eva", &[Role::Auditor]);
    app.wait_for_state(&auditor, &draft, "posted");
    let r = app.get(&format!("/api/v1/audit/evidence/{draft}"), Some(&auditor));
    assert_eq!(r.status, 200, "{}", r.text);
    let actions: Vec<String> = r
        .text
        .lines()
        .skip(1)
        .map(|l| {
            let line: Value = serde_json::from_str(l).unwrap();
            let body: Value = serde_json::from_str(line["body"].as_str().unwrap()).unwrap();
            format!("{} {}", body["action"], body["data"]["name"])
        })
        .collect();
    for want in [
        r#""group.updated" "compliance""#,
        r#""group.updated" "legal""#,
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
    let file = app.db.dir.path().join("evidence.jsonl");
    std::fs::write(&file, &r.text).unwrap();
    let key = app.get("/api/v1/audit/key", Some(&auditor)).text;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify-bundle"])
        .arg(&file)
        .args(["--key", key.trim()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn nobody_approves_twice_across_steps_and_writers_never(b: Backend) {
    let routes = r#"
[[route]]
name = "two-steps"
categories = ["financial_advice"]
[[route.step]]
group = "compliance"
approvals = "any"
[[route.step]]
group = "legal"
approvals = "any"
"#;
    let Some(app) = app_with_routes(b, routes) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let both = app.user("bo", &[Role::Reviewer]);
    let other = app.user("lee", &[Role::Reviewer]);
    let writer = app.user("wanda", &[Role::Agent, Role::Reviewer]);
    group(&app, &admin, "compliance", &[&both, &writer]);
    group(&app, &admin, "legal", &[&both, &other]);
    let inbound = app.inbound(&writer, "m-2", "cust", "Advice?");
    let draft = app.draft(&writer, &inbound, ADVICE);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&writer));
    assert_eq!(r.status, 200, "{}", r.text);
    // The writer is in compliance, and still may not approve.
    let r = app.review(&writer, &draft, "approve", 1);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.body["message"].as_str().unwrap().contains("four eyes"));
    assert_eq!(app.review(&both, &draft, "approve", 1).status, 200);
    // In legal too, but approved step 1 already.
    let r = app.review(&both, &draft, "approve", 1);
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.body["message"]
        .as_str()
        .unwrap()
        .contains("already approved"));
    let view = app
        .get(&format!("/api/v1/drafts/{draft}"), Some(&other))
        .body;
    assert_eq!(view["route"]["may_act"], json!([app.user_id(&other)]));
    let r = app.review(&other, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "approved");
    assert_eq!(r.body["reviews"][1]["step"], 2);
}

fn a_route_its_groups_cannot_complete_refuses_the_submission(b: Backend) {
    let Some(app) = app_with_routes(b, ROUTES) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let cora = app.user("cora", &[Role::Reviewer]);
    group(&app, &admin, "compliance", &[&cora]);
    // No legal group at all.
    let agent = app.user("ana", &[Role::Agent]);
    let inbound = app.inbound(&agent, "m-3", "cust", "Advice?");
    let draft = app.draft(&agent, &inbound, ADVICE);
    let size = app.audit_size();
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 409, "{}", r.text);
    let why = r.body["message"].as_str().unwrap();
    assert!(
        why.contains("step 2") && why.contains("group legal"),
        "{why}"
    );
    assert_eq!(app.audit_size(), size, "nothing recorded");
    let view = app
        .get(&format!("/api/v1/drafts/{draft}"), Some(&agent))
        .body;
    assert_eq!(view["state"], "draft");
    // Legal exists but its only member is compliance's only member: one person cannot be
    // both approvers.
    group(&app, &admin, "legal", &[&cora]);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 409, "{}", r.text);
    // A draft that matches no route takes the default: one reviewer, as before.
    let inbound = app.inbound(&agent, "m-4", "cust2", "Thanks");
    let plain = app.draft(&agent, &inbound, "Glad to help!");
    let r = app.post_empty(&format!("/api/v1/drafts/{plain}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["route"]["name"], "default");
    assert_eq!(r.body["route"]["steps"][0]["group"], Value::Null);
    assert_eq!(
        app.review(&cora, &plain, "approve", 1).body["state"],
        "approved"
    );
}

fn groups_are_managed_by_admins_and_recorded(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let agent = app.user("ana", &[Role::Agent]);
    let rui = app.user("rui", &[Role::Reviewer]);
    let size = app.audit_size();
    for (name, status) in [("Legal", 400), ("", 400), ("legal team", 400)] {
        let r = app.post("/api/v1/groups", Some(&admin), &json!({"name": name}));
        assert_eq!(r.status, status, "{name:?}: {}", r.text);
    }
    assert_eq!(
        app.post("/api/v1/groups", Some(&agent), &json!({"name": "legal"}))
            .status,
        403
    );
    assert_eq!(app.audit_size(), size, "refusals record nothing");
    let g = group(&app, &admin, "legal", &[&rui]);
    assert_eq!(g["members"][0]["username"], "rui");
    assert_eq!(
        app.post("/api/v1/groups", Some(&admin), &json!({"name": "legal"}))
            .status,
        409
    );
    // Only reviewers; unknown users and groups are 404; nothing changes on a refusal.
    let size = app.audit_size();
    let r = app.put(
        "/api/v1/groups/legal/members",
        Some(&admin),
        &json!({"members": [app.user_id(&agent)]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = app.put(
        "/api/v1/groups/legal/members",
        Some(&admin),
        &json!({"members": [unknown]}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app.put(
        "/api/v1/groups/nope/members",
        Some(&admin),
        &json!({"members": []}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app.put(
        "/api/v1/groups/legal/members",
        Some(&admin),
        &json!({"members": ["x"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(app.audit_size(), size);
    let list = app.get("/api/v1/groups", Some(&agent));
    assert_eq!(list.status, 200);
    assert_eq!(list.body["groups"][0]["name"], "legal");
    assert_eq!(
        list.body["groups"][0]["members"][0]["id"],
        app.user_id(&rui)
    );
    let created = app.entries_of("group.created");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor"], app.user_id(&admin));
    let updated = app.entries_of("group.updated");
    assert_eq!(updated[0]["data"]["members"], json!([app.user_id(&rui)]));
    assert_eq!(updated[0]["subject"], created[0]["subject"]);

    // `verify --state` holds the groups to the log: a member added behind it is named.
    let auditor = app.user("eva", &[Role::Auditor]);
    let state = app.get("/api/v1/audit/verify?state=true", Some(&auditor));
    assert_eq!(state.body["ok"], true, "{}", state.text);
    let other = app.user("lee", &[Role::Reviewer]);
    use diesel::RunQueryDsl;
    diesel::sql_query(format!(
        "INSERT INTO review_group_members (group_id, user_id, added_at) VALUES ('{}', '{}', '2026-12-07 00:00:00')",
        created[0]["subject"].as_str().unwrap(),
        app.user_id(&other)
    ))
    .execute(&mut *app.ctx.db.conn().unwrap())
    .unwrap();
    let state = app.get("/api/v1/audit/verify?state=true", Some(&auditor));
    assert_eq!(state.body["ok"], false, "{}", state.text);
    assert_eq!(
        state.body["state"][0]["table"], "review_group_members",
        "{}",
        state.text
    );
}

fn a_broken_routes_file_names_file_and_line_and_keeps_the_set(b: Backend) {
    let Some(app) = app_with_routes(b, ROUTES) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let before = app.get("/api/v1/policies", Some(&admin)).body["policy_version"].clone();
    assert!(
        app.get("/api/v1/policies", Some(&admin)).body["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "routes.toml" || f["name"] == "routes.toml"),
        "routes.toml is part of the set"
    );
    let dir = std::path::PathBuf::from(&app.settings.policies);
    // An escalated draft could pass with one approver: refused at line 2.
    std::fs::write(
        dir.join("routes.toml"),
        "\n[[route]]\nname = \"lax\"\ncategories = [\"promise\"]\n[[route.step]]\ngroup = \"compliance\"\napprovals = \"any\"\n",
    )
    .unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 422, "{}", r.text);
    let e = &r.body["errors"][0];
    assert_eq!(e["file"], "routes.toml");
    assert_eq!(e["line"], 2, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("at least two approvers"),
        "{e}"
    );
    assert_eq!(
        app.get("/api/v1/policies", Some(&admin)).body["policy_version"],
        before,
        "the set in force stays"
    );
    // A misspelt category, and a bad approvals value.
    std::fs::write(
        dir.join("routes.toml"),
        "[[route]]\nname = \"r\"\ncategories = [\"financial-advice\"]\n[[route.step]]\ngroup = \"a\"\napprovals = 2\n",
    )
    .unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["line"], 3, "{}", r.text);
    std::fs::write(
        dir.join("routes.toml"),
        "[[route]]\nname = \"r\"\n[[route.step]]\ngroup = \"a\"\napprovals = \"most\"\n",
    )
    .unwrap();
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 422);
    assert_eq!(r.body["errors"][0]["line"], 5, "{}", r.text);
    assert!(
        r.text.contains("\\\"any\\\", \\\"all\\\" or a number"),
        "{}",
        r.text
    );
}

/// An approval of a routed draft that is not posted in time: its approvals are void, the
/// route starts again from its first step (legal's `all` to be fixed anew), and compliance
/// is asked again.
fn an_expired_approval_starts_its_route_again(b: Backend) {
    let Some(app) = app_with_routes(b, ROUTES) else {
        return;
    };
    let admin = app.user("root", &[Role::Admin]);
    let cora = app.user_with_email("cora", &[Role::Reviewer], Some("cora@example.org"));
    let lea = app.user("lea", &[Role::Reviewer]);
    group(&app, &admin, "compliance", &[&cora]);
    group(&app, &admin, "legal", &[&lea]);
    let (_agent, draft, _) = submitted(&app, ADVICE);
    assert_eq!(app.review(&cora, &draft, "approve", 1).status, 200);
    assert_eq!(
        app.review(&lea, &draft, "approve", 1).body["state"],
        "approved"
    );
    // Mail jobs asking cora to review (they wait in the queue: running them here would post
    // the reply too).
    let asked = || {
        let mut conn = app.ctx.db.conn().unwrap();
        countersign::db::jobs::of_kind(&mut conn, countersign::app::mail::SendMail::KIND)
            .unwrap()
            .iter()
            .filter(|j| j.payload.contains("Review needed") && j.payload.contains("cora@"))
            .count()
    };
    let asked_before = asked();
    assert_eq!(asked_before, 1);
    // No worker posts it (none runs here); its time to live passes.
    app.advance(chrono::Duration::hours(25));
    assert_eq!(countersign::app::expiry::sweep(&app.ctx).unwrap(), 1);
    let cora = app.login("cora");
    let view = app
        .get(&format!("/api/v1/drafts/{draft}"), Some(&cora))
        .body;
    assert_eq!(view["state"], "pending_review");
    assert_eq!(view["route"]["name"], "financial-advice");
    assert_eq!(view["route"]["current_step"], 1);
    assert_eq!(view["route"]["steps"][0]["approved_by"], json!([]));
    assert_eq!(view["route"]["steps"][1]["approved_by"], json!([]));
    assert_eq!(view["route"]["may_act"], json!([app.user_id(&cora)]));
    assert_eq!(asked(), asked_before + 1, "compliance is asked again");
    // Legal may not approve before compliance has, again.
    let lea = app.login("lea");
    assert_eq!(app.review(&lea, &draft, "approve", 1).status, 403);
    assert_eq!(app.review(&cora, &draft, "approve", 1).status, 200);
    assert_eq!(
        app.review(&lea, &draft, "approve", 1).body["state"],
        "approved"
    );
}
