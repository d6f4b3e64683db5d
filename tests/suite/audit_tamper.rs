//! Tampering as an attacker with access to the database would (issue "Why" list): each way
//! is refused by the database, or caught and named by `audit verify`, or, for a history
//! rewritten after the last stored checkpoint, by an auditor holding a later checkpoint.

use crate::common::{Backend, TestApp};
use base64::Engine;
use countersign::audit::note::{Checkpoint, NoteVerifier};
use countersign::audit::proof;
use countersign::domain::roles::Role;
use diesel::RunQueryDsl;
use serde_json::Value;

on_both_backends!(
    the_database_refuses_replace_low_seqs_and_moving_the_head,
    verify_checks_the_filter_columns_against_the_body,
    two_swapped_entries_are_named,
    a_row_outside_the_log_is_named_at_its_own_seq_and_never_shown,
    cut_off_or_deleted_entries_are_caught_by_the_checkpoints,
    a_rehashed_body_is_caught_by_the_checkpoint_that_covers_it,
    a_rewrite_after_the_last_stored_checkpoint_fails_the_auditors_consistency_proof,
    proofs_and_checkpoints_over_http_verify_for_every_size,
    bad_proof_parameters_answer_400_json,
    stored_roots_equal_the_recomputed_ones_for_every_size_to_300,
    a_bogus_checkpoint_row_does_not_switch_the_checkpoints_off,
    verify_checks_against_the_published_key,
    time_filters_return_exactly_the_entries_in_the_window,
);

fn exec(app: &TestApp, sql: &str) -> Result<usize, diesel::result::Error> {
    let mut conn = app.ctx.db.conn().expect("db");
    diesel::sql_query(sql).execute(&mut *conn)
}

/// Three customers' messages: 1 user.created + 3 × (customer.created + inbound.received).
fn seed(app: &TestApp, n: usize) -> String {
    let agent = app.user("ana", &[Role::Agent]);
    for i in 0..n {
        app.inbound(&agent, &format!("m{i}"), &format!("@c{i}"), "hello");
    }
    agent
}

pub fn verify_cli(app: &TestApp, extra: &[&str]) -> (bool, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(["audit", "verify"])
        .args(extra)
        .env("COUNTERSIGN_DATABASE_URL", &app.db.url)
        .env("COUNTERSIGN_KEY_FILE", &app.settings.key_file)
        .output()
        .expect("run countersign audit verify");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), report)
}

/// What an attacker with the owner's rights can do: take every guard off the audit tables.
pub fn drop_all_guards(app: &TestApp, b: Backend) {
    match b {
        Backend::Sqlite => {
            for t in [
                "audit_entries_no_update",
                "audit_entries_no_delete",
                "audit_entries_next_seq",
                "audit_checkpoints_no_update",
                "audit_checkpoints_no_delete",
                "audit_checkpoints_no_replace",
                "audit_checkpoints_in_log",
                "audit_tree_no_update",
                "audit_tree_no_delete",
                "audit_tree_no_replace",
                "audit_head_forward",
                "audit_head_no_delete",
                "audit_head_no_insert",
            ] {
                exec(app, &format!("DROP TRIGGER {t}")).unwrap();
            }
        }
        Backend::Postgres => {
            for t in [
                "audit_entries",
                "audit_checkpoints",
                "audit_tree",
                "audit_head",
            ] {
                exec(app, &format!("ALTER TABLE {t} DISABLE TRIGGER USER")).unwrap();
            }
            exec(
                app,
                "ALTER TABLE audit_entries DROP CONSTRAINT audit_entries_seq_positive",
            )
            .unwrap();
            exec(
                app,
                "ALTER TABLE audit_checkpoints DROP CONSTRAINT audit_checkpoints_size_positive",
            )
            .unwrap();
        }
    }
}

fn leaf_hex(body: &str) -> String {
    hex::encode(countersign::audit::leaf_hash(body.as_bytes()))
}

