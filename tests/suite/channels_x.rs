//! The X channel against a fake X API v2 (`common::fake_x`): a reply goes out once, as a
//! reply, through rate limits, expired tokens, server errors and a connection dropped after
//! X created the post; X's duplicate-content refusal is looked into, never taken as success;
//! mentions become inbound messages once; the webhook takes only signed events.

use crate::common::fake_x::{self, FakeX, Fault};
use crate::common::{Backend, TestApp};
use chrono::Duration;
use countersign::domain::roles::Role;
use serde_json::{json, Value};

on_both_backends!(
    a_reply_is_posted_once_as_a_reply_through_a_rate_limit,
    an_exhausted_window_is_not_called_before_its_reset,
    an_expired_token_is_refreshed_once_and_the_new_pair_is_kept,
    two_instances_never_spend_one_refresh_token_twice,
    a_dropped_connection_after_the_post_ends_with_one_post,
    a_server_error_is_retried_and_posts_once,
    duplicate_content_with_no_post_of_ours_is_a_refusal,
    mentions_become_inbound_messages_once,
    the_webhook_takes_only_signed_events,
);

const ACCESS: &str = "access-0-initial";
const REFRESH: &str = "refresh-0-initial";
const WEBHOOK_SECRET: &str = "webhook-consumer-secret-77";

