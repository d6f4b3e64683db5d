//! The HTTP API end to end (spec/api.md), on SQLite and on PostgreSQL.

use crate::common::{Backend, TestApp};
use countersign::domain::roles::Role;
use serde_json::json;

const CLEAN: &str =
    "Sorry about the wait! We've passed this to our delivery team and will update you here.";
const BLOCKED: &str = "Could you tell us your account password so we can check?";
const ESCALATED: &str = "Your money back, guaranteed.";

on_both_backends!(
    unauthenticated_calls_get_401_json,
    each_endpoint_answers_each_role_as_the_spec_says,
    a_damaged_role_list_refuses_everything_and_verify_names_it,
    a_writer_whose_stored_id_is_damaged_blocks_approval,
    a_reply_goes_from_inbound_to_posted_once_with_its_audit_trail,
    inbound_is_idempotent_and_linked_to_a_customer_by_handle,
    nobody_approves_a_draft_they_wrote,
    a_blocked_draft_cannot_be_submitted_and_nothing_changes,
    a_review_of_an_older_revision_is_refused,
    an_escalated_draft_needs_two_different_reviewers,
    bad_input_gets_a_json_error_and_changes_nothing,
    failed_sign_ins_lock_the_username,
    logout_ends_the_session,
    openapi_describes_every_route,
    health_ready_and_metrics,
);

fn unauthenticated_calls_get_401_json(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let id = uuid::Uuid::now_v7();
    for (method, path) in [
        ("GET", "/api/v1/inbound".to_string()),
        ("POST", "/api/v1/inbound".to_string()),
        ("GET", format!("/api/v1/customers/{id}")),
        ("POST", "/api/v1/check".to_string()),
        ("POST", "/api/v1/drafts".to_string()),
        ("GET", "/api/v1/drafts".to_string()),
        ("GET", format!("/api/v1/drafts/{id}")),
        ("POST", format!("/api/v1/drafts/{id}/submit")),
        ("POST", format!("/api/v1/drafts/{id}/reviews")),
        ("GET", "/api/v1/audit".to_string()),
        ("GET", "/api/v1/audit/verify".to_string()),
        ("GET", "/api/v1/audit/key".to_string()),
        ("GET", "/api/v1/audit/checkpoint".to_string()),
        (
            "GET",
            "/api/v1/audit/proof/inclusion?seq=1&size=1".to_string(),
        ),
        (
            "GET",
            "/api/v1/audit/proof/consistency?from=1&to=1".to_string(),
        ),
        ("GET", "/api/v1/policies".to_string()),
        ("POST", "/api/v1/policies/reload".to_string()),
        ("POST", "/api/v1/logout".to_string()),
    ] {
        let r = match method {
            "GET" => app.get(&path, None),
            _ => app.post(&path, None, &json!({})),
        };
        assert_eq!(r.status, 401, "{method} {path}: {}", r.text);
        assert_eq!(r.body["error"], "unauthorized", "{method} {path}");
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        let r = match method {
            "GET" => app.get(&path, Some("not-a-real-token")),
            _ => app.post(&path, Some("not-a-real-token"), &json!({})),
        };
        assert_eq!(r.status, 401, "{method} {path} with a bad token");
    }
}

