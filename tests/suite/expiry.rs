//! Approval expiry (`COUNTERSIGN_APPROVAL_TTL_HOURS`): an approval not posted within its time
//! to live goes back to review, its approvals void, the checks run again and `review.expired`
//! recorded; a post job a worker holds is not expired under it.

use crate::common::{Backend, TestApp};
use chrono::Duration;
use countersign::domain::roles::Role;
use serde_json::Value;

on_both_backends!(
    an_approval_not_posted_in_time_goes_back_to_review,
    a_post_a_worker_holds_is_not_expired_under_it,
    an_expired_approval_the_new_policies_block_goes_to_its_author,
);

struct Desk {
    draft: String,
}

fn approved(app: &TestApp) -> Desk {
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user_with_email("rui", &[Role::Reviewer], Some("rui@example.com"));
    let inbound = app.inbound(
        &agent,
        "1900000000000000321",
        "@cust",
        "Where is my parcel?",
    );
    let draft = app.draft(&agent, &inbound, "Sorry! It is on its way.");
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.review(&reviewer, &draft, "approve", 1);
    assert_eq!(r.body["state"], "approved", "{}", r.text);
    Desk { draft }
}

/// The draft as its author sees it (signed in afresh: hours pass in these tests).
fn state(app: &TestApp, d: &Desk) -> Value {
    let token = app.login("ana");
    app.get(&format!("/api/v1/drafts/{}", d.draft), Some(&token))
        .body
}

fn an_approval_not_posted_in_time_goes_back_to_review(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[("COUNTERSIGN_APPROVAL_TTL_HOURS", "2")])
    else {
        return;
    };
    let d = approved(&app);
    // The channel is down for a while: nothing posts. Within the time to live, nothing expires.
    app.advance(Duration::minutes(119));
    assert_eq!(countersign::app::expiry::sweep(&app.ctx).unwrap(), 0);
    assert_eq!(state(&app, &d)["state"], "approved");
    app.advance(Duration::minutes(2));
    let before = app.mail_files().len();
    assert_eq!(countersign::app::expiry::sweep(&app.ctx).unwrap(), 1);
    assert_eq!(
        countersign::app::expiry::sweep(&app.ctx).unwrap(),
        0,
        "once"
    );
    let v = state(&app, &d);
    assert_eq!(v["state"], "pending_review", "{v}");
    let expired = app.entries_of("review.expired");
    assert_eq!(expired.len(), 1);
    let data = &expired[0]["data"];
    assert_eq!(data["state"], "pending_review");
    assert_eq!(data["ttl_hours"], 2);
    assert_eq!(data["revision"], 1);
    assert_eq!(
        data["check"]["verdict"], "pass",
        "the checks ran again: {data}"
    );
    // Nothing is posted by the old approval…
    assert!(app.run_jobs() >= 1, "the reviewer's mail is sent");
    assert!(
        app.posted_lines().is_empty(),
        "the cancelled post job posts nothing"
    );
    assert!(
        app.mail_files()[before..]
            .iter()
            .any(|m| m.contains("Subject: Review needed:")),
        "the reviewers hear that it waits again"
    );
    // …and it counts no more: a new approval is needed, and then it posts, once.
    let r = app.review(&app.login("rui"), &d.draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "approved");
    app.run_jobs();
    assert_eq!(state(&app, &d)["state"], "posted");
    assert_eq!(app.posted_lines().len(), 1);
    let v = app.get(
        "/api/v1/audit/verify?state=true",
        Some(&app.user("aud", &[Role::Auditor])),
    );
    assert_eq!(v.body["ok"], true, "{}", v.text);
}

fn a_post_a_worker_holds_is_not_expired_under_it(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let d = approved(&app);
    // A worker takes the post job (its lease outlives the time to live, as a slow network
    // call would hold it at the moment the approval's time runs out).
    let t = app.ctx.clock.now().naive_utc();
    let mut conn = app.ctx.db.conn().unwrap();
    let leased = countersign::db::jobs::claim_next(
        &mut conn,
        &["post"],
        &[],
        "a worker posting now",
        t,
        t + Duration::hours(30),
    )
    .unwrap();
    assert!(leased.is_some());
    app.advance(Duration::hours(25));
    assert_eq!(countersign::app::expiry::sweep(&app.ctx).unwrap(), 0);
    assert_eq!(state(&app, &d)["state"], "approved", "left to the worker");
    assert!(app.entries_of("review.expired").is_empty());
    // Once the lease is gone (the worker died), the approval expires.
    app.advance(Duration::hours(6));
    assert_eq!(countersign::app::expiry::sweep(&app.ctx).unwrap(), 1);
    assert_eq!(state(&app, &d)["state"], "pending_review");
}

fn an_expired_approval_the_new_policies_block_goes_to_its_author(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    crate::policies_reload::copy_policies(&policies);
    let Some(app) =
        TestApp::spawn_without_workers(b, &[("COUNTERSIGN_POLICIES", policies.to_str().unwrap())])
    else {
        return;
    };
    let d = approved(&app);
    // Compliance forbids the word between approval and expiry.
    std::fs::write(
        policies.join("zz-parcel.toml"),
        r#"[[rule]]
id = "words.no_on_its_way"
kind = "terms"
category = "promise"
severity = "block"
terms = ["on its way"]
message = "Do not say it is on its way before the courier confirms"
examples.match = ["It is on its way."]
"#,
    )
    .unwrap();
    let admin = app.user("root", &[Role::Admin]);
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);
    app.advance(Duration::hours(25));
    assert_eq!(countersign::app::expiry::sweep(&app.ctx).unwrap(), 1);
    let v = state(&app, &d);
    assert_eq!(v["state"], "changes_requested", "{v}");
    let data = &app.entries_of("review.expired")[0]["data"];
    assert_eq!(data["state"], "changes_requested");
    assert_eq!(data["check"]["verdict"], "block");
    assert_eq!(data["check"]["findings"][0]["rule"], "words.no_on_its_way");
    app.run_jobs();
    assert!(app.posted_lines().is_empty());
}
