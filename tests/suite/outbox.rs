//! Posting exactly once: a restart neither loses nor repeats a post job.

use crate::common::{Backend, TestApp, TestDb};
use countersign::app::drafts::{self, NewReview};
use countersign::app::inbound::{NewInbound, Received};
use countersign::app::jobs::{Attempt, Job};
use countersign::app::posting::PostReply;
use countersign::app::{users, Caller, Context};
use countersign::audit::Actor;
use countersign::domain::roles::Role;
use countersign::domain::workflow::Decision;
use countersign::startup::Application;
use diesel::RunQueryDsl;

on_both_backends!(
    an_approved_reply_survives_a_stop_before_posting,
    a_post_made_before_a_crash_is_not_repeated,
    a_text_changed_behind_the_log_is_never_posted,
    a_text_changed_before_approval_cannot_be_approved,
    an_instance_with_another_post_log_leaves_log_replies_alone,
    a_moved_post_log_is_adopted_without_a_second_post,
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
            roles: vec![role].into(),
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
        visibility: None,
    };
    let inbound =
        match countersign::app::inbound::receive(ctx, &mut conn, Some(&agent), &msg).unwrap() {
            Received::Created(v) | Received::AlreadyKnown(v) => v.id,
        };
    let d = drafts::create(ctx, &mut conn, &agent, inbound, "Thanks, we're on it.").unwrap();
    let id = d.id;
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
        countersign::domain::workflow::DraftState::Approved
    );
    d.id.to_string()
}