fn each_endpoint_answers_each_role_as_the_spec_says(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("agent", &[Role::Agent]);
    let reviewer = app.user("reviewer", &[Role::Reviewer]);
    let auditor = app.user("auditor", &[Role::Auditor]);
    let admin = app.user("admin", &[Role::Admin]);
    let roles = [
        ("agent", &agent),
        ("reviewer", &reviewer),
        ("auditor", &auditor),
        ("admin", &admin),
    ];

    // Inbound: agents and admins may record posts; everyone reads the queue.
    for (name, token) in roles {
        let r = app.post(
            "/api/v1/inbound",
            Some(token),
            &json!({"channel": "x", "external_id": format!("m-{name}"), "author": {"handle": "@cust"}, "text": "Where is my parcel?"}),
        );
        let expected = if matches!(name, "agent" | "admin") {
            201
        } else {
            403
        };
        assert_eq!(r.status, expected, "POST /inbound as {name}: {}", r.text);
        assert_eq!(
            app.get("/api/v1/inbound?state=open", Some(token)).status,
            200,
            "GET /inbound as {name}"
        );
        assert_eq!(
            app.post("/api/v1/check", Some(token), &json!({"text": CLEAN}))
                .status,
            200,
            "check as {name}"
        );
        assert_eq!(
            app.get("/api/v1/drafts", Some(token)).status,
            200,
            "GET /drafts as {name}"
        );
        let audit = if matches!(name, "auditor" | "admin") {
            200
        } else {
            403
        };
        assert_eq!(
            app.get("/api/v1/audit", Some(token)).status,
            audit,
            "GET /audit as {name}"
        );
        assert_eq!(
            app.get("/api/v1/audit/verify", Some(token)).status,
            audit,
            "verify as {name}"
        );
        assert_eq!(
            app.get("/api/v1/policies", Some(token)).status,
            audit,
            "GET /policies as {name}"
        );
        let reload = if name == "admin" { 200 } else { 403 };
        assert_eq!(
            app.post_empty("/api/v1/policies/reload", Some(token))
                .status,
            reload,
            "reload as {name}"
        );
    }
    let inbound = app.inbound(&agent, "m-main", "@cust", "Where is my parcel?");
    let customer = app
        .get(&format!("/api/v1/inbound/{inbound}"), Some(&agent))
        .body["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (name, token) in roles {
        assert_eq!(
            app.get(&format!("/api/v1/customers/{customer}"), Some(token))
                .status,
            200,
            "customer as {name}"
        );
        let r = app.post(
            "/api/v1/drafts",
            Some(token),
            &json!({"inbound_id": inbound, "text": CLEAN}),
        );
        let expected = if name == "agent" { 201 } else { 403 };
        assert_eq!(r.status, expected, "POST /drafts as {name}: {}", r.text);
    }
    let draft = app.draft(&agent, &inbound, CLEAN);
    for (name, token) in [
        ("reviewer", &reviewer),
        ("auditor", &auditor),
        ("admin", &admin),
    ] {
        assert_eq!(
            app.put(
                &format!("/api/v1/drafts/{draft}"),
                Some(token),
                &json!({"text": CLEAN})
            )
            .status,
            403,
            "PUT as {name}"
        );
        assert_eq!(
            app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(token))
                .status,
            403,
            "submit as {name}"
        );
    }
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    for (name, token) in [("agent", &agent), ("auditor", &auditor), ("admin", &admin)] {
        assert_eq!(
            app.review(token, &draft, "approve", 1).status,
            403,
            "approve as {name}"
        );
    }
    for (name, token) in roles {
        assert_eq!(
            app.get(&format!("/api/v1/drafts/{draft}"), Some(token))
                .status,
            200,
            "GET draft as {name}"
        );
    }
    assert_eq!(app.review(&reviewer, &draft, "approve", 1).status, 200);
}

fn a_damaged_role_list_refuses_everything_and_verify_names_it(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    // A role name the code does not know (a removed role, a hand edit) must not be read as
    // "fewer roles": the user's row fails to load, so every request of theirs is refused.
    let token = app.user("ghost", &[Role::Agent, Role::Admin]);
    let auditor = app.user("aud", &[Role::Auditor]);
    {
        use diesel::RunQueryDsl;
        let mut conn = app.ctx.db.conn().unwrap();
        diesel::sql_query("UPDATE users SET roles = 'agent,wizard' WHERE username = 'ghost'")
            .execute(&mut *conn)
            .unwrap();
    }
    let before = app.audit_size();
    for path in ["/api/v1/inbound", "/api/v1/users", "/api/v1/audit"] {
        let r = app.get(path, Some(&token));
        assert_eq!(r.status, 500, "{path}: {}", r.text);
        assert_eq!(r.body["error"], "internal", "{path}: {}", r.text);
    }
    let r = app.post(
        "/api/v1/inbound",
        Some(&token),
        &json!({"channel": "x", "external_id": "1", "author": {"handle": "@c"}, "text": "hi"}),
    );
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(
        app.audit_size(),
        before,
        "nothing is recorded for a refused request"
    );
    // The replay sees the row the log does not explain.
    let v = app.get("/api/v1/audit/verify?state=true", Some(&auditor));
    assert_eq!(v.body["ok"], false, "{}", v.text);
    let state = v.body["state"].as_array().expect("state mismatches");
    assert!(
        state
            .iter()
            .any(|m| m["table"] == "users" && m["reason"].as_str().unwrap_or("").contains("roles")),
        "{}",
        v.text
    );
}

