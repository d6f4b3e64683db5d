//! The log under real processes: `kill -9` in the middle of a burst of writes loses nothing
//! that was acknowledged, and two instances on one PostgreSQL append to one gap-free log
//! with one checkpoint per size.

use crate::cli::{add_user_with, bin, repo, Server};
use crate::common::{Backend, TestDb};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

on_both_backends!(kill_9_during_a_burst_loses_nothing_acknowledged,);

#[test]
fn two_instances_on_one_postgres_append_to_one_log() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let dir = db.dir.path().to_path_buf();
    let key = dir.join("shared.key");
    let envs = [
        ("COUNTERSIGN_DATABASE_URL", db.url.as_str()),
        ("COUNTERSIGN_KEY_FILE", key.to_str().unwrap()),
        ("COUNTERSIGN_CHECKPOINT_EVERY", "7"),
        ("COUNTERSIGN_POST_LOG", "posted.jsonl"),
    ];
    assert!(add_user_with(&dir, &["ana", "--role", "agent"], &envs)
        .status
        .success());
    let a = Server::start_with(&dir, &repo("policies"), &envs, "a.log");
    let b = Server::start_with(&dir, &repo("policies"), &envs, "b.log");
    let tokens = [a.login("ana"), b.login("ana")];
    let urls = [a.url.clone(), b.url.clone()];
    let acked = Mutex::new([0usize; 2]);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (urls, tokens, acked) = (&urls, &tokens, &acked);
            s.spawn(move || {
                let http: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for i in 0..25 {
                    let which = (t + i) % 2;
                    let r = http
                        .post(format!("{}/api/v1/inbound", urls[which]))
                        .header("Authorization", format!("Bearer {}", tokens[which]))
                        .send_json(json!({"channel": "x", "external_id": format!("{t}-{i}"),
                                          "author": {"handle": format!("c{t}")}, "text": "hi"}))
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    acked.lock().unwrap()[which] += 1;
                    // Spread the burst over a few of the checkpointers' one-second looks,
                    // so that checkpoints are made while the log grows.
                    std::thread::sleep(Duration::from_millis(120));
                }
            });
        }
    });
    // Let the checkpointers see the growth, then stop both.
    std::thread::sleep(Duration::from_millis(2500));
    for (server, log) in [(a, "a.log"), (b, "b.log")] {
        let status = server.terminate();
        assert!(
            status.success(),
            "{log}: {status:?}\n{}",
            std::fs::read_to_string(dir.join(log)).unwrap_or_default()
        );
    }
    assert!(acked.lock().unwrap().iter().all(|&n| n > 0));

    let out = bin()
        .args(["audit", "verify", "--state"])
        .envs(envs)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    // 1 policy.activated + user.created + 2 logins + 150 messages + 6 customers.
    assert_eq!(report["size"], 160, "{report}");
    let pool = countersign::db::Db::connect(&db.url, 1).unwrap();
    let mut conn = pool.conn().unwrap();
    let sizes: Vec<i64> = countersign::db::audit::checkpoints(&mut conn)
        .unwrap()
        .iter()
        .map(|c| c.tree_size)
        .collect();
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]),
        "one per size: {sizes:?}"
    );
}

fn kill_9_during_a_burst_loses_nothing_acknowledged(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let dir = db.dir.path().to_path_buf();
    let url = match b {
        Backend::Sqlite => format!("sqlite://{}", dir.join("cs.db").display()),
        Backend::Postgres => db.url.clone(),
    };
    let key = dir.join("cs.key");
    let envs = [
        ("COUNTERSIGN_DATABASE_URL", url.as_str()),
        ("COUNTERSIGN_KEY_FILE", key.to_str().unwrap()),
        ("COUNTERSIGN_POST_LOG", "posted.jsonl"),
    ];
    assert!(add_user_with(&dir, &["ana", "--role", "agent"], &envs)
        .status
        .success());
    let server = Server::start_with(&dir, &repo("policies"), &envs, "first.log");
    let token = server.login("ana");
    let acked: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (url, token, acked, failed) = (&server.url, &token, &acked, &failed);
            s.spawn(move || {
                let http: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                for i in 0.. {
                    let id = format!("{t}-{i}");
                    let r = http
                        .post(format!("{url}/api/v1/inbound"))
                        .header("Authorization", format!("Bearer {token}"))
                        .send_json(json!({"channel": "x", "external_id": id,
                                          "author": {"handle": format!("c{t}")}, "text": "hi"}));
                    match r {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(id),
                        Ok(r) => panic!("{id}: {}", r.status()),
                        Err(_) => {
                            failed.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            });
        }
        // Kill once the burst is under way (however busy the machine is), bounded.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().len() <= 10 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        server.signal("-KILL");
    });
    assert!(
        failed.load(Ordering::SeqCst),
        "the burst was cut by the kill"
    );
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() > 10, "the burst was under way: {}", acked.len());

    // The service starts again on what the kill left, and nothing is inconsistent.
    drop(server);
    let again = Server::start_with(&dir, &repo("policies"), &envs, "second.log");
    let status = again.terminate();
    assert!(
        status.success(),
        "second.log: {status:?}\n{}",
        std::fs::read_to_string(dir.join("second.log")).unwrap_or_default()
    );
    let out = bin()
        .args(["audit", "verify", "--state"])
        .envs(envs)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");

    let pool = countersign::db::Db::connect(&url, 1).unwrap();
    let mut conn = pool.conn().unwrap();
    for id in &acked {
        let m = countersign::db::inbound::by_external_id(&mut conn, "x", id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged message {id} was lost"));
        let entries = countersign::db::audit::query(
            &mut conn,
            &countersign::db::audit::AuditFilter {
                subject: Some(m.id.to_string()),
                action: Some("inbound.received".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(entries.len(), 1, "{id} has its entry");
    }
}