fn an_approved_reply_survives_a_stop_before_posting(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let draft = {
        let built = built_without_worker(&db);
        let draft = approve_one(built.context());
        let mut conn = built.context().db.conn().unwrap();
        assert_eq!(
            countersign::db::jobs::pending_count(&mut conn, PostReply::KIND).unwrap(),
            1,
            "the job waits in the queue"
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
        // A worker leases the job and posts: the post goes out, and the process dies before
        // the result is recorded. Time passes until the lease runs out.
        (draft, post_then_die(ctx))
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

/// The draft's text edited in the table after approval (the log still holds the approved
/// hash): the worker refuses to post it, records `post.refused`, voids the approval and
/// sends the draft back to review. A new round of review then posts the right text.
fn a_text_changed_behind_the_log_is_never_posted(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let draft = {
        let built = built_without_worker(&db);
        let ctx = built.context();
        let draft = approve_one(ctx);
        let mut conn = ctx.db.conn().unwrap();
        diesel::sql_query(format!(
            "UPDATE drafts SET text = 'Please DM us your card number' WHERE id = '{draft}'"
        ))
        .execute(&mut *conn)
        .unwrap();
        assert_eq!(countersign::workers::run_pending_jobs(ctx), 1);
        let job = countersign::db::jobs::by_unique_key(&mut conn, &format!("post:{draft}"))
            .unwrap()
            .unwrap();
        assert_eq!(job.state, countersign::domain::jobs::JobState::Cancelled);
        assert!(
            job.last_error.is_none(),
            "a refusal is not an error of the job"
        );
        assert_eq!(
            countersign::workers::run_pending_jobs(ctx),
            0,
            "the job ended"
        );
        draft
    };
    let app = TestApp::start(db, &[]);
    let auditor = app.user("obs", &[Role::Auditor]);
    let view = app
        .get(&format!("/api/v1/drafts/{draft}"), Some(&auditor))
        .body;
    assert_eq!(view["state"], "pending_review", "{view}");
    assert!(app.posted_lines().is_empty(), "nothing was posted");
    let refused = app
        .get("/api/v1/audit?action=post.refused", Some(&auditor))
        .body["entries"]
        .clone();
    assert_eq!(refused.as_array().unwrap().len(), 1, "{refused}");
    let data = &refused[0]["data"];
    assert_eq!(data["revision"], 1);
    assert_eq!(
        data["text_sha256"],
        countersign::audit::text_sha256("Please DM us your card number").as_str()
    );
    assert_eq!(
        data["approved_text_sha256"],
        countersign::audit::text_sha256("Thanks, we're on it.").as_str()
    );
    // The voided approval does not count, and the edited text cannot be approved again.
    let reviewer = app.login("rui");
    let other = app.user("rosa", &[Role::Reviewer]);
    let r = app.review(&other, &draft, "approve", 1);
    assert_eq!(r.status, 409, "{}", r.text);
    // Asking for changes lets the agent write the reply again; then it is posted.
    let r = app.review(&reviewer, &draft, "request_changes", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    let agent = app.login("ana");
    let r = app.put(
        &format!("/api/v1/drafts/{draft}"),
        Some(&agent),
        &serde_json::json!({"text": "Thanks, we're on it. We'll DM you."}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    assert_eq!(app.review(&other, &draft, "approve", 2).status, 200);
    app.wait_for_state(&auditor, &draft, "posted");
    let lines = app.posted_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["text"], "Thanks, we're on it. We'll DM you.");
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &[]);
    assert!(ok, "{report}");
}

fn a_text_changed_before_approval_cannot_be_approved(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let draft = app.draft(&agent, &inbound, "Thanks, we're looking into it.");
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    let mut conn = app.ctx.db.conn().unwrap();
    diesel::sql_query(format!(
        "UPDATE drafts SET text = 'We guarantee a full refund' WHERE id = '{draft}'"
    ))
    .execute(&mut *conn)
    .unwrap();
    drop(conn);
    let r = app.review(&reviewer, &draft, "approve", 1);
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.body["message"].as_str().unwrap().contains("submitted"),
        "{}",
        r.text
    );
    let view = app
        .get(&format!("/api/v1/drafts/{draft}"), Some(&reviewer))
        .body;
    assert_eq!(view["state"], "pending_review");
    assert!(app.posted_lines().is_empty());
}

/// Two instances on one database, each with its own post-log file: the second instance's
/// file is not the one the database records, so its worker does not take log-channel
/// replies at all (were it to, a retry there could not see the first file and would post
/// the reply a second time). The first instance posts it, once.
fn an_instance_with_another_post_log_leaves_log_replies_alone(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let first = built_without_worker(&db);
    let other_log = db.dir.path().join("elsewhere/posted.jsonl");
    let second = Application::build(crate::common::test_settings(
        &db,
        &[("COUNTERSIGN_POST_LOG", other_log.to_str().unwrap())],
    ))
    .unwrap();
    let draft = approve_one(first.context());
    // With no network account, every channel's replies go to the log channel.
    assert_eq!(
        second.context().channels.unavailable(),
        ["x", "mastodon", "log"]
    );
    assert_eq!(
        countersign::workers::run_pending_jobs(second.context()),
        0,
        "the instance with another post log leaves the reply"
    );
    assert_eq!(
        std::fs::read_to_string(&other_log).unwrap_or_default(),
        "",
        "nothing in the other file"
    );
    assert_eq!(countersign::workers::run_pending_jobs(first.context()), 1);
    let log = std::fs::read_to_string(&first.context().settings.post_log).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains(&draft), "{log}");
    // A restart of the first instance on the same file still posts (its identity holds).
    drop(first);
    let again = built_without_worker(&db);
    assert!(again.context().channels.unavailable().is_empty());
}

/// Leases the one post job and runs its attempt (the reply is logged), then "dies": the
/// result is never recorded and the lease runs out. Returns the post id the attempt made.
fn post_then_die(ctx: &Context) -> String {
    let mut conn = ctx.db.conn().unwrap();
    let t = ctx.clock.now().naive_utc();
    let row = countersign::db::jobs::claim_next(
        &mut conn,
        &[PostReply::KIND],
        &[],
        "a worker about to die",
        t,
        t + chrono::Duration::seconds(60),
    )
    .unwrap()
    .expect("a job to post");
    let job: PostReply = serde_json::from_str(&row.payload).unwrap();
    let attempt = Attempt {
        job_id: row.id,
        number: row.attempts,
        max_attempts: row.max_attempts,
        created_at: row.created_at,
    };
    let receipt = match job.run(ctx, &attempt) {
        countersign::app::jobs::Outcome::Done(countersign::app::posting::Posting::Posted {
            receipt,
            ..
        }) => receipt,
        other => panic!("posted: {other:?}"),
    };
    diesel::sql_query("UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00'")
        .execute(&mut *conn)
        .unwrap();
    receipt.post_id
}

/// The post log moves for good (a restore elsewhere): the instance with the new file may
/// adopt it, but not while a reply may be a line of the old file only, since its retry
/// would not see that line and log the reply again. Once the old lines are copied over,
/// adopting works; the running instances see it without a restart (the old file's instance
/// stops posting, the new one starts), and the interrupted reply is not logged twice.
fn a_moved_post_log_is_adopted_without_a_second_post(b: Backend) {
    use countersign::app::post_log::{adopt, Adoption};
    let Some(db) = TestDb::new(b) else { return };
    let old = built_without_worker(&db);
    let new_log = db.dir.path().join("restored/posted.jsonl");
    let new_settings =
        crate::common::test_settings(&db, &[("COUNTERSIGN_POST_LOG", new_log.to_str().unwrap())]);
    let new = Application::build(new_settings.clone()).unwrap();
    let draft = approve_one(old.context());
    let first_post = post_then_die(old.context());

    let refused = adopt(&new_settings, &new.context().db, &new.context().clock).unwrap_err();
    let why = refused.to_string();
    assert!(
        matches!(refused, countersign::error::Error::Conflict(_)),
        "{why}"
    );
    assert!(
        why.contains(&draft) && why.contains("cat OLD >> NEW"),
        "{why}"
    );
    assert!(
        new.context().channels.unavailable().contains(&"log"),
        "nothing changed"
    );
    assert!(old.context().channels.unavailable().is_empty());

    // The operator carries the old lines over; now the new file holds the reply.
    let old_lines = std::fs::read_to_string(&old.context().settings.post_log).unwrap();
    std::fs::write(&new_log, &old_lines).unwrap();
    match adopt(&new_settings, &new.context().db, &new.context().clock).unwrap() {
        Adoption::Adopted { file, previous } => {
            assert!(file.path.ends_with("restored/posted.jsonl"), "{file:?}");
            assert_ne!(file, previous);
        }
        other => panic!("adopted: {other:?}"),
    }
    assert!(matches!(
        adopt(&new_settings, &new.context().db, &new.context().clock).unwrap(),
        Adoption::AlreadyRecorded(_)
    ));
    assert_eq!(
        old.context().channels.unavailable(),
        ["x", "mastodon", "log"],
        "the old file's instance stops posting at once"
    );
    assert!(new.context().channels.unavailable().is_empty());
    assert_eq!(countersign::workers::run_pending_jobs(old.context()), 0);
    assert_eq!(countersign::workers::run_pending_jobs(new.context()), 1);
    let lines = std::fs::read_to_string(&new_log).unwrap();
    assert_eq!(lines, old_lines, "the retry found the carried-over line");
    let mut conn = new.context().db.conn().unwrap();
    let job = countersign::db::jobs::by_unique_key(&mut conn, &format!("post:{draft}"))
        .unwrap()
        .unwrap();
    assert_eq!(job.state.as_str(), "done", "{job:?}");
    let row = countersign::db::drafts::by_id(&mut conn, draft.parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(row.state, countersign::domain::workflow::DraftState::Posted);
    assert_eq!(row.post_id.as_deref(), Some(first_post.as_str()));
}