fn a_writer_whose_stored_id_is_damaged_blocks_approval(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let inbound = app.inbound(&agent, "1900000000000000077", "@c77", "Where is my parcel?");
    let draft = app.draft(&agent, &inbound, "Sorry for the wait, we are checking now.");
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    // A writer the four-eyes rule cannot read must not drop out of the list of writers:
    // the approval is refused rather than decided without them.
    {
        use diesel::RunQueryDsl;
        let mut conn = app.ctx.db.conn().unwrap();
        // The foreign key wants a users row under that id.
        diesel::sql_query(
            "INSERT INTO users (id, username, password_hash, roles, created_at) \
             VALUES ('somebody', 'somebody', 'x', 'agent', CURRENT_TIMESTAMP)",
        )
        .execute(&mut *conn)
        .unwrap();
        diesel::sql_query(format!(
            "UPDATE draft_revisions SET author_id = 'somebody' WHERE draft_id = '{draft}'"
        ))
        .execute(&mut *conn)
        .unwrap();
    }
    let before = app.audit_size();
    let r = app.review(&reviewer, &draft, "approve", 1);
    assert_eq!(r.status, 500, "{}", r.text);
    assert_eq!(r.body["error"], "internal", "{}", r.text);
    assert_eq!(app.audit_size(), before, "no review is recorded");
    assert!(app.entries_of("review.approved").is_empty());
    assert_eq!(app.run_jobs(), 0, "nothing was queued for posting");
}

fn a_reply_goes_from_inbound_to_posted_once_with_its_audit_trail(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let auditor = app.user("aud", &[Role::Auditor]);

    let inbound = app.inbound(
        &agent,
        "1900000000000000001",
        "@Customer42",
        "My order never arrived!",
    );
    let open = app.get("/api/v1/inbound?state=open", Some(&agent));
    assert_eq!(open.body.as_array().unwrap().len(), 1);

    let r = app.post(
        "/api/v1/drafts",
        Some(&agent),
        &json!({"inbound_id": inbound, "text": CLEAN}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["state"], "draft");
    assert_eq!(r.body["revision"], 1);
    assert_eq!(r.body["check"]["verdict"], "pass");
    assert!(r.body["check"]["policy_version"].as_str().unwrap().len() == 64);
    let draft = r.body["id"].as_str().unwrap().to_string();

    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "pending_review");
    let pending = app.get("/api/v1/drafts?state=pending_review", Some(&reviewer));
    assert_eq!(pending.body.as_array().unwrap().len(), 1);

    let r = app.review(&reviewer, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(matches!(
        r.body["state"].as_str(),
        Some("approved" | "posted")
    ));

    let posted = app.wait_for_state(&agent, &draft, "posted");
    let post_id = posted["posting"]["post_id"]
        .as_str()
        .expect("post id")
        .to_string();
    let lines = app.posted_lines();
    assert_eq!(lines.len(), 1, "posted exactly once: {lines:?}");
    assert_eq!(lines[0]["post_id"], post_id.as_str());
    assert_eq!(lines[0]["draft_id"], draft.as_str());
    assert_eq!(lines[0]["in_reply_to"], "1900000000000000001");
    assert_eq!(lines[0]["text"], CLEAN);
    assert!(lines[0]["at"].as_str().is_some());

    let answered = app.get(&format!("/api/v1/inbound/{inbound}"), Some(&agent));
    assert_eq!(answered.body["state"], "answered");
    assert!(app
        .get("/api/v1/inbound?state=open", Some(&agent))
        .body
        .as_array()
        .unwrap()
        .is_empty());

    // The trail, in order, each about the right subject.
    let actions: Vec<(String, Option<String>)> = app
        .audit_actions()
        .into_iter()
        .filter(|(a, _)| !a.starts_with("user.") && !a.starts_with("policy."))
        .collect();
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "customer.created",
            "inbound.received",
            "draft.created",
            "draft.submitted",
            "review.approved",
            "post.succeeded"
        ]
    );
    assert_eq!(actions[1].1.as_deref(), Some(inbound.as_str()));
    for (_, subject) in &actions[2..] {
        assert_eq!(subject.as_deref(), Some(draft.as_str()));
    }

    // Auditors read the same through the API, with filters and a cursor.
    let page = app.get(
        &format!("/api/v1/audit?subject={draft}&limit=2"),
        Some(&auditor),
    );
    assert_eq!(page.status, 200, "{}", page.text);
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["action"], "draft.created");
    assert_eq!(entries[0]["data"]["text"], CLEAN);
    assert_eq!(entries[0]["data"]["check"]["verdict"], "pass");
    let next = page.body["next"].as_str().expect("a cursor").to_string();
    let page2 = app.get(
        &format!("/api/v1/audit?subject={draft}&after={next}"),
        Some(&auditor),
    );
    let names2: Vec<&str> = page2.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(names2, ["review.approved", "post.succeeded"]);
    assert!(page2.body["next"].is_null());
    let by_action = app.get("/api/v1/audit?action=post.succeeded", Some(&auditor));
    assert_eq!(by_action.body["entries"][0]["actor"], "system");
    // An X message, and no network account: the log channel posted it, and the log says so.
    assert_eq!(
        by_action.body["entries"][0]["data"]["channel"], "log",
        "{}",
        by_action.text
    );

    let v = app.get("/api/v1/audit/verify", Some(&auditor));
    assert_eq!(v.body["ok"], true, "{}", v.text);
    assert_eq!(v.body["size"], app.audit_size());
}

