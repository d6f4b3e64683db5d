//! The replay of real replies (`countersign replay`) against the real server, on a sample
//! of the corpus (tests/data/ORIGIN.md), with the brand configured as the organisation.

use crate::common::{Backend, TestApp};
use countersign::replay::{replay, ReplayArgs};

on_both_backends!(
    real_replies_are_all_posted_once_and_the_log_verifies,
    blocked_and_escalated_replies_are_reported
);

fn args(pairs: std::path::PathBuf, server: &str) -> ReplayArgs {
    ReplayArgs {
        pairs,
        server: Some(server.to_string()),
        limit: None,
        concurrency: 4,
        agent: None,
        reviewer: vec![],
        auditor: None,
        json: false,
    }
}

fn real_replay_app(b: Backend) -> Option<TestApp> {
    let policies = crate::common::repo_path("examples/real-replay/policies")
        .display()
        .to_string();
    TestApp::spawn_with(b, &[("COUNTERSIGN_POLICIES", &policies)])
}

fn real_replies_are_all_posted_once_and_the_log_verifies(b: Backend) {
    let Some(app) = real_replay_app(b) else {
        return;
    };
    let sample = crate::common::repo_path("tests/data/real-sample.jsonl");
    let pairs = countersign::replay::read_pairs(&sample, None)
        .unwrap()
        .len();
    let s = replay(&args(sample.clone(), &app.base), &app.settings).expect("the replay runs");
    assert_eq!(s.pairs, pairs);
    assert!(
        s.blocked.is_empty(),
        "a care team's real replies are not blocked: {:#?}",
        s.blocked
    );
    assert_eq!(
        s.final_states.get("posted"),
        Some(&pairs),
        "{:?}",
        s.final_states
    );
    assert_eq!(s.posted_lines, Some(pairs), "each posted exactly once");
    assert!(s.audit_ok);
    assert!(s.requests_per_second > 0.0);
    // Every entry of the run is in the log: per reply at least inbound, draft, submit,
    // approval and post.
    assert!(s.audit_size as usize >= pairs * 5, "{}", s.audit_size);

    // A second run finds every message answered and changes nothing.
    let size = app.audit_size();
    let again = replay(&args(sample, &app.base), &app.settings).unwrap();
    assert_eq!(again.skipped, pairs);
    assert_eq!(app.posted_lines().len(), pairs);
    // Only the second run's four users and their sign-ins were added.
    assert_eq!(app.audit_size(), size + 8);
}

fn blocked_and_escalated_replies_are_reported(b: Backend) {
    let Some(app) = real_replay_app(b) else {
        return;
    };
    let file = app.db.dir.path().join("pairs.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"id": "9001", "customer_handle": "@1", "customer_text": "my card?", "reply_text": "Just DM us your password and we'll sort it."}"#, "\n",
            r#"{"id": "9002", "customer_handle": "@2", "customer_text": "refund?", "reply_text": "Your money back, guaranteed."}"#, "\n",
            r#"{"id": "9003", "customer_handle": "@3", "customer_text": "hi", "reply_text": "Thanks for reaching out!"}"#, "\n",
        ),
    )
    .unwrap();
    let s = replay(&args(file, &app.base), &app.settings).unwrap();
    assert_eq!(s.verdicts.get("block"), Some(&1));
    assert_eq!(s.verdicts.get("escalate"), Some(&1));
    assert_eq!(s.verdicts.get("pass"), Some(&1));
    assert_eq!(s.blocked[0].id, "9001");
    assert_eq!(
        s.blocked[0].final_state, "draft",
        "a blocked reply is never submitted"
    );
    assert!(
        s.blocked[0]
            .findings
            .iter()
            .any(|f| f.starts_with("credentials")),
        "{:?}",
        s.blocked[0].findings
    );
    assert_eq!(s.escalated[0].id, "9002");
    assert_eq!(
        s.escalated[0].final_state, "posted",
        "two reviewers approved it"
    );
    assert_eq!(s.posted_lines, Some(2));
    let rendered = countersign::replay::render(&s);
    assert!(
        rendered.contains("blocked (1)") && rendered.contains("9001"),
        "{rendered}"
    );
}