fn body_of(app: &TestApp, seq: i64) -> String {
    let mut conn = app.ctx.db.conn().unwrap();
    countersign::db::audit::rows_after(&mut conn, seq - 1, 1).unwrap()[0]
        .body
        .clone()
}

/// The body of an `inbound.received` entry with its customer's text changed.
fn shouted(body: &str) -> String {
    let edited = body.replace("hello", "HELLO");
    assert_ne!(edited, body, "not an inbound.received entry: {body}");
    edited
}

/// Replaces entry `seq`'s body and recomputes its leaf hash, as an attacker would.
fn rewrite(app: &TestApp, seq: i64, body: &str) {
    exec(
        app,
        &format!(
            "UPDATE audit_entries SET body = {}, leaf_hash = {} WHERE seq = {seq}",
            sql_text(body),
            sql_text(&leaf_hex(body))
        ),
    )
    .unwrap();
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn the_database_refuses_replace_low_seqs_and_moving_the_head(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app, 3);
    let size = app.audit_size();
    let copy = |seq: i64| {
        format!(
            "SELECT {seq}, at, actor, 'user.created', subject, body, leaf_hash FROM audit_entries WHERE seq = 2"
        )
    };
    let cols = "(seq, at, actor, action, subject, body, leaf_hash)";
    for seq in [0, -1, 2, size + 2] {
        assert!(
            exec(
                &app,
                &format!("INSERT INTO audit_entries {cols} {}", copy(seq))
            )
            .is_err(),
            "an entry with seq {seq} must be refused"
        );
    }
    match b {
        Backend::Sqlite => {
            for verb in ["REPLACE", "INSERT OR REPLACE"] {
                assert!(
                    exec(
                        &app,
                        &format!("{verb} INTO audit_entries {cols} {}", copy(2))
                    )
                    .is_err(),
                    "{verb} must be refused"
                );
            }
            assert!(exec(
                &app,
                "REPLACE INTO audit_head (id, size, tree_size) VALUES (1, 0, 0)"
            )
            .is_err());
            assert!(exec(&app, "REPLACE INTO audit_tree (level, idx, hash) SELECT level, idx, hash FROM audit_tree LIMIT 1").is_err());
        }
        Backend::Postgres => {
            assert!(exec(
                &app,
                &format!("INSERT INTO audit_entries {cols} {} ON CONFLICT (seq) DO UPDATE SET action = 'user.created'", copy(2))
            )
            .is_err());
            assert!(exec(&app, "TRUNCATE audit_head").is_err());
            assert!(exec(&app, "TRUNCATE audit_tree").is_err());
        }
    }
    assert!(exec(&app, "UPDATE audit_head SET size = size - 1").is_err());
    assert!(exec(&app, "UPDATE audit_head SET size = 0").is_err());
    assert!(exec(&app, "UPDATE audit_head SET size = size + 1").is_err());
    assert!(exec(&app, "DELETE FROM audit_head").is_err());
    assert!(exec(&app, "UPDATE audit_tree SET hash = hash").is_err());
    assert!(exec(&app, "DELETE FROM audit_tree").is_err());
    assert!(exec(&app, "UPDATE audit_log SET origin = 'evil'").is_err());
    assert!(exec(&app, "UPDATE audit_log SET retention_years = 1").is_err());
    assert!(exec(&app, "DELETE FROM audit_log").is_err());
    assert_eq!(app.audit_size(), size);
    let (ok, report) = verify_cli(&app, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["size"], size);
}

fn verify_checks_the_filter_columns_against_the_body(b: Backend) {
    for (column, value) in [
        ("at", "'2001-01-01 00:00:00'"),
        ("actor", "'system'"),
        ("action", "'user.login'"),
        ("subject", "NULL"),
    ] {
        let Some(app) = TestApp::spawn(b) else { return };
        seed(&app, 2);
        drop_all_guards(&app, b);
        let seq = app.first_seq("inbound.received");
        exec(
            &app,
            &format!("UPDATE audit_entries SET {column} = {value} WHERE seq = {seq}"),
        )
        .unwrap();
        let (ok, report) = verify_cli(&app, &[]);
        assert!(!ok, "{column}: {report}");
        assert_eq!(report["first_bad_seq"], seq, "{column}: {report}");
        assert!(
            report["reason"].as_str().unwrap().contains(column),
            "{column}: {report}"
        );
    }
}

