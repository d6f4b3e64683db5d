//! The Mastodon channel against a fake instance (`common::fake_mastodon`), and the routing
//! of replies between channels (spec/api.md "Channels").

use crate::common::fake_mastodon::{self, FakeMastodon, Fault};
use crate::common::{Backend, TestApp};
use chrono::Duration;
use countersign::domain::roles::Role;
use serde_json::{json, Value};

on_both_backends!(
    a_reply_keeps_the_mentions_visibility_and_waits_out_a_rate_limit,
    a_retry_after_the_idempotency_window_finds_the_reply_already_made,
    a_reply_to_a_deleted_post_fails_for_good,
    mentions_arrive_as_plain_text_page_after_page,
    a_message_on_a_network_without_an_account_fails_closed,
    a_draft_is_checked_under_its_messages_channel,
);

fn app(b: Backend, fake: &FakeMastodon) -> Option<TestApp> {
    let url = fake.url();
    TestApp::spawn_without_workers(
        b,
        &[
            ("COUNTERSIGN_MASTODON_BASE_URL", url.as_str()),
            ("COUNTERSIGN_MASTODON_ACCESS_TOKEN", fake_mastodon::TOKEN),
            ("COUNTERSIGN_MASTODON_POLL_SECONDS", "0"),
        ],
    )
}

struct Desk {
    agent: String,
    reviewer: String,
}

fn desk(app: &TestApp) -> Desk {
    Desk {
        agent: app.user("ana", &[Role::Agent]),
        reviewer: app.user("rui", &[Role::Reviewer]),
    }
}

/// Polls the instance once; the number of new inbound messages.
fn poll(app: &TestApp) -> usize {
    let source = app.ctx.channels.ingest()[0].clone();
    countersign::app::ingest::poll_once(&app.ctx, source.as_ref())
        .unwrap()
        .created
}

/// The open message whose external id is `status`.
fn message(app: &TestApp, d: &Desk, status: &str) -> Value {
    let queue = app.get("/api/v1/inbound?state=open", Some(&d.agent)).body;
    queue
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["external_id"] == status)
        .cloned()
        .unwrap_or_else(|| panic!("{status} in the queue: {queue}"))
}

fn approve(app: &TestApp, d: &Desk, inbound: &str, text: &str) -> String {
    let draft = app.draft(&d.agent, inbound, text);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&d.agent));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.review(&d.reviewer, &draft, "approve", 1);
    assert_eq!(r.body["state"], "approved", "{}", r.text);
    draft
}

/// Jane's public mention, polled in, answered and approved: (her status id, the draft).
fn janes_public_mention_answered(app: &TestApp, fake: &FakeMastodon, d: &Desk) -> (String, String) {
    let status = fake.mention(
        "42",
        "jane@social.example",
        "<p>@examplecare help</p>",
        "public",
    );
    assert_eq!(poll(app), 1);
    let m = message(app, d, &status);
    let draft = approve(
        app,
        d,
        m["id"].as_str().unwrap(),
        "@jane@social.example On it, thanks.",
    );
    (status, draft)
}

fn state_of(app: &TestApp, d: &Desk, draft: &str) -> Value {
    app.get(&format!("/api/v1/drafts/{draft}"), Some(&d.agent))
        .body
}

