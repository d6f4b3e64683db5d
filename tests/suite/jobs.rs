//! The job queue driving posting (spec/api.md "Drafts and reviews"): temporary failures are
//! retried with backoff while the draft stays `approved`; running out of attempts, or a
//! permanent refusal, ends in `post_failed` (which a reviewer may retry once); a reply the
//! checks now block is not posted. Tests run the queue themselves and move the service's
//! clock instead of waiting.

use crate::common::{Backend, TestApp};
use chrono::Duration;
use countersign::channels::{Channel, ChannelError, Channels, Network, OutgoingReply, PostReceipt};
use countersign::domain::roles::Role;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

on_both_backends!(
    a_temporary_failure_keeps_the_reply_approved_and_retries_later,
    when_the_attempts_run_out_the_reply_fails_and_may_be_retried_once,
    a_permanent_refusal_fails_at_once,
    a_reply_the_checks_now_block_is_not_posted,
);

/// A channel that fails its first `failures` posts (temporarily, or for good).
struct Flaky {
    failures: usize,
    permanent: bool,
    calls: AtomicUsize,
}

impl Flaky {
    fn new(failures: usize, permanent: bool) -> Arc<Flaky> {
        Arc::new(Flaky {
            failures,
            permanent,
            calls: AtomicUsize::new(0),
        })
    }
}

impl Channel for Flaky {
    fn network(&self) -> Network {
        Network::Log
    }
    fn post(&self, reply: &OutgoingReply) -> Result<PostReceipt, ChannelError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.failures {
            return Err(if self.permanent {
                ChannelError::Refused("403 you are not allowed to reply".into())
            } else {
                ChannelError::Temporary("503 service unavailable".into())
            });
        }
        Ok(PostReceipt {
            post_id: format!("p-{}", reply.draft_id),
            url: None,
        })
    }
}

/// The app with `channel` in place of the log channel, and no background worker.
fn app_with(b: Backend, extra: &[(&str, &str)], channel: Arc<dyn Channel>) -> Option<TestApp> {
    let mut app = TestApp::spawn_without_workers(b, extra)?;
    app.ctx.channels = Arc::new(Channels::new(channel, Vec::new()));
    Some(app)
}

struct Desk {
    agent: String,
    reviewer: String,
    draft: String,
}

/// An approved reply by ana (agent) and rui (reviewer), both with an address.
fn approved(app: &TestApp, text: &str) -> Desk {
    let agent = app.user_with_email("ana", &[Role::Agent], Some("ana@example.com"));
    let reviewer = app.user_with_email("rui", &[Role::Reviewer], Some("rui@example.com"));
    let inbound = app.inbound(
        &agent,
        "1001",
        "@cust",
        "my order is late, call me on 0612345678",
    );
    let draft = app.draft(&agent, &inbound, text);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.review(&reviewer, &draft, "approve", 1);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "approved");
    Desk {
        agent,
        reviewer,
        draft,
    }
}

fn draft_of(app: &TestApp, token: &str, draft: &str) -> Value {
    let r = app.get(&format!("/api/v1/drafts/{draft}"), Some(token));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .expect("RFC 3339")
        .to_utc()
}

fn mails_with_subject(app: &TestApp, prefix: &str) -> Vec<String> {
    app.mail_files()
        .into_iter()
        .filter(|m| {
            m.lines()
                .any(|l| l.starts_with("Subject: ") && l["Subject: ".len()..].starts_with(prefix))
        })
        .collect()
}