fn two_swapped_entries_are_named(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app, 3);
    drop_all_guards(&app, b);
    let (x, y) = (3, 6);
    let (bx, by) = (body_of(&app, x), body_of(&app, y));
    rewrite(&app, x, &by);
    rewrite(&app, y, &bx);
    let (ok, report) = verify_cli(&app, &[]);
    assert!(!ok, "{report}");
    assert_eq!(report["first_bad_seq"], x, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("seq"),
        "{report}"
    );
}

fn a_row_outside_the_log_is_named_at_its_own_seq_and_never_shown(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app, 2);
    let auditor = app.user("aud", &[Role::Auditor]);
    let size = app.audit_size();
    let cols = "(seq, at, actor, action, subject, body, leaf_hash)";
    // The next seq is allowed by the database (an append), but the head does not move.
    let forged = body_of(&app, 1).replace("\"seq\":1", &format!("\"seq\":{}", size + 1));
    exec(
        &app,
        &format!(
            "INSERT INTO audit_entries {cols} SELECT {}, at, actor, action, subject, {}, {} FROM audit_entries WHERE seq = 1",
            size + 1,
            sql_text(&forged),
            sql_text(&leaf_hex(&forged)),
        ),
    )
    .unwrap();
    let (ok, report) = verify_cli(&app, &[]);
    assert!(!ok, "{report}");
    assert_eq!(report["first_bad_seq"], size + 1, "{report}");
    let page = app.get("/api/v1/audit?limit=1000", Some(&auditor));
    assert!(
        page.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["seq"].as_i64().unwrap() <= size + 1),
        "{}",
        page.text
    );
    let shown: Vec<i64> = page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(!shown.contains(&(size + 1)), "{shown:?}");

    // With the guards off, a forged admin at seq 0 is named, and never shown first.
    drop_all_guards(&app, b);
    exec(
        &app,
        &format!("INSERT INTO audit_entries {cols} SELECT 0, at, actor, action, subject, body, leaf_hash FROM audit_entries WHERE seq = 1"),
    )
    .unwrap();
    let (ok, report) = verify_cli(&app, &[]);
    assert!(!ok);
    assert_eq!(report["first_bad_seq"], 0, "{report}");
    let page = app.get("/api/v1/audit?limit=1", Some(&auditor));
    assert_eq!(page.body["entries"][0]["seq"], 1, "{}", page.text);
}

fn cut_off_or_deleted_entries_are_caught_by_the_checkpoints(b: Backend) {
    for keep in [4, 0] {
        let Some(app) = TestApp::spawn(b) else { return };
        seed(&app, 3);
        let mut conn = app.ctx.db.conn().unwrap();
        app.ctx.log.checkpoint_head(&mut conn).unwrap();
        drop(conn);
        drop_all_guards(&app, b);
        exec(
            &app,
            &format!("DELETE FROM audit_entries WHERE seq > {keep}"),
        )
        .unwrap();
        exec(
            &app,
            &format!("UPDATE audit_head SET size = {keep}, tree_size = {keep}"),
        )
        .unwrap();
        let (ok, report) = verify_cli(&app, &[]);
        assert!(!ok, "keep {keep}: {report}");
        assert!(
            report["reason"].as_str().unwrap().contains("checkpoint"),
            "keep {keep}: {report}"
        );
    }
}

fn a_rehashed_body_is_caught_by_the_checkpoint_that_covers_it(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app, 3);
    let mut conn = app.ctx.db.conn().unwrap();
    app.ctx.log.checkpoint_head(&mut conn).unwrap();
    drop(conn);
    drop_all_guards(&app, b);
    let seq = app.first_seq("inbound.received");
    let edited = shouted(&body_of(&app, seq));
    rewrite(&app, seq, &edited);
    let (ok, report) = verify_cli(&app, &[]);
    assert!(!ok, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("checkpoint"),
        "{report}"
    );
}

