//! Who signs the log (spec/audit.md "Checkpoints"): the key file, the origin and the
//! retention recorded at first start; a later start with another is refused, clearly.

use crate::common::{test_settings, Backend, TestApp, TestDb};
use countersign::audit::note::{Checkpoint, NoteVerifier};
use countersign::domain::roles::Role;
use countersign::startup::Application;
use std::os::unix::fs::PermissionsExt;

on_both_backends!(
    a_second_start_with_another_origin_key_or_retention_is_refused,
    checkpoints_follow_the_log_every_n_entries,
);

fn refused(db: &TestDb, extra: &[(&str, &str)]) -> String {
    match Application::build(test_settings(db, extra)) {
        Ok(_) => panic!("the start must be refused with {extra:?}"),
        Err(e) => e.to_string(),
    }
}

fn a_second_start_with_another_origin_key_or_retention_is_refused(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let origin = [("COUNTERSIGN_LOG_ORIGIN", "example.com/care")];
    let app = TestApp::start(db, &origin);
    let key_file = app.settings.key_file.clone();
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is the service's alone");
    let auditor = app.user("aud", &[Role::Auditor]);
    let key = app.get("/api/v1/audit/key", Some(&auditor)).text;
    assert!(key.starts_with("example.com/care+"), "{key}");
    let first_key = std::fs::read_to_string(&key_file).unwrap();
    let db = app.stop();

    // Another origin.
    let e = refused(&db, &[("COUNTERSIGN_LOG_ORIGIN", "example.com/other")]);
    assert!(
        e.contains("example.com/care") && e.contains("origin"),
        "{e}"
    );
    // No origin setting: the recorded one is used.
    let app = TestApp::start(db, &[]);
    let auditor = app.login("aud");
    assert_eq!(app.get("/api/v1/audit/key", Some(&auditor)).text, key);
    let db = app.stop();

    // Readable by others.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = refused(&db, &origin);
    assert!(
        e.contains("chmod 600") && e.contains(key_file.to_str().unwrap()),
        "{e}"
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Malformed.
    std::fs::write(&key_file, "not a key\n").unwrap();
    let e = refused(&db, &origin);
    assert!(e.contains("not a Countersign signing key"), "{e}");

    // Another key for the same origin.
    let other = countersign::audit::note::NoteSigner::generate("example.com/care").unwrap();
    std::fs::write(&key_file, other.to_private_text()).unwrap();
    let e = refused(&db, &origin);
    assert!(e.contains("signed by"), "{e}");

    // Missing: a new key would sign a second history.
    std::fs::remove_file(&key_file).unwrap();
    let e = refused(&db, &origin);
    assert!(e.contains("missing"), "{e}");
    assert!(!key_file.exists(), "no new key is made for an existing log");

    std::fs::write(&key_file, &first_key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Retention: lower refused, higher recorded.
    let e = refused(&db, &[("COUNTERSIGN_RETENTION_YEARS", "2")]);
    assert!(e.contains("retention") || e.contains("RETENTION"), "{e}");
    let app = TestApp::start(db, &[("COUNTERSIGN_RETENTION_YEARS", "10")]);
    let db = app.stop();
    let e = refused(&db, &[("COUNTERSIGN_RETENTION_YEARS", "6")]);
    assert!(e.contains("10 years"), "{e}");
    let app = TestApp::start(db, &[("COUNTERSIGN_RETENTION_YEARS", "10")]);
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &[]);
    assert!(ok, "{report}");
}

fn checkpoints_follow_the_log_every_n_entries(b: Backend) {
    let Some(app) = TestApp::spawn_with(b, &[("COUNTERSIGN_CHECKPOINT_EVERY", "5")]) else {
        return;
    };
    let agent = app.user("ana", &[Role::Agent]);
    for i in 0..6 {
        app.inbound(&agent, &format!("m{i}"), &format!("@c{i}"), "hello");
    }
    let head = app.audit_size();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let sizes = loop {
        let mut conn = app.ctx.db.conn().unwrap();
        let sizes: Vec<i64> = countersign::db::audit::checkpoints(&mut conn)
            .unwrap()
            .iter()
            .map(|c| c.tree_size)
            .collect();
        if sizes.last().is_some_and(|&s| s >= head - 4) {
            break sizes;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "checkpoints: {sizes:?}, head {head}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        sizes.len() >= 2,
        "one at start, more as the log grew: {sizes:?}"
    );
    assert!(
        sizes.windows(2).all(|w| w[0] < w[1]),
        "one per size: {sizes:?}"
    );
    // Each is a valid signed note over the root at its size.
    let auditor = app.user("aud", &[Role::Auditor]);
    let verifier = NoteVerifier::parse(&app.get("/api/v1/audit/key", Some(&auditor)).text).unwrap();
    let mut conn = app.ctx.db.conn().unwrap();
    for cp in countersign::db::audit::checkpoints(&mut conn).unwrap() {
        let c = Checkpoint::open(&cp.note, &verifier).unwrap();
        assert_eq!(c.size as i64, cp.tree_size);
        assert_eq!(
            c.root,
            countersign::db::audit::root_at(&mut conn, c.size).unwrap()
        );
    }
    // While the log does not grow by another 5, no checkpoint is made.
    drop(conn);
    let count = || {
        let mut conn = app.ctx.db.conn().unwrap();
        countersign::db::audit::checkpoints(&mut conn)
            .unwrap()
            .len()
    };
    let before = count();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(count(), before);
}