fn a_temporary_failure_keeps_the_reply_approved_and_retries_later(b: Backend) {
    let channel = Flaky::new(2, false);
    let Some(app) = app_with(b, &[], channel.clone()) else {
        return;
    };
    let desk = approved(&app, "Thanks, we're on it.");

    assert_eq!(
        app.run_jobs(),
        3,
        "the post attempt and two mails (review needed, approved)"
    );
    let view = draft_of(&app, &desk.agent, &desk.draft);
    assert_eq!(
        view["state"], "approved",
        "a temporary failure keeps it approved: {view}"
    );
    assert_eq!(view["posting"]["job_state"], "pending");
    assert_eq!(view["posting"]["attempts"], 1);
    let failed = app.entries_of("post.failed");
    assert_eq!(failed.len(), 1);
    let data = &failed[0]["data"];
    assert_eq!(data["attempt"], 1);
    assert_eq!(data["error"], "503 service unavailable");
    // The first retry waits 5 s, less up to half of it for jitter.
    let wait = at(&data["retry_at"]) - at(&failed[0]["at"]);
    assert!(
        wait >= Duration::milliseconds(2500) && wait <= Duration::seconds(5),
        "{wait}"
    );

    assert_eq!(app.run_jobs(), 0, "not due yet");
    app.advance(Duration::minutes(10));
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(
        draft_of(&app, &desk.agent, &desk.draft)["state"],
        "approved"
    );
    app.advance(Duration::minutes(10));
    assert_eq!(app.run_jobs(), 1);
    let view = draft_of(&app, &desk.agent, &desk.draft);
    assert_eq!(view["state"], "posted", "{view}");
    assert_eq!(view["posting"]["job_state"], "done");
    assert_eq!(view["posting"]["attempts"], 3);
    let succeeded = app.entries_of("post.succeeded");
    assert_eq!(succeeded.len(), 1);
    assert_eq!(succeeded[0]["data"]["attempt"], 3);
    assert_eq!(channel.calls.load(Ordering::SeqCst), 3);
    assert!(mails_with_subject(&app, "Post failed:").is_empty());
}

fn when_the_attempts_run_out_the_reply_fails_and_may_be_retried_once(b: Backend) {
    let channel = Flaky::new(2, false);
    let Some(app) = app_with(b, &[("COUNTERSIGN_POST_ATTEMPTS", "2")], channel.clone()) else {
        return;
    };
    let desk = approved(&app, "Thanks, we're on it.");
    app.run_jobs();
    app.advance(Duration::minutes(10));
    app.run_jobs();
    let view = draft_of(&app, &desk.agent, &desk.draft);
    assert_eq!(view["state"], "post_failed", "{view}");
    assert_eq!(view["posting"]["job_state"], "failed");
    let failed = app.entries_of("post.failed");
    assert_eq!(failed.len(), 2);
    assert!(failed[0]["data"]["retry_at"].is_string());
    assert!(failed[1]["data"]["retry_at"].is_null(), "{}", failed[1]);

    // The author and the approver are told, with the channel's error and the link.
    let told = mails_with_subject(&app, "Post failed:");
    assert_eq!(told.len(), 2, "{told:?}");
    for m in &told {
        assert!(m.contains("503 service unavailable"), "{m}");
        assert!(m.contains(&format!("/drafts/{}", desk.draft)), "{m}");
        assert!(
            !m.contains("Thanks, we're on it."),
            "no draft text in mail: {m}"
        );
    }
    assert!(told.iter().any(|m| m.contains("To: ana <ana@example.com>")));
    assert!(told.iter().any(|m| m.contains("To: rui <rui@example.com>")));

    // An agent may not retry; the reviewer may, once.
    let retry = format!("/api/v1/drafts/{}/retry", desk.draft);
    assert_eq!(app.post_empty(&retry, Some(&desk.agent)).status, 403);
    let r = app.post_empty(&retry, Some(&desk.reviewer));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "approved");
    assert_eq!(app.entries_of("post.retried").len(), 1);
    // It fails again (the channel is still down for one more call, then recovers)…
    let channel_after = Flaky::new(1, true);
    let mut ctx = app.ctx.clone();
    ctx.channels = Arc::new(Channels::new(channel_after.clone(), Vec::new()));
    countersign::workers::run_pending_jobs(&ctx);
    assert_eq!(
        draft_of(&app, &desk.agent, &desk.draft)["state"],
        "post_failed"
    );
    // …and a second retry is refused.
    let r = app.post_empty(&retry, Some(&desk.reviewer));
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.body["message"].as_str().unwrap().contains("once"),
        "{}",
        r.text
    );
    // The job kept its id across the retry: the channel's idempotency key did not change.
    let first = &app.entries_of("post.failed")[0];
    assert_eq!(first["subject"], desk.draft.as_str());
    let mut conn = app.ctx.db.conn().unwrap();
    let jobs = countersign::db::jobs::of_kind(&mut conn, "post").unwrap();
    assert_eq!(jobs.len(), 1, "one post job per draft");
    assert_eq!(jobs[0].attempts, 3);
}