fn a_reply_keeps_the_mentions_visibility_and_waits_out_a_rate_limit(b: Backend) {
    let fake = FakeMastodon::start();
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let status = fake.mention(
        "42",
        "jane@social.example",
        "<p><span class=\"h-card\"><a href=\"https://m.example/@examplecare\" class=\"u-url mention\">@<span>examplecare</span></a></span> my account number is wrong</p>",
        "direct",
    );
    assert_eq!(poll(&app), 1);
    let m = message(&app, &d, &status);
    // Mastodon adds no mention to a reply: without one a direct reply reaches nobody.
    let unaddressed = app.draft(&d.agent, m["id"].as_str().unwrap(), "We are sorry!");
    let r = app.post_empty(
        &format!("/api/v1/drafts/{unaddressed}/submit"),
        Some(&d.agent),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("@jane@social.example"),
        "{}",
        r.text
    );
    // The customer's own handle is not an e-mail address; any other address still is.
    let leaky = app.draft(
        &d.agent,
        m["id"].as_str().unwrap(),
        "@jane@social.example write to @bob@social.example or jane.doe@gmail.com",
    );
    let r = app.post_empty(&format!("/api/v1/drafts/{leaky}/submit"), Some(&d.agent));
    assert_eq!(r.status, 422, "{}", r.text);
    let flagged = r.body["check"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["category"] == "pii.email")
        .count();
    assert_eq!(flagged, 2, "bob's handle and jane's address: {}", r.text);
    let draft = approve(
        &app,
        &d,
        m["id"].as_str().unwrap(),
        "@jane@social.example We are sorry! Please check your DMs.",
    );
    fake.fault(Fault::RateLimited(45));
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(state_of(&app, &d, &draft)["state"], "approved");
    assert!(fake.replies_to(&status).is_empty());
    app.advance(Duration::seconds(90));
    assert_eq!(app.run_jobs(), 1);
    let replies = fake.replies_to(&status);
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].visibility, "direct",
        "a direct mention is answered directly"
    );
    assert_eq!(
        replies[0].content,
        "<p>@jane@social.example We are sorry! Please check your DMs.</p>"
    );
    let v = state_of(&app, &d, &draft);
    assert_eq!(v["state"], "posted", "{v}");
    assert_eq!(
        v["posting"]["post_url"],
        format!("https://m.example/@examplecare/{}", replies[0].id)
    );
    let keys = fake.state.lock().unwrap().idempotency.len();
    assert_eq!(keys, 1, "every attempt carried the job's idempotency key");
}

fn a_retry_after_the_idempotency_window_finds_the_reply_already_made(b: Backend) {
    let fake = FakeMastodon::start();
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let (status, draft) = janes_public_mention_answered(&app, &fake, &d);
    fake.fault(Fault::HangUpAfterCreate);
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(
        fake.replies_to(&status).len(),
        1,
        "the instance made the post"
    );
    // Hours later (the instance forgot the key), the retry must still not post twice.
    fake.forget_idempotency_keys();
    app.advance(Duration::hours(2));
    assert_eq!(app.run_jobs(), 1);
    let replies = fake.replies_to(&status);
    assert_eq!(replies.len(), 1, "posted once");
    let v = state_of(&app, &d, &draft);
    assert_eq!(v["state"], "posted", "{v}");
    assert_eq!(v["posting"]["post_id"], replies[0].id.as_str());
}

fn a_reply_to_a_deleted_post_fails_for_good(b: Backend) {
    let fake = FakeMastodon::start();
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let (status, draft) = janes_public_mention_answered(&app, &fake, &d);
    fake.delete(&status);
    assert_eq!(app.run_jobs(), 1);
    let v = state_of(&app, &d, &draft);
    assert_eq!(v["state"], "post_failed", "{v}");
    let error = v["posting"]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("Mastodon answered 404: Record not found"),
        "{error}"
    );
    assert!(!error.contains(fake_mastodon::TOKEN));
}

