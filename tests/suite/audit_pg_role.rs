//! The PostgreSQL set-up of docs/operations.md: migrations run as the owner, `serve` as a
//! role that may append to the audit tables but never change them, even with the triggers
//! dropped.

use crate::common::{test_settings, TestApp, TestDb};
use countersign::domain::roles::Role;
use diesel::{Connection, RunQueryDsl};

/// The grants of docs/operations.md "PostgreSQL: a service role that cannot rewrite the log".
const GRANTS: &str = "
GRANT CONNECT ON DATABASE {db} TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};
REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries, audit_tree, audit_checkpoints, audit_head, audit_log FROM {role};
GRANT UPDATE (size, tree_size) ON audit_head TO {role};
GRANT UPDATE (retention_years) ON audit_log TO {role};
REVOKE INSERT, UPDATE, DELETE ON __diesel_schema_migrations FROM {role};
";

struct Role_ {
    admin: String,
    name: String,
}

impl Drop for Role_ {
    fn drop(&mut self) {
        if let Ok(mut c) = diesel::PgConnection::establish(&self.admin) {
            let _ = diesel::sql_query(format!("DROP ROLE IF EXISTS {}", self.name)).execute(&mut c);
        }
    }
}

fn as_url(url: &str, user: &str) -> String {
    // postgres://postgres@host:port/db -> postgres://USER@host:port/db
    let (scheme, rest) = url.split_once("://").unwrap();
    let after_user = rest.split_once('@').map(|(_, h)| h).unwrap_or(rest);
    format!("{scheme}://{user}@{after_user}")
}

fn run(url: &str, sql: &str) -> Result<usize, diesel::result::Error> {
    let mut c = diesel::PgConnection::establish(url).unwrap();
    diesel::sql_query(sql).execute(&mut c)
}

#[test]
fn the_service_role_cannot_change_an_entry_even_with_the_triggers_dropped() {
    let Ok(admin) = std::env::var("COUNTERSIGN_TEST_POSTGRES_URL") else {
        return;
    };
    // The role is made before the database, so it is dropped after it.
    let role = Role_ {
        admin: admin.clone(),
        name: format!("cs_service_{}", uuid::Uuid::now_v7().simple()),
    };
    run(&admin, &format!("CREATE ROLE {} LOGIN", role.name)).unwrap();
    let Some(db) = TestDb::new(crate::common::Backend::Postgres) else {
        return;
    };
    let owner_url = db.url.clone();
    let service_url = as_url(&owner_url, &role.name);
    let db_name = owner_url.rsplit('/').next().unwrap().to_string();

    // Before the owner has migrated, the service role cannot start, and says what to do.
    run(
        &owner_url,
        &format!("GRANT CONNECT ON DATABASE {db_name} TO {}", role.name),
    )
    .unwrap();
    run(
        &owner_url,
        &format!("GRANT USAGE ON SCHEMA public TO {}", role.name),
    )
    .unwrap();
    let mut settings = test_settings(&db, &[]);
    settings.database_url = service_url.clone();
    let e = match countersign::startup::Application::build(settings) {
        Ok(_) => panic!("a role that cannot migrate must not start on an unmigrated database"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("countersign migrate"), "{e}");

    // The owner migrates; the service role gets the grants of docs/operations.md.
    countersign::db::Db::connect(&owner_url, 1)
        .unwrap()
        .migrate()
        .unwrap();
    for stmt in GRANTS.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let stmt = stmt.replace("{db}", &db_name).replace("{role}", &role.name);
        run(&owner_url, &stmt).unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }

    // The service runs as that role: the whole flow works.
    let app = TestApp::start(db, &[("COUNTERSIGN_DATABASE_URL", service_url.as_str())]);
    let agent = app.user("ana", &[Role::Agent]);
    let reviewer = app.user("rui", &[Role::Reviewer]);
    let auditor = app.user("aud", &[Role::Auditor]);
    let inbound = app.inbound(&agent, "1", "@c", "help");
    let draft = app.draft(&agent, &inbound, "Thanks, we're on it.");
    assert_eq!(
        app.post_empty(&format!("/api/v1/drafts/{draft}/submit"), Some(&agent))
            .status,
        200
    );
    assert_eq!(app.review(&reviewer, &draft, "approve", 1).status, 200);
    app.wait_for_state(&auditor, &draft, "posted");
    let mut conn = app.ctx.db.conn().unwrap();
    app.ctx.log.checkpoint_head(&mut conn).unwrap();
    drop(conn);

    // The owner takes the triggers off; the service role still cannot change anything.
    for t in [
        "audit_entries",
        "audit_tree",
        "audit_checkpoints",
        "audit_head",
        "audit_log",
    ] {
        run(&owner_url, &format!("ALTER TABLE {t} DISABLE TRIGGER USER")).unwrap();
    }
    for sql in [
        "UPDATE audit_entries SET body = body WHERE seq = 2",
        "UPDATE audit_entries SET action = 'user.login' WHERE seq = 2",
        "DELETE FROM audit_entries WHERE seq = 2",
        "TRUNCATE audit_entries",
        "UPDATE audit_tree SET hash = hash",
        "DELETE FROM audit_tree",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_checkpoints SET note = note",
        "TRUNCATE audit_checkpoints",
        "DELETE FROM audit_head",
        "UPDATE audit_log SET origin = 'evil'",
        "DELETE FROM audit_log",
        "ALTER TABLE audit_entries DISABLE TRIGGER USER",
    ] {
        let e = run(&service_url, sql).expect_err(sql);
        assert!(
            e.to_string().contains("permission denied") || e.to_string().contains("must be owner"),
            "{sql}: {e}"
        );
    }
    let (ok, report) = crate::audit_tamper::verify_cli(&app, &["--state"]);
    assert!(ok, "{report}");
}