fn inbound_is_idempotent_and_linked_to_a_customer_by_handle(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let body = json!({"channel": "x", "external_id": "555", "author": {"handle": "@Maria_R", "external_user_id": "99"}, "text": "hello", "received_at": "2026-11-29T09:00:00Z"});
    let first = app.post("/api/v1/inbound", Some(&agent), &body);
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["due_at"], "2026-11-29T11:00:00.000000Z");
    let size = app.audit_size();
    let again = app.post("/api/v1/inbound", Some(&agent), &body);
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(app.audit_size(), size, "a repeat records nothing");

    let other = app.post(
        "/api/v1/inbound",
        Some(&agent),
        &json!({"channel": "x", "external_id": "556", "author": {"handle": "maria_r"}, "text": "still waiting"}),
    );
    assert_eq!(other.status, 201);
    assert_eq!(
        other.body["customer_id"], first.body["customer_id"],
        "same handle, same customer"
    );
    let customer = app.get(
        &format!(
            "/api/v1/customers/{}",
            first.body["customer_id"].as_str().unwrap()
        ),
        Some(&agent),
    );
    assert_eq!(customer.status, 200);
    assert_eq!(customer.body["handles"][0]["handle"], "maria_r");
    assert_eq!(customer.body["handles"][0]["external_user_id"], "99");
    assert_eq!(customer.body["history"].as_array().unwrap().len(), 2);

    let stranger = app.inbound(&agent, "557", "@someone_else", "hi");
    let s = app.get(&format!("/api/v1/inbound/{stranger}"), Some(&agent));
    assert_ne!(s.body["customer_id"], first.body["customer_id"]);

    // The queue is soonest due first.
    let queue = app.get("/api/v1/inbound", Some(&agent));
    let due: Vec<&str> = queue
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["due_at"].as_str().unwrap())
        .collect();
    let mut sorted = due.clone();
    sorted.sort();
    assert_eq!(due, sorted);
    assert_eq!(queue.body[0]["external_id"], "555");
}