fn mentions_arrive_as_plain_text_page_after_page(b: Backend) {
    let fake = FakeMastodon::start();
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let first = fake.mention(
        "7",
        "carol",
        "<p><a href=\"https://m.example/@examplecare\" class=\"u-url mention\">@<span>examplecare</span></a> fees &amp; charges?</p>",
        "unlisted",
    );
    assert_eq!(poll(&app), 1);
    let m = message(&app, &d, &first);
    assert_eq!(m["channel"], "mastodon");
    assert_eq!(m["text"], "@examplecare fees & charges?");
    let host = fake.server.addr.ip().to_string();
    assert_eq!(
        m["author_handle"],
        format!("carol@{host}"),
        "a local account's handle gets the instance"
    );
    // 45 more: more than a page (40); all arrive, oldest first, once.
    let more: Vec<String> = (0..45)
        .map(|i| {
            fake.mention(
                &format!("9{i}"),
                &format!("user{i}@other.example"),
                &format!("<p>@examplecare question {i}</p>"),
                "public",
            )
        })
        .collect();
    assert_eq!(poll(&app), 45);
    assert_eq!(poll(&app), 0, "nothing twice");
    let received: Vec<String> = app
        .entries_of("inbound.received")
        .iter()
        .map(|e| e["data"]["external_id"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec![first];
    expected.extend(more);
    assert_eq!(received, expected);
    let pages = fake
        .state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(_, p, q)| p == "/api/v1/notifications" && q.iter().any(|(k, _)| k == "min_id"))
        .count();
    assert!(pages >= 2, "paged: {pages}");
}

fn a_message_on_a_network_without_an_account_fails_closed(b: Backend) {
    let fake = FakeMastodon::start();
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    // Mastodon is configured, X is not: a reply to an X message cannot go anywhere.
    let r = app.post(
        "/api/v1/inbound",
        Some(&d.agent),
        &json!({"channel": "x", "external_id": "1900000000000000555", "author": {"handle": "@someone"}, "text": "hi"}),
    );
    assert_eq!(r.status, 201);
    let draft = approve(&app, &d, r.body["id"].as_str().unwrap(), "Hello!");
    assert_eq!(app.run_jobs(), 1);
    let v = state_of(&app, &d, &draft);
    assert_eq!(v["state"], "post_failed", "{v}");
    assert!(
        v["posting"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("no x account"),
        "{v}"
    );
    assert!(
        app.posted_lines().is_empty(),
        "not sent to the log channel either"
    );
    // A log message still goes to the log channel.
    let r = app.post(
        "/api/v1/inbound",
        Some(&d.agent),
        &json!({"channel": "log", "external_id": "desk-1", "author": {"handle": "walk-in"}, "text": "hi"}),
    );
    let draft = approve(&app, &d, r.body["id"].as_str().unwrap(), "Hello there!");
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(state_of(&app, &d, &draft)["state"], "posted");
    assert_eq!(app.posted_lines().len(), 1);
}

fn a_draft_is_checked_under_its_messages_channel(b: Backend) {
    let fake = FakeMastodon::start();
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    // 400 characters: too long for X, fine for Mastodon.
    let long = "Thanks for waiting. ".repeat(20);
    let r = app.post(
        "/api/v1/check",
        Some(&d.agent),
        &json!({"text": long, "channel": "mastodon"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["length_rule"], "mastodon");
    assert_eq!(r.body["verdict"], "pass", "{}", r.text);
    let r = app.post("/api/v1/check", Some(&d.agent), &json!({"text": long}));
    assert_eq!(r.body["length_rule"], "x");
    assert_eq!(r.body["verdict"], "block");
    let r = app.post(
        "/api/v1/check",
        Some(&d.agent),
        &json!({"text": long, "channel": "myspace"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    let status = fake.mention(
        "42",
        "jane@social.example",
        "<p>@examplecare help</p>",
        "public",
    );
    assert_eq!(poll(&app), 1);
    let on_mastodon = message(&app, &d, &status)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let draft = app.draft(
        &d.agent,
        &on_mastodon,
        &format!("@jane@social.example {long}"),
    );
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&d.agent));
    assert_eq!(
        r.status, 200,
        "a Mastodon reply of 400 characters: {}",
        r.text
    );

    let r = app.post(
        "/api/v1/inbound",
        Some(&d.agent),
        &json!({"channel": "x", "external_id": "1900000000000000999", "author": {"handle": "@x_user"}, "text": "hi"}),
    );
    let on_x = r.body["id"].as_str().unwrap().to_string();
    let draft = app.draft(&d.agent, &on_x, &long);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&d.agent));
    assert_eq!(r.status, 422, "the same reply on X: {}", r.text);
    assert_eq!(r.body["check"]["length_rule"], "x");
    assert_eq!(r.body["check"]["findings"][0]["category"], "length");
}
