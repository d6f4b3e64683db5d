//! Business hours and deadlines (spec/api.md "Business hours and deadlines"): the published
//! schedule, `due_at` in business time through the API, at-risk and breached recorded once
//! each and mailed, the deadline frozen once answered, and bad tables refused at start.

use crate::common::{test_settings_from, Backend, TestApp, TestDb};
use chrono::Duration;
use countersign::domain::roles::Role;
use serde_json::json;

on_both_backends!(
    the_schedule_is_public_and_says_whether_the_team_is_online,
    the_deadline_counts_business_time_only,
    at_risk_and_breached_are_recorded_once_and_mailed,
);

const LISBON: &str = r#"
[hours]
time_zone = "Europe/Lisbon"
reply_within_minutes = 120
at_risk_minutes = 30
holidays = ["2025-12-25", "2026-12-25", "2027-01-01"]
[hours.week]
mon = ["09:00-18:00"]
tue = ["09:00-12:30", "13:30-18:00"]
wed = ["09:00-18:00"]
thu = ["09:00-18:00"]
fri = ["09:00-18:00"]
"#;

/// Open all day, every day, in UTC: business time is real time, but through the table.
const ALWAYS: &str = r#"
[hours]
time_zone = "UTC"
[hours.week]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]
"#;

fn the_schedule_is_public_and_says_whether_the_team_is_online(b: Backend) {
    let Some(app) = TestApp::spawn_with_file(b, LISBON, &[]) else {
        return;
    };
    let r = app.get("/api/v1/hours", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["time_zone"], "Europe/Lisbon");
    assert_eq!(
        r.body["week"]["tue"],
        json!([["09:00", "12:30"], ["13:30", "18:00"]])
    );
    assert_eq!(r.body["week"]["sat"], json!([]));
    assert_eq!(
        r.body["holidays"],
        json!(["2025-12-25", "2026-12-25", "2027-01-01"])
    );
    assert!(r.body["online"].is_boolean());
    let next =
        chrono::DateTime::parse_from_rfc3339(r.body["next_change"].as_str().unwrap()).unwrap();
    assert!(next.to_utc() > app.ctx.clock.now());
    assert!(next.to_utc() < app.ctx.clock.now() + Duration::days(4));

    let Some(plain) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let r = plain.get("/api/v1/hours", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"configured": false, "online": true}));
}

