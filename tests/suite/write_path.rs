//! The write path under concurrency (issue 19): SQLite's group commit (several requests'
//! work in one transaction, each in its own savepoint, answered after the commit), and
//! PostgreSQL's short head lock (decisions serialised by the rows they lock instead).

use crate::audit_tamper::verify_cli;
use crate::common::{Backend, TestApp};
use countersign::audit::{Actor, AuditAction};
use countersign::db::{self, schema::audit_entries, DbConn};
use countersign::domain::roles::Role;
use countersign::error::Error;
use diesel::prelude::*;
use serde_json::json;
use std::sync::Barrier;
use std::time::Duration;

on_both_backends!(
    a_failing_write_in_a_group_rolls_back_alone,
    a_write_that_panics_leaves_nothing_behind,
    two_reviewers_approving_an_escalated_draft_at_once_both_count,
    approving_two_sibling_drafts_at_once_posts_one_answer,
    concurrent_failed_sign_ins_all_count_towards_the_lock,
    the_same_post_arriving_twice_at_once_is_recorded_once,
);

const ESCALATED: &str = "Your money back, guaranteed.";
const PLAIN: &str = "Thanks for writing, we are looking into it now.";

/// Records one entry about `subject` (a `customer.updated`; no customer row needed).
fn note(conn: &mut DbConn, subject: &str) -> countersign::error::Result<()> {
    db::audit::append(
        conn,
        chrono::Utc::now().naive_utc(),
        &Actor::System,
        Some(&subject),
        &AuditAction::CustomerUpdated {
            crm_ref: Some(subject.to_string()),
            previous_crm_ref: None,
        },
    )
}

fn subjects(app: &TestApp) -> Vec<String> {
    let mut conn = app.ctx.db.conn().unwrap();
    audit_entries::table
        .select(audit_entries::subject)
        .filter(audit_entries::action.eq("customer.updated"))
        .load::<Option<String>>(&mut *conn)
        .unwrap()
        .into_iter()
        .flatten()
        .collect()
}

/// Eight writes at once, the first slow so that the others queue behind it and share its
/// commit; one of them fails after recording its entry. Its entry is gone, every other is
/// there, each request saw its own entry committed the moment it was answered, and the log
/// verifies.
fn a_failing_write_in_a_group_rolls_back_alone(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let before = app.ctx.db.write_stats();
    let size = app.audit_size();
    let start = Barrier::new(8);
    std::thread::scope(|s| {
        for i in 0..8 {
            let (app, start) = (&app, &start);
            s.spawn(move || {
                let mut conn = app.ctx.db.conn().unwrap();
                if i > 0 {
                    start.wait();
                    std::thread::sleep(Duration::from_millis(20));
                }
                let subject = format!("w{i}");
                let result = db::write_tx(&mut conn, |conn| {
                    if i == 0 {
                        start.wait();
                        // Hold the writer while the others arrive.
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    note(conn, &subject)?;
                    if i == 3 {
                        return Err(Error::Conflict("this one fails".into()));
                    }
                    Ok(())
                });
                if i == 3 {
                    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
                } else {
                    result.unwrap();
                    // Answered only after the commit: another connection sees it at once.
                    assert!(subjects(app).contains(&subject), "{subject} not committed");
                }
            });
        }
    });
    let mut seen = subjects(&app);
    seen.sort();
    assert_eq!(seen, ["w0", "w1", "w2", "w4", "w5", "w6", "w7"]);
    assert_eq!(app.audit_size(), size + 7);
    if let (Some(before), Some(after)) = (before, app.ctx.db.write_stats()) {
        let (groups, requests) = (
            after.groups - before.groups,
            after.requests - before.requests,
        );
        assert_eq!(requests, 8);
        assert!(groups < 8, "{groups} commits for 8 requests: none grouped");
    }
    let (ok, report) = verify_cli(&app, &[]);
    assert!(ok, "{report}");
}

/// A write that panics after recording an entry: nothing of it is written, and the next
/// write on the same thread records its own entry alone (the panicking one's does not
/// ride along).
fn a_write_that_panics_leaves_nothing_behind(b: Backend) {
    let Some(app) = TestApp::spawn_without_workers(b, &[]) else {
        return;
    };
    let size = app.audit_size();
    let mut conn = app.ctx.db.conn().unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db::write_tx(&mut conn, |conn| {
            note(conn, "ghost")?;
            panic!("a bug in the middle of a write");
            #[allow(unreachable_code)]
            Ok(())
        })
    }));
    assert!(panicked.is_err());
    drop(conn);
    let mut conn = app.ctx.db.conn().unwrap();
    db::write_tx(&mut conn, |conn| note(conn, "real")).unwrap();
    assert_eq!(subjects(&app), ["real"]);
    assert_eq!(app.audit_size(), size + 1);
    let (ok, report) = verify_cli(&app, &[]);
    assert!(ok, "{report}");
}

fn submitted_draft(app: &TestApp, agent: &str, external_id: &str, text: &str) -> String {
    let inbound = app.inbound(agent, external_id, "@c", "help");
    let draft = app.draft(agent, &inbound, text);
    let r = app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(agent));
    assert_eq!(r.status, 200, "{}", r.text);
    draft
}