/// Everything after the last checkpoint the database still holds can be rewritten so that
/// the database alone looks intact; a checkpoint kept outside (mailed to auditors) catches it.
fn a_rewrite_after_the_last_stored_checkpoint_fails_the_auditors_consistency_proof(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let auditor = app.user("aud", &[Role::Auditor]);
    seed(&app, 3);
    let mut conn = app.ctx.db.conn().unwrap();
    let saved = app.ctx.log.checkpoint_head(&mut conn).unwrap();
    drop(conn);
    let verifier = NoteVerifier::parse(&app.get("/api/v1/audit/key", Some(&auditor)).text).unwrap();
    let saved = Checkpoint::open(&saved.note, &verifier).unwrap();
    let size = saved.size as i64;

    drop_all_guards(&app, b);
    // The attacker deletes the newest checkpoint, rewrites the last message before it and
    // rebuilds the tree.
    exec(
        &app,
        &format!("DELETE FROM audit_checkpoints WHERE tree_size = {size}"),
    )
    .unwrap();
    rewrite(&app, size, &shouted(&body_of(&app, size)));
    exec(&app, "DELETE FROM audit_tree").unwrap();
    exec(&app, "UPDATE audit_head SET tree_size = 0").unwrap();
    countersign::db::audit::fill_tree(&mut app.ctx.db.conn().unwrap()).unwrap();
    // One more honest entry, so there is a newer tree to prove consistency with.
    app.user("late", &[Role::Agent]);

    let (ok, report) = verify_cli(&app, &[]);
    assert!(ok, "the database alone cannot tell: {report}");

    let head = app.audit_size();
    let r = app.get(
        &format!("/api/v1/audit/proof/consistency?from={size}&to={head}"),
        Some(&auditor),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let hashes = decode_all(&r.body["hashes"]);
    let new_root = root_of(&app, &auditor, head);
    assert!(
        proof::verify_consistency(size as u64, head as u64, &saved.root, &new_root, &hashes)
            .is_err(),
        "the auditor's saved checkpoint must expose the rewrite"
    );
}

fn decode_all(v: &Value) -> Vec<[u8; 32]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            base64::engine::general_purpose::STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect()
}

/// The root at `size`, recomputed from the entries the API shows (as an auditor would).
fn root_of(app: &TestApp, token: &str, size: i64) -> [u8; 32] {
    let page = app.get("/api/v1/audit?limit=1000", Some(token));
    let leaves: Vec<[u8; 32]> = page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .take(size as usize)
        .map(|e| countersign::audit::leaf_hash(e["body"].as_str().unwrap().as_bytes()))
        .collect();
    assert_eq!(leaves.len() as i64, size);
    countersign::audit::tree_root(&leaves)
}