fn receive(app: &TestApp, token: &str, id: &str, received_at: &str) -> serde_json::Value {
    let r = app.post(
        "/api/v1/inbound",
        Some(token),
        &json!({"channel": "x", "external_id": id, "author": {"handle": "@cust"},
                "text": "where is my parcel?", "received_at": received_at}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

fn the_deadline_counts_business_time_only(b: Backend) {
    let Some(app) = TestApp::spawn_with_file(b, LISBON, &[]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    // Friday 17:00 in Lisbon: an hour that day, then the weekend, then Monday 09:00-10:00.
    let m = receive(&app, &agent, "1", "2026-11-27T17:00:00Z");
    assert_eq!(m["due_at"], "2026-11-30T10:00:00.000000Z");
    // Tuesday 11:45: 45 minutes to the lunch break, then 13:30-14:45.
    let m = receive(&app, &agent, "2", "2026-12-01T11:45:00Z");
    assert_eq!(m["due_at"], "2026-12-01T14:45:00.000000Z");
    // Christmas Eve 2025 (a Wednesday) 17:00: one hour, then Christmas, then Friday.
    let m = receive(&app, &agent, "3", "2025-12-24T17:00:00Z");
    assert_eq!(m["due_at"], "2025-12-26T10:00:00.000000Z");
    assert_eq!(m["deadline"], "breached", "{m}");
    // The log holds the deadline the message was given.
    let received = app.entries_of("inbound.received");
    assert_eq!(received[0]["data"]["due_at"], "2026-11-30T10:00:00.000000Z");
}

fn at_risk_and_breached_are_recorded_once_and_mailed(b: Backend) {
    let Some(app) = TestApp::spawn_with_file(b, ALWAYS, &[]) else {
        return;
    };
    let agent = app.user_with_email("ana", &[Role::Agent], Some("ana@example.com"));
    app.user_with_email("bea", &[Role::Agent], Some("bea@example.com"));
    app.user_with_email("rui", &[Role::Reviewer], Some("rui@example.com"));
    let sweep = || countersign::app::deadlines::sweep(&app.ctx).unwrap();
    let now = countersign::domain::time::format_utc(app.ctx.clock.now());
    let quiet = receive(&app, &agent, "q", &now);
    let m = receive(&app, &agent, "m", &now);
    let id = m["id"].as_str().unwrap().to_string();
    assert_eq!(m["deadline"], "on_time");
    // ana drafts for one message: she, not every agent, hears about that one.
    let draft = app.draft(&agent, &id, "We're looking into it.");
    assert_eq!(sweep(), 0, "nothing due: nothing recorded");

    app.advance(Duration::minutes(91));
    assert_eq!(sweep(), 2);
    assert_eq!(sweep(), 0, "once");
    let view = app.get(&format!("/api/v1/inbound/{id}"), Some(&agent)).body;
    assert_eq!(view["deadline"], "at_risk");
    let at_risk = app.entries_of("inbound.at_risk");
    assert_eq!(at_risk.len(), 2);
    assert_eq!(at_risk[1]["subject"], id.as_str());
    assert_eq!(at_risk[1]["data"]["due_at"], m["due_at"]);
    app.run_jobs();
    let mails = app.mail_files();
    let to_of = |subject: &str| {
        let mut to: Vec<String> = mails
            .iter()
            .filter(|m| m.contains(&format!("Subject: {subject}")) && m.contains(subject))
            .filter_map(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("To: "))
                    .map(str::to_string)
            })
            .collect();
        to.sort();
        to
    };
    // Two messages: for the drafted one ana and rui, for the other every agent and rui.
    assert_eq!(
        to_of("At risk:"),
        [
            "ana <ana@example.com>",
            "ana <ana@example.com>",
            "bea <bea@example.com>",
            "rui <rui@example.com>",
            "rui <rui@example.com>"
        ]
    );
    for mail in &mails {
        assert!(!mail.contains("parcel"), "no customer text in mail: {mail}");
    }

    // The drafted one is answered before its deadline; the other is breached.
    let reviewer = app.login("rui");
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    assert_eq!(app.review(&reviewer, &draft, "approve", 1).status, 200);
    app.run_jobs();
    assert_eq!(
        app.get(&format!("/api/v1/drafts/{draft}"), Some(&agent))
            .body["state"],
        "posted"
    );
    app.advance(Duration::minutes(30));
    assert_eq!(sweep(), 1);
    assert_eq!(sweep(), 0);
    let breached = app.entries_of("inbound.breached");
    assert_eq!(breached.len(), 1);
    assert_eq!(breached[0]["subject"], quiet["id"]);
    let view = app.get(&format!("/api/v1/inbound/{id}"), Some(&agent)).body;
    assert_eq!(view["state"], "answered");
    assert_eq!(view["deadline"], "at_risk", "frozen when answered: {view}");
    let queue = app.get("/api/v1/inbound?state=open", Some(&agent)).body;
    assert_eq!(queue.as_array().unwrap().len(), 1);
    assert_eq!(queue[0]["deadline"], "breached");
    app.run_jobs();
    let breached_mails: Vec<String> = app
        .mail_files()
        .into_iter()
        .filter(|m| m.contains("Subject: Breached:"))
        .collect();
    assert_eq!(breached_mails.len(), 3, "bea, ana (every agent) and rui");
}

#[test]
fn a_bad_hours_table_stops_the_start_naming_the_key() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let cases = [
        ("[hours]\ntime_zone = \"Europe/Lisbonn\"\n[hours.week]\nmon = [\"09:00-18:00\"]\n", "hours.time_zone"),
        ("[hours]\ntime_zone = \"UTC\"\n[hours.week]\nmon = [\"09:00-13:00\", \"12:00-18:00\"]\n", "hours.week.mon"),
        ("[hours]\ntime_zone = \"UTC\"\n[hours.week]\ntue = [\"18:00-09:00\"]\n", "hours.week.tue[0]"),
        ("[hours]\ntime_zone = \"UTC\"\n[hours.week]\n", "hours.week"),
        ("[hours]\ntime_zone = \"UTC\"\nholidays = [\"2026-02-30\"]\n[hours.week]\nmon = [\"09:00-18:00\"]\n", "hours.holidays[0]"),
    ];
    for (text, key) in cases {
        let path = db.dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let err = countersign::config::Settings::from_sources(Some(&path), &Default::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("setting {key}:")), "{key}: {err}");
        assert!(err.contains("bad.toml"), "{err}");
    }
    // And a good one loads.
    let _ = test_settings_from(&db, Some(LISBON), &[]);
}
