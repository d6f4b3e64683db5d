//! Posting exactly once: a restart neither loses nor repeats a post job.

use crate::common::{Backend, TestApp, TestDb};
use countersign::app::drafts::{self, NewReview};
use countersign::app::inbound::{NewInbound, Received};
use countersign::app::{posting, users, Caller, Context};
use countersign::audit::Actor;
use countersign::channels::{log::LogChannel, Channel};
use countersign::domain::roles::Role;
use countersign::domain::workflow::Decision;
use countersign::startup::Application;
use diesel::RunQueryDsl;

on_both_backends!(
    an_approved_reply_survives_a_stop_before_posting,
    a_post_made_before_a_crash_is_not_repeated,
);

/// The service built on `db` but not serving: no worker runs.
fn built_without_worker(db: &TestDb) -> Application {
    Application::build(crate::common::test_settings(db, &[])).unwrap()
}

/// Approves one reply through the use cases; returns the draft id.
fn approve_one(ctx: &Context) -> String {
    let mut conn = ctx.db.conn().unwrap();
    let mut user = |name: &str, role| {
        let id = users::create_user(
            &mut conn,
            &Actor::System,
            name,
            crate::common::PASSWORD,
            &[role],
            None,
        )
        .unwrap();
        Caller {
            id,
            username: name.into(),
            roles: vec![role],
        }
    };
    let agent = user("ana", Role::Agent);
    let reviewer = user("rui", Role::Reviewer);
    let msg = NewInbound {
        channel: "x".into(),
        external_id: "42".into(),
        author_handle: "@cust".into(),
        author_external_user_id: None,
        text: "help".into(),
        received_at: None,
    };
    let inbound = match countersign::app::inbound::receive(&mut conn, Some(&agent), &msg).unwrap() {
        Received::Created(v) | Received::AlreadyKnown(v) => v.id,
    };
    let d = drafts::create(
        ctx,
        &mut conn,
        &agent,
        inbound.parse().unwrap(),
        "Thanks, we're on it.",
    )
    .unwrap();
    let id = d.id.parse().unwrap();
    drafts::submit(ctx, &mut conn, &agent, id).unwrap();
    let review = NewReview {
        decision: Decision::Approve,
        comment: String::new(),
        revision: 1,
    };
    assert_eq!(
        drafts::review(ctx, &mut conn, &reviewer, id, &review)
            .unwrap()
            .state,
        "approved"
    );
    d.id
}

fn an_approved_reply_survives_a_stop_before_posting(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let draft = {
        let built = built_without_worker(&db);
        let draft = approve_one(built.context());
        let mut conn = built.context().db.conn().unwrap();
        assert_eq!(
            countersign::db::outbox::pending_count(&mut conn).unwrap(),
            1,
            "the job waits in the outbox"
        );
        draft
    };
    // The service starts again: the waiting job is posted, once.
    let app = TestApp::start(db, &[]);
    let token = app.user("obs", &[Role::Auditor]);
    let view = app.wait_for_state(&token, &draft, "posted");
    let lines = app.posted_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["post_id"], view["posting"]["post_id"]);
    assert_eq!(lines[0]["in_reply_to"], "42");
}

fn a_post_made_before_a_crash_is_not_repeated(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let (draft, first_post_id) = {
        let built = built_without_worker(&db);
        let ctx = built.context();
        let draft = approve_one(ctx);
        let mut conn = ctx.db.conn().unwrap();
        let Some(posting::Claim::Post(claimed)) = posting::claim(&mut conn).unwrap() else {
            panic!("a job to post");
        };
        let receipt = LogChannel::new(ctx.settings.post_log.clone())
            .post(&claimed.reply)
            .unwrap();
        // The process dies here: the post went out, its result was never recorded. Time
        // passes until the lease runs out.
        diesel::sql_query("UPDATE post_jobs SET locked_until = '2000-01-01 00:00:00'")
            .execute(&mut *conn)
            .unwrap();
        (draft, receipt.post_id)
    };
    let app = TestApp::start(db, &[]);
    let token = app.user("obs", &[Role::Auditor]);
    let view = app.wait_for_state(&token, &draft, "posted");
    let lines = app.posted_lines();
    assert_eq!(lines.len(), 1, "not posted again: {lines:?}");
    assert_eq!(view["posting"]["post_id"], first_post_id.as_str());
    assert_eq!(view["posting"]["attempts"], 2);
    let succeeded: Vec<_> = app
        .audit_actions()
        .into_iter()
        .filter(|(a, _)| a == "post.succeeded")
        .collect();
    assert_eq!(succeeded.len(), 1);
}