fn proofs_and_checkpoints_over_http_verify_for_every_size(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let auditor = app.user("aud", &[Role::Auditor]);
    seed(&app, 6);
    let mut conn = app.ctx.db.conn().unwrap();
    app.ctx.log.checkpoint_head(&mut conn).unwrap();
    drop(conn);
    let key = app.get("/api/v1/audit/key", Some(&auditor));
    assert_eq!(key.status, 200);
    let verifier = NoteVerifier::parse(&key.text).expect("a verifier key");
    let note = app.get("/api/v1/audit/checkpoint", Some(&auditor));
    assert_eq!(note.status, 200);
    let cp = Checkpoint::open(&note.text, &verifier).expect("a signed checkpoint");
    let head = app.audit_size();
    assert_eq!(cp.size as i64, head);
    assert_eq!(cp.root, root_of(&app, &auditor, head));

    let page = app.get("/api/v1/audit?limit=1000", Some(&auditor));
    let leaves: Vec<[u8; 32]> = page.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| countersign::audit::leaf_hash(e["body"].as_str().unwrap().as_bytes()))
        .collect();
    for size in 1..=head {
        let root = countersign::audit::tree_root(&leaves[..size as usize]);
        for seq in 1..=size {
            let r = app.get(
                &format!("/api/v1/audit/proof/inclusion?seq={seq}&size={size}"),
                Some(&auditor),
            );
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.body["leaf_index"], seq - 1);
            assert_eq!(r.body["tree_size"], size);
            let hashes = decode_all(&r.body["hashes"]);
            proof::verify_inclusion(
                (seq - 1) as u64,
                size as u64,
                &leaves[(seq - 1) as usize],
                &hashes,
                &root,
            )
            .unwrap_or_else(|e| panic!("seq {seq} size {size}: {e}"));
        }
        for to in size..=head {
            let r = app.get(
                &format!("/api/v1/audit/proof/consistency?from={size}&to={to}"),
                Some(&auditor),
            );
            assert_eq!(r.status, 200, "{}", r.text);
            let hashes = decode_all(&r.body["hashes"]);
            let to_root = countersign::audit::tree_root(&leaves[..to as usize]);
            proof::verify_consistency(size as u64, to as u64, &root, &to_root, &hashes)
                .unwrap_or_else(|e| panic!("{size} to {to}: {e}"));
        }
    }
    // Agents and reviewers may not read the log's proofs.
    let agent = app.login("ana");
    for path in [
        "/api/v1/audit/key",
        "/api/v1/audit/checkpoint",
        "/api/v1/audit/proof/inclusion?seq=1&size=1",
        "/api/v1/audit/proof/consistency?from=1&to=1",
    ] {
        assert_eq!(app.get(path, Some(&agent)).status, 403, "{path}");
        assert_eq!(app.get(path, None).status, 401, "{path}");
    }
}

fn bad_proof_parameters_answer_400_json(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let auditor = app.user("aud", &[Role::Auditor]);
    seed(&app, 1);
    let head = app.audit_size();
    for query in [
        "inclusion?seq=0&size=1".to_string(),
        format!("inclusion?seq=1&size={}", head + 1),
        "inclusion?seq=3&size=2".to_string(),
        "inclusion?seq=1&size=0".to_string(),
        "inclusion?seq=x&size=1".to_string(),
        "inclusion?seq=1".to_string(),
        "consistency?from=0&to=1".to_string(),
        "consistency?from=3&to=2".to_string(),
        format!("consistency?from=1&to={}", head + 1),
        "consistency?from=1&to=-1".to_string(),
        "consistency?to=2".to_string(),
    ] {
        let r = app.get(&format!("/api/v1/audit/proof/{query}"), Some(&auditor));
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert_eq!(r.body["error"], "bad_request", "{query}: {}", r.text);
    }
}

/// The tree stored in the database, entry by entry: every root for sizes 1..300 equals the
/// recomputation from the leaves, on both engines.
fn stored_roots_equal_the_recomputed_ones_for_every_size_to_300(b: Backend) {
    let Some(db) = crate::common::TestDb::new(b) else {
        return;
    };
    let pool = countersign::db::Db::connect(&db.url, 2).unwrap();
    pool.migrate().unwrap();
    let mut conn = pool.conn().unwrap();
    let mut leaves = Vec::new();
    for i in 0..300 {
        countersign::db::write_tx(&mut conn, |conn| {
            countersign::db::audit::append(
                conn,
                countersign::app::now().naive_utc(),
                &countersign::audit::Actor::System,
                Some(&format!("s{i}")),
                &countersign::audit::AuditAction::UserLogin {},
            )
        })
        .unwrap();
        let row = countersign::db::audit::rows_after(&mut conn, i, 1).unwrap();
        leaves.push(countersign::audit::leaf_hash(row[0].body.as_bytes()));
        let size = leaves.len() as u64;
        assert_eq!(
            countersign::db::audit::root_at(&mut conn, size).unwrap(),
            countersign::audit::tree_root(&leaves),
            "size {size}"
        );
    }
    for size in [1u64, 2, 3, 7, 8, 9, 255, 256, 257, 300] {
        let root = countersign::audit::tree_root(&leaves[..size as usize]);
        for index in [0, size / 2, size - 1] {
            let p = countersign::db::audit::inclusion_proof(&mut conn, index, size).unwrap();
            proof::verify_inclusion(index, size, &leaves[index as usize], &p, &root).unwrap();
        }
        let p = countersign::db::audit::consistency_proof(&mut conn, size, 300).unwrap();
        proof::verify_consistency(
            size,
            300,
            &root,
            &countersign::audit::tree_root(&leaves),
            &p,
        )
        .unwrap();
    }
}