fn settings(fake: &FakeX) -> Vec<(&'static str, String)> {
    vec![
        ("COUNTERSIGN_X_API_BASE", fake.url()),
        ("COUNTERSIGN_X_ACCESS_TOKEN", ACCESS.into()),
        ("COUNTERSIGN_X_REFRESH_TOKEN", REFRESH.into()),
        ("COUNTERSIGN_X_CLIENT_ID", fake_x::CLIENT_ID.into()),
        ("COUNTERSIGN_X_CLIENT_SECRET", fake_x::CLIENT_SECRET.into()),
        ("COUNTERSIGN_X_USER_ID", fake_x::ACCOUNT_ID.into()),
        ("COUNTERSIGN_X_POLL_SECONDS", "0".into()),
        ("COUNTERSIGN_X_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
    ]
}

fn app(b: Backend, fake: &FakeX) -> Option<TestApp> {
    let s = settings(fake);
    let extra: Vec<(&str, &str)> = s.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_without_workers(b, &extra)
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

/// A customer's post on the fake, taken in by hand, answered with `text` and approved.
/// Returns (the customer's post id, the draft id).
fn approved(app: &TestApp, fake: &FakeX, d: &Desk, n: u32, text: &str) -> (String, String) {
    let post = fake.mention(
        &format!("5{n}"),
        &format!("cust{n}"),
        "@ExampleCare my parcel is late",
    );
    let r = app.post(
        "/api/v1/inbound",
        Some(&d.agent),
        &json!({"channel": "x", "external_id": post, "author": {"handle": format!("@cust{n}"), "external_user_id": format!("5{n}")}, "text": "@ExampleCare my parcel is late"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let inbound = r.body["id"].as_str().unwrap().to_string();
    let draft = app.draft(&d.agent, &inbound, text);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&d.agent));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.review(&d.reviewer, &draft, "approve", 1);
    assert_eq!(r.body["state"], "approved", "{}", r.text);
    (post, draft)
}

fn draft_view(app: &TestApp, d: &Desk, draft: &str) -> Value {
    let r = app.get(&format!("/api/v1/drafts/{draft}"), Some(&d.agent));
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Every string the audit log and the API showed, for secrets to be looked for in.
fn everything_shown(app: &TestApp, d: &Desk, draft: &str) -> String {
    let auditor = app.user("aud", &[Role::Auditor]);
    let mut all = app.get("/api/v1/audit?limit=1000", Some(&auditor)).text;
    all.push_str(
        &app.get(&format!("/api/v1/drafts/{draft}"), Some(&d.agent))
            .text,
    );
    all.push_str(&format!("{:?}", app.settings));
    all
}

fn a_reply_is_posted_once_as_a_reply_through_a_rate_limit(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let text = "Sorry for the wait & thanks: details at https://example.com/help";
    let (post, draft) = approved(&app, &fake, &d, 1, text);
    fake.fault(Fault::RateLimited(30));
    assert_eq!(app.run_jobs(), 1);
    let v = draft_view(&app, &d, &draft);
    assert_eq!(v["state"], "approved", "waits: {v}");
    assert!(
        v["posting"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("rate limited"),
        "{v}"
    );
    assert!(fake.replies_to(&post).is_empty());
    assert_eq!(app.run_jobs(), 0, "not before the reset");
    app.advance(Duration::seconds(60));
    assert_eq!(app.run_jobs(), 1);
    let replies = fake.replies_to(&post);
    assert_eq!(replies.len(), 1, "one reply on X");
    assert_eq!(replies[0].text, text, "the approved text, as written");
    let v = draft_view(&app, &d, &draft);
    assert_eq!(v["state"], "posted", "{v}");
    assert_eq!(v["posting"]["post_id"], replies[0].id.as_str());
    assert_eq!(v["posting"]["attempts"], 1, "the wait did not count: {v}");
    let ok = app.entries_of("post.succeeded");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["data"]["channel"], "x");
    assert_eq!(ok[0]["data"]["in_reply_to"], post.as_str());
    assert_eq!(
        ok[0]["data"]["url"],
        format!("https://x.com/i/web/status/{}", replies[0].id)
    );
}

fn an_exhausted_window_is_not_called_before_its_reset(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let (post1, _) = approved(&app, &fake, &d, 1, "First of two answers.");
    fake.fault(Fault::LastInWindow);
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.replies_to(&post1).len(), 1);
    // X said no request is left until the reset: the next reply waits without asking.
    let (post2, draft2) = approved(&app, &fake, &d, 2, "Second of two answers.");
    let posts_before = fake.post_calls();
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.post_calls(), posts_before, "X was not called");
    assert_eq!(draft_view(&app, &d, &draft2)["state"], "approved");
    app.advance(Duration::seconds(90));
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.replies_to(&post2).len(), 1);
    assert_eq!(draft_view(&app, &d, &draft2)["state"], "posted");
}

fn an_expired_token_is_refreshed_once_and_the_new_pair_is_kept(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let (post, draft) = approved(
        &app,
        &fake,
        &d,
        1,
        "We are on it, thanks for your patience.",
    );
    fake.fault(Fault::ExpireToken);
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.replies_to(&post).len(), 1);
    assert_eq!(fake.state.lock().unwrap().refreshes, 1);
    assert_eq!(draft_view(&app, &d, &draft)["state"], "posted");

    // Another instance started later reads the stored pair: the settings' token is dead
    // and the settings' refresh token was spent, yet it posts without refreshing again.
    let other = countersign::startup::Application::build(app.settings.clone()).unwrap();
    let (post2, draft2) = approved(&app, &fake, &d, 2, "Thanks, a courier is on the way.");
    assert_eq!(countersign::workers::run_pending_jobs(other.context()), 1);
    assert_eq!(fake.replies_to(&post2).len(), 1);
    assert_eq!(fake.state.lock().unwrap().refreshes, 1, "no second refresh");
    assert_eq!(draft_view(&app, &d, &draft2)["state"], "posted");

    // No token or secret reaches the log, the API or Debug output.
    let shown = everything_shown(&app, &d, &draft);
    for secret in [
        ACCESS,
        REFRESH,
        "access-1-fresh",
        "refresh-1-fresh",
        fake_x::CLIENT_SECRET,
        WEBHOOK_SECRET,
    ] {
        assert!(!shown.contains(secret), "{secret} was shown");
    }
}

fn two_instances_never_spend_one_refresh_token_twice(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let other = countersign::startup::Application::build(app.settings.clone()).unwrap();
    let (post1, _) = approved(&app, &fake, &d, 1, "First answer, thanks!");
    // Both instances have used the first token; then it expires.
    assert_eq!(app.run_jobs(), 1);
    let (post2, _) = approved(&app, &fake, &d, 2, "Second answer, thanks!");
    fake.fault(Fault::ExpireToken);
    assert_eq!(app.run_jobs(), 1, "the first instance refreshes");
    let (post3, draft3) = approved(&app, &fake, &d, 3, "Third answer, thanks!");
    // The other instance still holds the dead token: it gets 401, finds the pair the first
    // stored, and does not spend the (already spent) refresh token again.
    assert_eq!(countersign::workers::run_pending_jobs(other.context()), 1);
    for post in [&post1, &post2, &post3] {
        assert_eq!(fake.replies_to(post).len(), 1, "{post}");
    }
    assert_eq!(fake.state.lock().unwrap().refreshes, 1);
    assert_eq!(draft_view(&app, &d, &draft3)["state"], "posted");
}

