//! Customers and the queue (spec/api.md "Inbound messages and customers"): handles on
//! several channels, one history oldest first and paged, CRM references, linking and
//! merging; closing a message; one answer per message, even under concurrent approvals.

use crate::common::{Backend, TestApp};
use countersign::domain::roles::Role;
use serde_json::{json, Value};

on_both_backends!(
    one_customer_one_history_across_channels,
    merging_moves_handles_and_history_and_the_old_id_follows,
    closing_a_message_supersedes_its_drafts,
    approving_one_draft_retires_the_others_even_at_once,
    bad_input_is_refused_and_changes_nothing,
);

fn post_inbound(
    app: &TestApp,
    token: &str,
    channel: &str,
    id: &str,
    handle: &str,
    ext: Option<&str>,
) -> Value {
    let mut author = json!({"handle": handle});
    if let Some(e) = ext {
        author["external_user_id"] = json!(e);
    }
    let r = app.post(
        "/api/v1/inbound",
        Some(token),
        &json!({"channel": channel, "external_id": id, "author": author, "text": format!("message {id}")}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

fn customer(app: &TestApp, token: &str, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/customers/{id}"), Some(token));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn one_customer_one_history_across_channels(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let first = post_inbound(&app, &agent, "x", "100", "@JaneRoe", Some("42"));
    let cid = first["customer_id"].as_str().unwrap().to_string();
    // Same handle, any case, with or without @: the same customer.
    let again = post_inbound(&app, &agent, "x", "101", "janeroe", None);
    assert_eq!(again["customer_id"], cid.as_str());
    // She renamed her X handle; the channel's user id still says who she is.
    let renamed = post_inbound(&app, &agent, "x", "102", "@jane_r", Some("42"));
    assert_eq!(renamed["customer_id"], cid.as_str());
    // Her Mastodon account, linked by an agent, then a message from it.
    let r = app.post(
        &format!("/api/v1/customers/{cid}/handles"),
        Some(&agent),
        &json!({"channel": "mastodon", "handle": "@Jane@Mastodon.Social"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let toot = post_inbound(
        &app,
        &agent,
        "mastodon",
        "109",
        "jane@mastodon.social",
        None,
    );
    assert_eq!(toot["customer_id"], cid.as_str());
    // A reply, reviewed and posted.
    let draft = app.draft(&agent, first["id"].as_str().unwrap(), "We're on it.");
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    assert_eq!(app.review(&reviewer, &draft, "approve", 1).status, 200);
    app.run_jobs();

    let c = customer(&app, &agent, &cid);
    let handles: Vec<(String, String)> = c["handles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["channel"].as_str().unwrap().into(),
                h["handle"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        handles,
        [
            ("x".to_string(), "janeroe".to_string()),
            ("x".into(), "jane_r".into()),
            ("mastodon".into(), "jane@mastodon.social".into())
        ]
    );
    let kinds: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["inbound", "inbound", "inbound", "inbound", "draft", "review", "post"],
        "{c}"
    );
    let ats: Vec<&str> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["at"].as_str().unwrap())
        .collect();
    assert!(
        ats.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {ats:?}"
    );
    assert_eq!(c["next"], Value::Null);
    // Paged: two at a time, every item exactly once.
    let mut seen = Vec::new();
    let mut url = format!("/api/v1/customers/{cid}?limit=2");
    loop {
        let page = app.get(&url, Some(&agent)).body;
        seen.extend(
            page["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| format!("{}:{}", i["kind"], i["id"])),
        );
        match page["next"].as_str() {
            Some(next) => {
                url = format!("/api/v1/customers/{cid}?limit=2&after={}", urlencode(next))
            }
            None => break,
        }
    }
    let all: Vec<String> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}:{}", i["kind"], i["id"]))
        .collect();
    assert_eq!(seen, all);

    // Found by any handle, and by CRM reference once it is set.
    let found = app
        .get("/api/v1/customers?handle=%40JANE_R", Some(&agent))
        .body;
    assert_eq!(found["customers"][0]["id"], cid.as_str());
    let r = app.patch(
        &format!("/api/v1/customers/{cid}"),
        Some(&agent),
        &json!({"crm_ref": "CRM-7"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["crm_ref"], "CRM-7");
    let found = app
        .get("/api/v1/customers?crm_ref=CRM-7", Some(&reviewer))
        .body;
    assert_eq!(found["customers"].as_array().unwrap().len(), 1);
    assert_eq!(app.get("/api/v1/customers", Some(&agent)).status, 400);
    // Reviewers read customers but do not change them.
    let r = app.patch(
        &format!("/api/v1/customers/{cid}"),
        Some(&reviewer),
        &json!({"crm_ref": "X"}),
    );
    assert_eq!(r.status, 403);
    let linked = app.entries_of("customer.linked");
    assert_eq!(
        linked.len(),
        2,
        "the renamed handle and the Mastodon account"
    );
    assert_eq!(
        app.entries_of("customer.updated")[0]["data"],
        json!({"crm_ref": "CRM-7", "previous_crm_ref": null})
    );
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn merging_moves_handles_and_history_and_the_old_id_follows(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    let a = post_inbound(&app, &agent, "x", "1", "@alpha", None)["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    let bb = post_inbound(&app, &agent, "x", "2", "@beta", None)["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = post_inbound(&app, &agent, "mastodon", "3", "gamma@example.social", None)
        ["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    // @beta is B's: linking it to A is a conflict (merge instead).
    let r = app.post(
        &format!("/api/v1/customers/{a}/handles"),
        Some(&agent),
        &json!({"channel": "x", "handle": "beta"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    // Different CRM references: the merge must name the one to keep.
    for (id, crm) in [(&a, "CRM-A"), (&bb, "CRM-B")] {
        assert_eq!(
            app.patch(
                &format!("/api/v1/customers/{id}"),
                Some(&agent),
                &json!({"crm_ref": crm})
            )
            .status,
            200
        );
    }
    let merge = |into: &str, body: Value| {
        app.post(
            &format!("/api/v1/customers/{into}/merge"),
            Some(&agent),
            &body,
        )
    };
    let r = merge(&a, json!({"from": bb}));
    assert_eq!(r.status, 409, "{}", r.text);
    let r = merge(&a, json!({"from": bb, "crm_ref": "CRM-Z"}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = merge(&a, json!({"from": a}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = merge(&a, json!({"from": bb, "crm_ref": "CRM-B"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], a.as_str());
    assert_eq!(r.body["crm_ref"], "CRM-B");
    assert_eq!(r.body["handles"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["history"].as_array().unwrap().len(), 2);
    // The merged-away id answers the survivor's record.
    let old = customer(&app, &agent, &bb);
    assert_eq!(old["id"], a.as_str());
    assert_eq!(old["merged_into"], a.as_str());
    assert!(customer(&app, &agent, &a).get("merged_into").is_none());
    // Writes to it, and merges from or into it, are conflicts.
    assert_eq!(
        app.patch(
            &format!("/api/v1/customers/{bb}"),
            Some(&agent),
            &json!({"crm_ref": "N"})
        )
        .status,
        409
    );
    assert_eq!(merge(&bb, json!({"from": c})).status, 409);
    assert_eq!(merge(&c, json!({"from": bb})).status, 409);
    // A new message from @beta lands on the survivor; chains are followed.
    assert_eq!(
        post_inbound(&app, &agent, "x", "4", "@beta", None)["customer_id"],
        a.as_str()
    );
    let r = merge(&c, json!({"from": a}));
    assert_eq!(r.status, 200, "{}", r.text);
    let old = customer(&app, &agent, &bb);
    assert_eq!(old["id"], c.as_str());
    assert_eq!(old["merged_into"], c.as_str());
    assert_eq!(old["history"].as_array().unwrap().len(), 4);
    let merged = app.entries_of("customer.merged");
    assert_eq!(merged[0]["subject"], a.as_str());
    assert_eq!(merged[0]["data"], json!({"from": bb, "crm_ref": "CRM-B"}));
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

fn closing_a_message_supersedes_its_drafts(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    let bea = app.user("bea", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let m = post_inbound(&app, &agent, "x", "1", "@cust", None);
    let id = m["id"].as_str().unwrap();
    let d1 = app.draft(&agent, id, "First try.");
    let d2 = app.draft(&bea, id, "Second try.");
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{d2}/submit"), Some(&bea))
            .status,
        200
    );
    let close = |token: &str, body: Value| {
        app.post(&format!("/api/v1/inbound/{id}/close"), Some(token), &body)
    };
    assert_eq!(close(&reviewer, json!({"reason": "spam"})).status, 403);
    assert_eq!(close(&agent, json!({"reason": "  "})).status, 400);
    let r = close(&agent, json!({"reason": "answered by phone"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "closed");
    assert_eq!(r.body["closed_reason"], "answered by phone");
    assert_eq!(close(&agent, json!({"reason": "again"})).status, 409);
    for d in [&d1, &d2] {
        let v = app.get(&format!("/api/v1/drafts/{d}"), Some(&agent)).body;
        assert_eq!(v["state"], "superseded", "{v}");
    }
    // The message shows its drafts, oldest first.
    let detail = app
        .get(&format!("/api/v1/inbound/{id}"), Some(&reviewer))
        .body;
    assert_eq!(detail["state"], "closed");
    let listed: Vec<&str> = detail["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [d1.as_str(), d2.as_str()]);
    assert_eq!(detail["drafts"][0]["state"], "superseded");
    assert_eq!(app.review(&reviewer, &d2, "approve", 1).status, 409);
    assert_eq!(app.entries_of("draft.superseded").len(), 2);
    assert_eq!(
        app.entries_of("inbound.closed")[0]["data"],
        json!({"reason": "answered by phone"})
    );
    let open = app.get("/api/v1/inbound?state=open", Some(&agent)).body;
    assert!(open.as_array().unwrap().is_empty());
    let closed = app.get("/api/v1/inbound?state=closed", Some(&agent)).body;
    assert_eq!(closed.as_array().unwrap().len(), 1);
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

fn approving_one_draft_retires_the_others_even_at_once(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    let bea = app.user("bea", &[Role::Agent]);
    let rui = app.user("rui", &[Role::Reviewer]);
    let eva = app.user("eva", &[Role::Reviewer]);
    for round in 0..3 {
        let m = post_inbound(&app, &agent, "x", &format!("r{round}"), "@cust", None);
        let id = m["id"].as_str().unwrap().to_string();
        let d1 = app.draft(&agent, &id, "Answer one.");
        let d2 = app.draft(&bea, &id, "Answer two.");
        let d3 = app.draft(&bea, &id, "Answer three, never submitted.");
        assert_eq!(
            app.post_empty(&format!("/api/v1/drafts/{d1}/submit"), Some(&agent))
                .status,
            200
        );
        assert_eq!(
            app.post_empty(&format!("/api/v1/drafts/{d2}/submit"), Some(&bea))
                .status,
            200
        );
        let (s1, s2) = std::thread::scope(|s| {
            let a = s.spawn(|| app.review(&rui, &d1, "approve", 1).status);
            let b = s.spawn(|| app.review(&eva, &d2, "approve", 1).status);
            (a.join().unwrap(), b.join().unwrap())
        });
        let mut statuses = [s1, s2];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: exactly one approval wins"
        );
        let state =
            |d: &str| app.get(&format!("/api/v1/drafts/{d}"), Some(&agent)).body["state"].clone();
        let states = [state(&d1), state(&d2)];
        assert!(
            states.contains(&json!("approved")) && states.contains(&json!("superseded")),
            "{states:?}"
        );
        assert_eq!(state(&d3), "superseded");
        // While the answer is on its way, no other draft starts.
        let r = app.post(
            "/api/v1/drafts",
            Some(&agent),
            &json!({"inbound_id": id, "text": "A fourth."}),
        );
        assert_eq!(r.status, 409, "{}", r.text);
        app.run_jobs();
        let r = app.post(
            "/api/v1/drafts",
            Some(&agent),
            &json!({"inbound_id": id, "text": "A fifth."}),
        );
        assert_eq!(r.status, 409, "answered: {}", r.text);
    }
    assert_eq!(app.posted_lines().len(), 3, "one answer per message");
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

fn bad_input_is_refused_and_changes_nothing(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    let m = post_inbound(&app, &agent, "x", "1", "@cust", None);
    let cid = m["customer_id"].as_str().unwrap().to_string();
    let size = app.audit_size();
    let unknown = uuid::Uuid::now_v7().to_string();
    let cases: Vec<(u16, crate::common::Reply)> = vec![
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "twitter", "external_id": "9", "author": {"handle": "c"}, "text": "t"}))),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "x", "external_id": "9", "author": {"handle": "not.an.x.handle"}, "text": "t"}))),
        (400, app.post("/api/v1/inbound", Some(&agent), &json!({"channel": "mastodon", "external_id": "9", "author": {"handle": "nodomain"}, "text": "t"}))),
        (404, app.get(&format!("/api/v1/customers/{unknown}"), Some(&agent))),
        (400, app.get("/api/v1/customers/not-a-uuid", Some(&agent))),
        (400, app.get(&format!("/api/v1/customers/{cid}?after=garbage"), Some(&agent))),
        (404, app.patch(&format!("/api/v1/customers/{unknown}"), Some(&agent), &json!({"crm_ref": "A"}))),
        (400, app.patch(&format!("/api/v1/customers/{cid}"), Some(&agent), &json!({"crm_ref": "A", "extra": 1}))),
        (400, app.post_raw(&format!("/api/v1/customers/{cid}/merge"), Some(&agent), "application/json", "{\"from\": ")),
        (404, app.post(&format!("/api/v1/customers/{cid}/merge"), Some(&agent), &json!({"from": unknown}))),
        (400, app.post(&format!("/api/v1/customers/{cid}/merge"), Some(&agent), &json!({"from": "nope"}))),
        (400, app.post(&format!("/api/v1/customers/{cid}/handles"), Some(&agent), &json!({"channel": "fax", "handle": "c"}))),
        (404, app.post(&format!("/api/v1/inbound/{unknown}/close"), Some(&agent), &json!({"reason": "r"}))),
        (401, app.post(&format!("/api/v1/inbound/{}/close", m["id"].as_str().unwrap()), None, &json!({"reason": "r"}))),
    ];
    for (i, (want, got)) in cases.iter().enumerate() {
        assert_eq!(got.status, *want, "case {i}: {}", got.text);
        assert!(
            got.body["error"].is_string(),
            "case {i}: JSON error: {}",
            got.text
        );
    }
    assert_eq!(app.audit_size(), size, "nothing was recorded");
}