fn a_bogus_checkpoint_row_does_not_switch_the_checkpoints_off(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app, 3);
    let mut conn = app.ctx.db.conn().unwrap();
    app.ctx.log.checkpoint_head(&mut conn).unwrap();
    drop(conn);
    let head = app.audit_size();
    // With the guards on, the database refuses sizes outside the log.
    for size in [-1, head + 1] {
        assert!(
            exec(&app, &format!("INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) VALUES ({size}, 'x', 'x', '2026-01-01 00:00:00')")).is_err(),
            "checkpoint size {size}"
        );
    }
    // With them off, a row of size -1 in front of the real ones is named, not skipped.
    drop_all_guards(&app, b);
    exec(&app, "INSERT INTO audit_checkpoints (tree_size, root_hash, note, created_at) VALUES (-1, 'x', 'x', '2026-01-01 00:00:00')").unwrap();
    let seq = app.first_seq("inbound.received");
    let edited = shouted(&body_of(&app, seq));
    rewrite(&app, seq, &edited);
    let (ok, report) = verify_cli(&app, &[]);
    assert!(!ok, "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("checkpoint"),
        "{report}"
    );
}

fn verify_checks_against_the_published_key(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    seed(&app, 1);
    let auditor = app.user("aud", &[Role::Auditor]);
    let key = app.get("/api/v1/audit/key", Some(&auditor)).text;
    let (ok, report) = verify_cli(&app, &["--key", key.trim()]);
    assert!(ok, "{report}");
    let other = countersign::audit::note::NoteSigner::generate(key.split('+').next().unwrap())
        .unwrap()
        .verifier()
        .to_string();
    let (ok, report) = verify_cli(&app, &["--key", &other]);
    assert!(!ok, "another key: {report}");
    assert!(
        report["reason"].as_str().unwrap().contains("verifier key"),
        "{report}"
    );
}

fn time_filters_return_exactly_the_entries_in_the_window(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let auditor = app.user("aud", &[Role::Auditor]);
    seed(&app, 5);
    let all = app.get("/api/v1/audit?limit=1000", Some(&auditor)).body["entries"].clone();
    let all = all.as_array().unwrap();
    let at = |e: &Value| chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
    assert!(
        all.windows(2).all(|w| at(&w[0]) <= at(&w[1])),
        "times grow with seq"
    );
    for (i, j) in [(0, all.len()), (3, 7), (5, 6), (2, 2)] {
        let since = all[i]["at"].as_str().unwrap();
        let until = all.get(j).map(|e| e["at"].as_str().unwrap().to_string());
        let want: Vec<i64> = all
            .iter()
            .filter(|e| at(e) >= at(&all[i]) && all.get(j).is_none_or(|u| at(e) < at(u)))
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        let mut path = format!(
            "/api/v1/audit?limit=1000&since={}",
            since.replace('+', "%2B")
        );
        if let Some(u) = &until {
            path.push_str(&format!("&until={}", u.replace('+', "%2B")));
        }
        let got: Vec<i64> = app.get(&path, Some(&auditor)).body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(got, want, "since {since} until {until:?}");
    }
    let future = app.get("/api/v1/audit?since=2999-01-01T00:00:00Z", Some(&auditor));
    assert_eq!(future.body["entries"], serde_json::json!([]));
}