fn a_dropped_connection_after_the_post_ends_with_one_post(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let (post, draft) = approved(&app, &fake, &d, 1, "Your refund is on its way.");
    fake.fault(Fault::HangUpAfterCreate);
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.replies_to(&post).len(), 1, "X made the post");
    let v = draft_view(&app, &d, &draft);
    assert_eq!(v["state"], "approved", "we do not know it yet: {v}");
    app.advance(Duration::minutes(15));
    assert_eq!(app.run_jobs(), 1);
    let replies = fake.replies_to(&post);
    assert_eq!(replies.len(), 1, "not posted a second time");
    assert_eq!(
        fake.post_calls(),
        1,
        "the retry looked first and did not even try to post again"
    );
    let v = draft_view(&app, &d, &draft);
    assert_eq!(v["state"], "posted", "{v}");
    assert_eq!(v["posting"]["post_id"], replies[0].id.as_str());
    assert_eq!(app.entries_of("post.succeeded").len(), 1);
}

fn a_server_error_is_retried_and_posts_once(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let (post, draft) = approved(&app, &fake, &d, 1, "Thanks, we have fixed it.");
    fake.fault(Fault::Unavailable);
    assert_eq!(app.run_jobs(), 1);
    let failed = app.entries_of("post.failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["data"]["retry_at"].is_string());
    assert!(
        failed[0]["data"]["error"]
            .as_str()
            .unwrap()
            .contains("X answered 503"),
        "{}",
        failed[0]
    );
    app.advance(Duration::minutes(15));
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.replies_to(&post).len(), 1);
    assert_eq!(draft_view(&app, &d, &draft)["state"], "posted");
}