fn nobody_approves_a_draft_they_wrote(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    // Holding both roles does not help.
    let both = app.user("both", &[Role::Agent, Role::Reviewer]);
    let inbound = app.inbound(&both, "1", "@c", "help");
    let draft = app.draft(&both, &inbound, CLEAN);
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&both))
            .status,
        200
    );
    let size = app.audit_size();
    for decision in ["approve", "reject", "request_changes"] {
        let r = app.review(&both, &draft, decision, 1);
        assert_eq!(r.status, 403, "{decision}: {}", r.text);
        assert_eq!(r.body["error"], "forbidden");
    }
    assert_eq!(app.audit_size(), size);
    let r = app.get(&format!("/api/v1/drafts/{draft}"), Some(&both));
    assert_eq!(r.body["state"], "pending_review");
    assert!(r.body["reviews"].as_array().unwrap().is_empty());
}

fn a_blocked_draft_cannot_be_submitted_and_nothing_changes(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let r = app.post(
        "/api/v1/drafts",
        Some(&agent),
        &json!({"inbound_id": inbound, "text": BLOCKED}),
    );
    assert_eq!(
        r.status, 201,
        "a blocked draft may be written, not submitted"
    );
    assert_eq!(r.body["check"]["verdict"], "block");
    let draft = r.body["id"].as_str().unwrap().to_string();
    let size = app.audit_size();
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "blocked");
    assert_eq!(r.body["check"]["verdict"], "block");
    let findings = r.body["check"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["category"] == "credentials"),
        "{findings:?}"
    );
    assert_eq!(
        app.audit_size(),
        size,
        "a refused submission records nothing"
    );
    assert_eq!(
        app.get(&format!("/api/v1/drafts/{draft}"), Some(&agent))
            .body["state"],
        "draft"
    );

    // Fixing the text makes it submittable.
    let r = app.put(
        &format!("/api/v1/drafts/{draft}"),
        Some(&agent),
        &json!({"text": CLEAN}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["revision"], 2);
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
}

fn a_review_of_an_older_revision_is_refused(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let draft = app.draft(&agent, &inbound, CLEAN);
    app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    let r = app.review(&reviewer, &draft, "request_changes", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "changes_requested");
    let r = app.put(
        &format!("/api/v1/drafts/{draft}"),
        Some(&agent),
        &json!({"text": "Thanks, we're on it and will update you here."}),
    );
    assert_eq!(r.body["state"], "draft");
    assert_eq!(r.body["revision"], 2);
    app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    let size = app.audit_size();
    let stale = app.review(&reviewer, &draft, "approve", 1);
    assert_eq!(stale.status, 409, "{}", stale.text);
    assert_eq!(stale.body["error"], "conflict");
    assert_eq!(app.audit_size(), size);
    assert_eq!(app.review(&reviewer, &draft, "approve", 2).status, 200);
}