/// Without the draft's row locked, two approvals at once would each count only itself and
/// leave the draft waiting with two approvals. Several rounds, to give a race its chance.
fn two_reviewers_approving_an_escalated_draft_at_once_both_count(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    let reviewers = [
        app.user("rui", &[Role::Reviewer]),
        app.user("eva", &[Role::Reviewer]),
    ];
    for round in 0..5 {
        let draft = submitted_draft(&app, &agent, &format!("e{round}"), ESCALATED);
        let start = Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = reviewers
                .iter()
                .map(|r| {
                    let (app, start, draft) = (&app, &start, &draft);
                    s.spawn(move || {
                        start.wait();
                        app.review(r, draft, "approve", 1).status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(statuses, [200, 200], "round {round}");
        let d = app.wait_for_state(&agent, &draft, "posted");
        assert_eq!(d["reviews"].as_array().map(Vec::len), Some(2), "{d}");
    }
    assert_eq!(app.posted_lines().len(), 5);
    let (ok, report) = verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

/// Two drafts answer one message; two reviewers approve one each at the same moment. One
/// approval wins, the other is refused (409) or finds its draft superseded: the customer
/// gets one answer.
fn approving_two_sibling_drafts_at_once_posts_one_answer(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agents = [
        app.user("ana", &[Role::Agent]),
        app.user("ivo", &[Role::Agent]),
    ];
    let reviewers = [
        app.user("rui", &[Role::Reviewer]),
        app.user("eva", &[Role::Reviewer]),
    ];
    for round in 0..5 {
        let inbound = app.inbound(&agents[0], &format!("s{round}"), "@c", "help");
        let drafts: Vec<String> = agents
            .iter()
            .map(|a| {
                let d = app.draft(a, &inbound, PLAIN);
                let r = app.post_empty(&format!("/api/v1/drafts/{d}/submit"), Some(a));
                assert_eq!(r.status, 200, "{}", r.text);
                d
            })
            .collect();
        let start = Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = reviewers
                .iter()
                .zip(&drafts)
                .map(|(r, d)| {
                    let start = &start;
                    let app = &app;
                    s.spawn(move || {
                        start.wait();
                        app.review(r, d, "approve", 1).status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, [200, 409], "round {round}: {statuses:?}");
        let winner = &drafts[statuses.iter().position(|s| *s == 200).unwrap()];
        app.wait_for_state(&agents[0], winner, "posted");
    }
    let lines = app.posted_lines();
    assert_eq!(lines.len(), 5, "one answer per message: {lines:?}");
    let (ok, report) = verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}

/// Ten wrong passwords at once for one user: each is counted, so the user is locked
/// afterwards, even with the right password.
fn concurrent_failed_sign_ins_all_count_towards_the_lock(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.user("rui", &[Role::Reviewer]);
    let start = Barrier::new(10);
    std::thread::scope(|s| {
        for _ in 0..10 {
            let (app, start) = (&app, &start);
            s.spawn(move || {
                start.wait();
                // Sign-ins beyond the hashing pool's width are shed ("overloaded"): retry.
                for _ in 0..100 {
                    let r = app.post(
                        "/api/v1/login",
                        None,
                        &json!({"username": "rui", "password": "not the password at all"}),
                    );
                    if r.body["error"] == "overloaded" {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    assert!(r.status == 401 || r.status == 429, "{}", r.text);
                    return;
                }
                panic!("sign-in stayed overloaded");
            });
        }
    });
    // Every failure before the lock is counted, none lost to a race: five get 401 and
    // their entries, the rest find the user locked.
    assert_eq!(app.entries_of("user.login_failed").len(), 5);
    let r = app.post(
        "/api/v1/login",
        None,
        &json!({"username": "rui", "password": crate::common::PASSWORD}),
    );
    assert_eq!(r.status, 429, "{}", r.text);
}

/// The same post from a poller and a webhook at once: one message, one customer, and both
/// callers get its id.
fn the_same_post_arriving_twice_at_once_is_recorded_once(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let agent = app.user("ana", &[Role::Agent]);
    for round in 0..5 {
        let start = Barrier::new(4);
        let ids: Vec<(u16, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    let (app, start, agent) = (&app, &start, &agent);
                    s.spawn(move || {
                        start.wait();
                        let r = app.post(
                            "/api/v1/inbound",
                            Some(agent),
                            &json!({"channel": "x", "external_id": format!("p{round}"),
                                    "author": {"handle": format!("new{round}")}, "text": "help"}),
                        );
                        (
                            r.status,
                            r.body["id"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let created = ids.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(created, 1, "round {round}: {ids:?}");
        assert!(
            ids.iter()
                .all(|(s, id)| (*s == 201 || *s == 200) && *id == ids[0].1),
            "{ids:?}"
        );
    }
    assert_eq!(app.entries_of("customer.created").len(), 5);
    assert_eq!(app.entries_of("inbound.received").len(), 5);
}