fn duplicate_content_with_no_post_of_ours_is_a_refusal(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let text = "Thanks for reaching out! Please check your DMs.";
    let (post1, _) = approved(&app, &fake, &d, 1, text);
    assert_eq!(app.run_jobs(), 1);
    assert_eq!(fake.replies_to(&post1).len(), 1);
    // The same words to another customer: X refuses them as duplicate content, and the
    // post X has is not a reply to this customer, so it is not taken as ours.
    let (post2, draft2) = approved(&app, &fake, &d, 2, text);
    assert_eq!(app.run_jobs(), 1);
    assert!(fake.replies_to(&post2).is_empty());
    let v = draft_view(&app, &d, &draft2);
    assert_eq!(v["state"], "post_failed", "{v}");
    assert!(
        v["posting"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("duplicate content"),
        "{v}"
    );
}

fn mentions_become_inbound_messages_once(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let d = desk(&app);
    let first = fake.mention(
        "501",
        "Jane_Doe",
        "@ExampleCare my card was charged twice &amp; no reply",
    );
    fake.mention("502", "bob", "nothing to do with us");
    let x = app.ctx.channels.ingest()[0].clone();
    let polled = countersign::app::ingest::poll_once(&app.ctx, x.as_ref()).unwrap();
    assert_eq!(polled.created, 1, "{polled:?}");
    let queue = app.get("/api/v1/inbound?state=open", Some(&d.agent)).body;
    let items = queue.as_array().cloned().unwrap_or_default();
    let m = items
        .iter()
        .find(|m| m["external_id"] == first.as_str())
        .unwrap_or_else(|| panic!("the mention in the queue: {queue}"));
    assert_eq!(m["channel"], "x");
    assert_eq!(m["author_handle"], "jane_doe");
    assert_eq!(
        m["text"],
        "@ExampleCare my card was charged twice &amp; no reply"
    );
    let customer = app
        .get(
            &format!("/api/v1/customers/{}", m["customer_id"].as_str().unwrap()),
            Some(&d.agent),
        )
        .body;
    assert_eq!(
        customer["handles"][0]["external_user_id"], "501",
        "{customer}"
    );

    // Nothing new: nothing recorded, not even a repeat.
    let again = countersign::app::ingest::poll_once(&app.ctx, x.as_ref()).unwrap();
    assert_eq!(again, Default::default());
    // Two new ones, more than a page apart in time: both, oldest first.
    let a = fake.mention("501", "Jane_Doe", "@ExampleCare any news?");
    let c = fake.mention("503", "carol", "@examplecare hello");
    let polled = countersign::app::ingest::poll_once(&app.ctx, x.as_ref()).unwrap();
    assert_eq!(polled.created, 2, "{polled:?}");
    let received: Vec<String> = app
        .entries_of("inbound.received")
        .iter()
        .map(|e| e["data"]["external_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(received, [first.clone(), a, c]);
    // The same author is the same customer.
    let jane: Vec<Value> = app
        .entries_of("inbound.received")
        .into_iter()
        .filter(|e| e["data"]["author_handle"] == "jane_doe")
        .collect();
    assert_eq!(jane.len(), 2);
    assert_eq!(
        jane[0]["data"]["customer_id"],
        jane[1]["data"]["customer_id"]
    );
}

fn sign(body: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn the_webhook_takes_only_signed_events(b: Backend) {
    let fake = FakeX::start(ACCESS, REFRESH);
    let Some(app) = app(b, &fake) else { return };
    let crc = app.get("/api/v1/channels/x/webhook?crc_token=challenge-123", None);
    assert_eq!(crc.status, 200, "{}", crc.text);
    assert_eq!(crc.body["response_token"], sign("challenge-123"));

    let event = json!({
        "for_user_id": fake_x::ACCOUNT_ID,
        "tweet_create_events": [
            {"id_str": "1900000000000099001", "text": "@ExampleCare where is my order?",
             "created_at": "Wed Oct 10 20:19:24 +0000 2018",
             "user": {"id_str": "777", "screen_name": "Dana_K"}},
            {"id_str": "1900000000000099002", "text": "@Dana_K we are on it",
             "user": {"id_str": fake_x::ACCOUNT_ID, "screen_name": fake_x::ACCOUNT_NAME}}
        ]
    })
    .to_string();
    let before = app.audit_size();
    for forged in ["", "sha256=AAAA", &sign("another body")] {
        let r = app.post_signed(
            "/api/v1/channels/x/webhook",
            &[
                ("content-type", "application/json"),
                ("x-twitter-webhooks-signature", forged),
            ],
            event.as_bytes(),
        );
        assert_eq!(r.status, 401, "{forged:?}: {}", r.text);
        assert_eq!(r.body["error"], "unauthorized");
    }
    assert_eq!(app.audit_size(), before, "a forged event changes nothing");

    let r = app.post_signed(
        "/api/v1/channels/x/webhook",
        &[
            ("content-type", "application/json"),
            ("x-twitter-webhooks-signature", &sign(&event)),
        ],
        event.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["created"], 1, "our own post is not a mention");
    let got = app.entries_of("inbound.received");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["external_id"], "1900000000000099001");
    assert_eq!(got[0]["data"]["author_handle"], "dana_k");
    assert_eq!(got[0]["data"]["received_at"], "2018-10-10T20:19:24.000000Z");
    // The same event again (X retries deliveries): nothing new.
    let r = app.post_signed(
        "/api/v1/channels/x/webhook",
        &[
            ("content-type", "application/json"),
            ("x-twitter-webhooks-signature", &sign(&event)),
        ],
        event.as_bytes(),
    );
    assert_eq!(r.body["created"], 0, "{}", r.text);
}

/// `serve` is killed (`kill -9`) after X created the post and before the result was
/// committed. The next run reconciles: one post on X, the draft `posted`. The whole run,
/// with a token refresh, leaves no token or secret in the logs, the API or the audit log.
#[test]
fn a_kill_between_xs_answer_and_the_commit_ends_with_one_post_and_no_secret_shown() {
    let fake = FakeX::start(ACCESS, REFRESH);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let settings = settings(&fake);
    let mut envs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // As much logging as there is: no secret may be in any of it.
    envs.push((
        "RUST_LOG",
        "trace,ureq=trace,ureq::unversioned=trace,ureq_proto=trace",
    ));
    for args in [
        &["ana", "--role", "agent"][..],
        &["rui", "--role", "reviewer"][..],
        &["aud", "--role", "auditor"][..],
    ] {
        assert!(crate::cli::add_user_with(home, args, &envs)
            .status
            .success());
    }
    let policies = crate::cli::repo("policies");
    let mut serve = crate::cli::Server::start_with(home, &policies, &envs, "first.log");
    let (agent, reviewer) = (serve.login("ana"), serve.login("rui"));
    let post = fake.mention("51", "cust1", "@ExampleCare my parcel is late");
    let (status, m) = serve.post(
        "/api/v1/inbound",
        &agent,
        &json!({"channel": "x", "external_id": post, "author": {"handle": "cust1", "external_user_id": "51"}, "text": "@ExampleCare my parcel is late"}),
    );
    assert_eq!(status, 201, "{m}");
    let (status, d) = serve.post(
        "/api/v1/drafts",
        &agent,
        &json!({"inbound_id": m["id"], "text": "So sorry! A courier is on the way & will call ahead."}),
    );
    assert_eq!(status, 201, "{d}");
    let draft = d["id"].as_str().unwrap().to_string();
    let (status, _) = serve.post(
        &format!("/api/v1/drafts/{draft}/submit"),
        &agent,
        &json!({}),
    );
    assert_eq!(status, 200);
    // The token has expired (a refresh happens first), and X dies... no: we die, right
    // after X made the post.
    fake.fault(Fault::ExpireToken);
    let pid = serve.pid().to_string();
    fake.fault(Fault::AfterCreate(Box::new(move || {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
    })));
    let (status, r) = serve.post(
        &format!("/api/v1/drafts/{draft}/reviews"),
        &reviewer,
        &json!({"decision": "approve", "comment": "", "revision": 1}),
    );
    assert_eq!(status, 200, "{r}");
    let exit = serve.wait_for_exit();
    assert!(!exit.success(), "killed: {exit:?}");
    assert_eq!(fake.replies_to(&post).len(), 1, "X made the post");
    drop(serve);

    // The lease of the killed run runs out (as two minutes would).
    {
        use diesel::RunQueryDsl;
        let db = countersign::db::Db::connect(
            &format!("sqlite://{}", home.join("countersign.db").display()),
            1,
        )
        .unwrap();
        diesel::sql_query("UPDATE jobs SET lease_expires_at = '2000-01-01 00:00:00'")
            .execute(&mut *db.conn().unwrap())
            .unwrap();
    }
    let serve = crate::cli::Server::start_with(home, &policies, &envs, "second.log");
    let auditor = serve.login("aud");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let view = loop {
        let (_, v) = serve.get(&format!("/api/v1/drafts/{draft}"), &auditor);
        if v["state"] == "posted" || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(view["state"], "posted", "{view}");
    let replies = fake.replies_to(&post);
    assert_eq!(replies.len(), 1, "one post on X after the crash");
    assert_eq!(view["posting"]["post_id"], replies[0].id.as_str());
    assert_eq!(fake.state.lock().unwrap().refreshes, 1);

    let mut shown = String::new();
    for log in ["first.log", "second.log"] {
        shown.push_str(&std::fs::read_to_string(home.join(log)).unwrap());
    }
    assert!(
        shown.contains("reply posted") || shown.contains("found the reply"),
        "the logs are there"
    );
    shown.push_str(
        &serve
            .get("/api/v1/audit?limit=1000", &auditor)
            .1
            .to_string(),
    );
    shown.push_str(&view.to_string());
    for secret in [
        ACCESS,
        REFRESH,
        "access-1-fresh",
        "refresh-1-fresh",
        fake_x::CLIENT_SECRET,
        WEBHOOK_SECRET,
    ] {
        let at = shown.find(secret);
        assert!(
            at.is_none(),
            "{secret} was shown: …{}…",
            at.map(|i| shown[i.saturating_sub(300)..(i + 100).min(shown.len())].to_string())
                .unwrap_or_default()
        );
    }
}