fn an_escalated_draft_needs_two_different_reviewers(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let first = app.user("rui", &[Role::Reviewer]);
    let second = app.user("eva", &[Role::Reviewer]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let r = app.post(
        "/api/v1/drafts",
        Some(&agent),
        &json!({"inbound_id": inbound, "text": ESCALATED}),
    );
    assert_eq!(r.body["check"]["verdict"], "escalate", "{}", r.text);
    let draft = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    let r = app.review(&first, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["state"], "pending_review",
        "one approval is not enough"
    );
    assert_eq!(r.body["approvals_needed"], 2);
    let again = app.review(&first, &draft, "approve", 1);
    assert_eq!(again.status, 409, "the same reviewer twice: {}", again.text);
    let r = app.review(&second, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    app.wait_for_state(&agent, &draft, "posted");
    assert_eq!(app.posted_lines().len(), 1);
}

fn bad_input_gets_a_json_error_and_changes_nothing(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let draft = app.draft(&agent, &inbound, CLEAN);
    let size = app.audit_size();
    let unknown = uuid::Uuid::now_v7();
    let cases: Vec<(u16, crate::common::Reply)> = vec![
        (400, app.post_raw("/api/v1/drafts", Some(&agent), "application/json", "{\"inbound_id\": ")),
        (400, app.post_raw("/api/v1/drafts", Some(&agent), "text/plain", "hello")),
        (400, app.post("/api/v1/drafts", Some(&agent), &json!({"inbound_id": inbound}))),
        (400, app.post("/api/v1/drafts", Some(&agent), &json!({"inbound_id": "not-a-uuid", "text": "x"}))),
        (400, app.post("/api/v1/drafts", Some(&agent), &json!({"inbound_id": inbound, "text": ""}))),
        (400, app.post("/api/v1/drafts", Some(&agent), &json!({"inbound_id": inbound, "text": "x", "extra": 1}))),
        (404, app.post("/api/v1/drafts", Some(&agent), &json!({"inbound_id": unknown, "text": "x"}))),
        (400, app.get("/api/v1/drafts/not-a-uuid", Some(&agent))),
        (404, app.get(&format!("/api/v1/drafts/{unknown}"), Some(&agent))),
        (400, app.get("/api/v1/drafts?state=flying", Some(&agent))),
        (400, app.get("/api/v1/inbound?limit=0", Some(&agent))),
        (400, app.get("/api/v1/inbound?limit=abc", Some(&agent))),
        (400, app.review(&reviewer, &draft, "maybe", 1)),
        (409, app.review(&reviewer, &draft, "approve", 1)),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "x", "external_id": "2", "author": {"handle": ""}, "text": "hi"}))),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "x", "external_id": "2", "author": {"handle": "a"}, "text": "hi", "received_at": "yesterday"}))),
        (400, app.post("/api/v1/login", None, &json!({"username": "ana"}))),
        (400, app.post("/api/v1/drafts", Some(&agent), &json!({"inbound_id": inbound, "text": "nul \u{0} inside"}))),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "x", "external_id": "3\u{0}", "author": {"handle": "a"}, "text": "hi"}))),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "x", "external_id": "3", "author": {"handle": "a\u{0}"}, "text": "hi"}))),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "x", "external_id": "3", "author": {"handle": "a"}, "text": "\u{0}"}))),
        (400, app.put(&format!("/api/v1/drafts/{draft}"), Some(&agent), &json!({"text": "a\u{0}"}))),
        (400, app.post(&format!("/api/v1/drafts/{draft}/reviews"), Some(&reviewer), &json!({"decision": "approve", "comment": "\u{0}", "revision": 1}))),
        (404, app.get("/api/v1/nothing-here", Some(&agent))),
        (404, app.get("/nothing-here", None)),
    ];
    for (i, (expected, r)) in cases.iter().enumerate() {
        assert_eq!(r.status, *expected, "case {i}: {}", r.text);
        assert!(
            r.body["error"].is_string(),
            "case {i}: not a JSON error: {}",
            r.text
        );
        assert!(r.body["message"].is_string(), "case {i}");
    }
    assert_eq!(app.audit_size(), size, "bad input changed nothing");
    let auditor = app.user("aud", &[Role::Auditor]);
    let size_now = app.audit_size();
    for query in [
        "subject=%00",
        "since=yesterday",
        "after=x",
        "limit=5000",
        "colour=red",
    ] {
        let r = app.get(&format!("/api/v1/audit?{query}"), Some(&auditor));
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert!(r.body["error"].is_string());
    }
    assert_eq!(app.audit_size(), size_now, "bad queries changed nothing");
    // A name no user can have is just a failed sign-in, never a fault.
    let r = app.post(
        "/api/v1/login",
        None,
        &json!({"username": "ana\u{0}", "password": "x"}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let d = app.get(&format!("/api/v1/drafts/{draft}"), Some(&agent));
    assert_eq!(d.body["revision"], 1);
    assert_eq!(d.body["state"], "draft");
}

fn failed_sign_ins_lock_the_username(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.user("ana", &[Role::Agent]);
    let auditor = app.user("aud", &[Role::Auditor]);
    let ana_id = {
        let t = app.login("ana");
        app.user_id(&t)
    };
    for i in 0..5 {
        let r = app.post(
            "/api/v1/login",
            None,
            &json!({"username": "ana", "password": format!("Tr0ub4dor&{i}")}),
        );
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
        assert_eq!(r.body["error"], "unauthorized");
    }
    let r = app.post(
        "/api/v1/login",
        None,
        &json!({"username": "ana", "password": crate::common::PASSWORD}),
    );
    assert_eq!(
        r.status, 429,
        "locked even with the right password: {}",
        r.text
    );
    assert_eq!(r.body["error"], "too_many_requests");
    // Another user is not affected.
    assert_eq!(
        app.post(
            "/api/v1/login",
            None,
            &json!({"username": "aud", "password": crate::common::PASSWORD})
        )
        .status,
        200
    );

    // An unknown username: the failure is recorded without the name that was typed.
    let r = app.post(
        "/api/v1/login",
        None,
        &json!({"username": "nosuchperson", "password": "whatever!"}),
    );
    assert_eq!(r.status, 401);
    let page = app.get("/api/v1/audit?action=user.login_failed", Some(&auditor));
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    for e in &entries[..5] {
        assert_eq!(e["subject"], ana_id.as_str());
        assert!(
            !e["body"].as_str().unwrap().contains("Tr0ub4dor"),
            "no password in the log"
        );
    }
    assert!(entries[5]["subject"].is_null());
    assert!(!entries[5]["body"]
        .as_str()
        .unwrap()
        .contains("nosuchperson"));
}

fn logout_ends_the_session(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let token = app.user("ana", &[Role::Agent]);
    assert_eq!(app.get("/api/v1/drafts", Some(&token)).status, 200);
    assert_eq!(app.post_empty("/api/v1/logout", Some(&token)).status, 204);
    assert_eq!(app.get("/api/v1/drafts", Some(&token)).status, 401);
}

fn openapi_describes_every_route(b: Backend) {
    // With the X webhook configured, so that its routes are served too.
    let Some(app) = TestApp::spawn_with(b, &[("COUNTERSIGN_X_WEBHOOK_SECRET", "s3cret-hook")])
    else {
        return;
    };
    let r = app.get("/api/v1/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = &r.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "OpenAPI 3: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let routes = [
        ("post", "/api/v1/login"),
        ("post", "/api/v1/logout"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("patch", "/api/v1/users/{id}"),
        ("post", "/api/v1/users/{id}/password-reset"),
        ("post", "/api/v1/password"),
        ("get", "/api/v1/groups"),
        ("post", "/api/v1/groups"),
        ("put", "/api/v1/groups/{name}/members"),
        ("post", "/api/v1/inbound"),
        ("get", "/api/v1/inbound"),
        ("get", "/api/v1/inbound/{id}"),
        ("post", "/api/v1/inbound/{id}/close"),
        ("get", "/api/v1/customers"),
        ("get", "/api/v1/customers/{id}"),
        ("patch", "/api/v1/customers/{id}"),
        ("post", "/api/v1/customers/{id}/handles"),
        ("post", "/api/v1/customers/{id}/merge"),
        ("get", "/api/v1/hours"),
        ("post", "/api/v1/check"),
        ("post", "/api/v1/drafts"),
        ("get", "/api/v1/drafts"),
        ("get", "/api/v1/drafts/{id}"),
        ("put", "/api/v1/drafts/{id}"),
        ("post", "/api/v1/drafts/{id}/submit"),
        ("post", "/api/v1/drafts/{id}/reviews"),
        ("post", "/api/v1/drafts/{id}/retry"),
        ("get", "/api/v1/audit"),
        ("get", "/api/v1/audit/verify"),
        ("get", "/api/v1/audit/key"),
        ("get", "/api/v1/audit/checkpoint"),
        ("get", "/api/v1/audit/proof/inclusion"),
        ("get", "/api/v1/audit/proof/consistency"),
        ("get", "/api/v1/audit/evidence/{draft_id}"),
        ("get", "/api/v1/policies"),
        ("post", "/api/v1/policies/reload"),
        ("post", "/api/v1/policies/preview"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/channels/x/webhook"),
        ("post", "/api/v1/channels/x/webhook"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (method, path) in routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from openapi.json"
        );
    }
    // Every status the server can send is documented: 401 and 403 wherever a token is
    // needed, 400 wherever there is input, 429 everywhere, 429 and 503 on login.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let answers = op["responses"].as_object().unwrap();
            let protected = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let has_input = op
                .get("parameters")
                .and_then(|p| p.as_array())
                .is_some_and(|p| !p.is_empty())
                || op.get("requestBody").is_some();
            for (needed, code) in [
                (protected, "401"),
                (protected, "403"),
                (has_input, "400"),
                (true, "429"),
            ] {
                assert!(
                    !needed || answers.contains_key(code),
                    "{method} {path} does not document {code}"
                );
            }
        }
    }
    let login = &paths["/api/v1/login"]["post"]["responses"];
    assert!(
        login.get("429").is_some() && login.get("503").is_some(),
        "{login}"
    );
    // And nothing in the description is a route the server does not have.
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        routes.len(),
        "openapi.json lists routes the test does not know: {:?}",
        paths.keys()
    );
    for (method, path) in routes {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{draft_id}", &uuid::Uuid::now_v7().to_string());
        let r = match method {
            "get" => app.get(&concrete, None),
            "put" => app.put(&concrete, None, &json!({})),
            "patch" => app.patch(&concrete, None, &json!({})),
            _ => app.post(&concrete, None, &json!({})),
        };
        assert_ne!(
            r.status, 404,
            "{method} {path} is documented but not served: {}",
            r.text
        );
        assert!(r.status < 500, "{method} {path}: {}", r.text);
    }
}

fn health_ready_and_metrics(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    assert_eq!(app.get("/healthz", None).status, 200);
    assert_eq!(app.get("/readyz", None).status, 200);
    app.get("/api/v1/drafts", None);
    let m = app.get("/metrics", None);
    assert_eq!(m.status, 200);
    assert!(m.text.contains("countersign_http_requests_total{method=\"GET\",route=\"/api/v1/drafts\",status=\"401\"} 1"), "{}", m.text);
    assert!(m
        .text
        .contains("countersign_http_request_duration_seconds_bucket"));
    // SQLite: the group-commit writer's commits and the writes they carried (the users and
    // the start-up's entries are writes already).
    let counter = |name: &str| -> Option<u64> {
        m.text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
    };
    let commits = counter("countersign_sqlite_commits_total");
    let writes = counter("countersign_sqlite_committed_writes_total");
    match b {
        Backend::Sqlite => {
            let (commits, writes) = (commits.unwrap(), writes.unwrap());
            assert!(commits > 0 && writes >= commits, "{commits} {writes}");
        }
        Backend::Postgres => assert_eq!((commits, writes), (None, None)),
    }
}

#[test]
fn expired_sessions_and_old_failures_are_pruned() {
    let Some(app) = TestApp::spawn(Backend::Sqlite) else {
        return;
    };
    let token = app.user("ana", &[Role::Agent]);
    app.post(
        "/api/v1/login",
        None,
        &json!({"username": "ana", "password": "wrong password"}),
    );
    let count = |table: &str| -> i64 {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = app.ctx.db.conn().unwrap();
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<N>(&mut *conn)
            .unwrap()
            .n
    };
    let exec = |sql: &str| {
        use diesel::RunQueryDsl;
        let mut conn = app.ctx.db.conn().unwrap();
        diesel::sql_query(sql).execute(&mut *conn).unwrap();
    };
    let mut conn = app.ctx.db.conn().unwrap();
    countersign::app::users::prune_expired(&mut conn, &app.ctx.clock).unwrap();
    assert_eq!(
        (count("sessions"), count("login_failures")),
        (1, 1),
        "nothing current is pruned"
    );
    exec("UPDATE sessions SET expires_at = '2000-01-01 00:00:00'");
    exec("UPDATE login_failures SET at = '2000-01-01 00:00:00'");
    countersign::app::users::prune_expired(&mut conn, &app.ctx.clock).unwrap();
    assert_eq!((count("sessions"), count("login_failures")), (0, 0));
    assert_eq!(app.get("/api/v1/drafts", Some(&token)).status, 401);
}

#[test]
fn twenty_failed_sign_ins_from_one_address_lock_that_address() {
    let Some(app) = TestApp::spawn(Backend::Sqlite) else {
        return;
    };
    app.user("ana", &[Role::Agent]);
    for i in 0..20 {
        // Five names, four tries each: no username reaches its own limit of five.
        let r = app.post(
            "/api/v1/login",
            None,
            &json!({"username": format!("someone{}", i % 5), "password": "not it at all"}),
        );
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
    }
    let r = app.post(
        "/api/v1/login",
        None,
        &json!({"username": "ana", "password": crate::common::PASSWORD}),
    );
    assert_eq!(r.status, 429, "{}", r.text);
}