fn a_permanent_refusal_fails_at_once(b: Backend) {
    let channel = Flaky::new(1, true);
    let Some(app) = app_with(b, &[], channel.clone()) else {
        return;
    };
    let desk = approved(&app, "Thanks, we're on it.");
    app.run_jobs();
    let view = draft_of(&app, &desk.agent, &desk.draft);
    assert_eq!(view["state"], "post_failed", "{view}");
    assert_eq!(view["posting"]["attempts"], 1);
    let failed = app.entries_of("post.failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["data"]["retry_at"].is_null());
    assert!(failed[0]["data"]["error"]
        .as_str()
        .unwrap()
        .contains("not allowed to reply"));
    app.advance(Duration::hours(2));
    assert_eq!(
        app.run_jobs(),
        0,
        "no retry after a permanent refusal (the mails ran already)"
    );
    assert_eq!(channel.calls.load(Ordering::SeqCst), 1);
}

fn a_reply_the_checks_now_block_is_not_posted(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    crate::policies_reload::copy_policies(&policies);
    let channel = Flaky::new(0, false);
    let Some(app) = app_with(
        b,
        &[("COUNTERSIGN_POLICIES", policies.to_str().unwrap())],
        channel.clone(),
    ) else {
        return;
    };
    let desk = approved(&app, "Thanks, we'll send a kumquat.");
    // Compliance bans the word after the approval, before the post goes out.
    std::fs::write(
        policies.join("zz-fruit.toml"),
        "[[rule]]\nid = \"profanity.fruit\"\nkind = \"terms\"\ncategory = \"profanity\"\nmessage = \"Banned fruit\"\nterms = [\"kumquat\"]\n",
    )
    .unwrap();
    let admin = app.user("root", &[Role::Admin]);
    let r = app.post_empty("/api/v1/policies/reload", Some(&admin));
    assert_eq!(r.status, 200, "{}", r.text);

    app.run_jobs();
    assert_eq!(
        channel.calls.load(Ordering::SeqCst),
        0,
        "nothing was posted"
    );
    let view = draft_of(&app, &desk.agent, &desk.draft);
    assert_eq!(view["state"], "changes_requested", "{view}");
    assert_eq!(view["check"]["verdict"], "block");
    let refused = app.entries_of("post.refused");
    assert_eq!(refused.len(), 1);
    let data = &refused[0]["data"];
    assert_eq!(data["state"], "changes_requested");
    assert_eq!(data["check"]["verdict"], "block");
    assert_eq!(data["check"]["policy_version"], r.body["policy_version"]);
    let told = mails_with_subject(&app, "Not posted:");
    assert_eq!(told.len(), 2, "the author and the approver: {told:?}");
    // The author revises; the new text goes through review again and is posted.
    let r = app.put(
        &format!("/api/v1/drafts/{}", desk.draft),
        Some(&desk.agent),
        &json!({"text": "Thanks, we'll send a voucher."}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post_empty(
        &format!("/api/v1/drafts/{}/submit", desk.draft),
        Some(&desk.agent),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.review(&desk.reviewer, &desk.draft, "approve", 2).status,
        200
    );
    app.run_jobs();
    assert_eq!(draft_of(&app, &desk.agent, &desk.draft)["state"], "posted");
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

/// Looking for work writes nothing: SQLite's `data_version` (which moves when another
/// connection commits) stays put while an idle worker polls a queue whose only job is not
/// due. (The claim is the same code on PostgreSQL.)
#[test]
fn an_idle_worker_commits_nothing() {
    use diesel::RunQueryDsl;
    let channel = Flaky::new(1, false);
    let Some(app) = app_with(Backend::Sqlite, &[], channel) else {
        return;
    };
    let desk = approved(&app, "Thanks, we're on it.");
    app.run_jobs();
    assert_eq!(
        draft_of(&app, &desk.agent, &desk.draft)["state"],
        "approved"
    );
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        data_version: i64,
    }
    let mut watcher = app.ctx.db.conn().unwrap();
    let version = |c: &mut countersign::db::DbConn| {
        diesel::sql_query("PRAGMA data_version")
            .get_result::<Version>(c)
            .unwrap()
            .data_version
    };
    let before = version(&mut watcher);
    for _ in 0..20 {
        assert_eq!(app.run_jobs(), 0);
    }
    assert_eq!(
        version(&mut watcher),
        before,
        "an idle poll committed a write"
    );
    app.advance(Duration::minutes(10));
    assert_eq!(app.run_jobs(), 1);
    assert_ne!(
        version(&mut watcher),
        before,
        "the watcher sees real commits"
    );
}
