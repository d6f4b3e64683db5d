//! How long a policy impact preview takes over many draft revisions (the target: 100,000
//! within 10 s on the 2-core machine). Fills the database with N revisions if it holds
//! fewer (the real replies of ../shared/corpus/real, cycled), then times the preview of
//! a proposed set against the shipped one, as `countersign policy preview` runs it.
//!
//! ```sh
//! cargo run --release --example preview_speed -- sqlite:///tmp/preview.db 100000 examples/real-replay/policies
//! ```

use countersign::app::policies::preview_of;
use countersign::audit::Actor;
use countersign::db::Db;
use countersign::domain::roles::Role;
use countersign::policy::PolicySet;
use diesel::connection::Connection;
use diesel::sql_types::{Integer, Text, Timestamp};
use diesel::RunQueryDsl;
use std::path::Path;
use std::time::Instant;

fn texts() -> Vec<String> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/real/pairs.jsonl");
    let text = std::fs::read_to_string(&corpus).expect("the real corpus beside the repository");
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["reply_text"].as_str().map(str::to_string))
        .collect()
}

fn fill(db: &Db, n: i64) {
    let mut conn = db.conn().expect("db");
    let have: i64 = {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT COUNT(*) AS n FROM draft_revisions")
            .get_result::<Count>(&mut *conn)
            .expect("count")
            .n
    };
    if have >= n {
        println!("{have} revisions already there");
        return;
    }
    let author = countersign::app::users::create_user(
        &mut conn,
        &Actor::System,
        &format!("bench{}", uuid::Uuid::now_v7().simple()),
        "a long enough password",
        &[Role::Agent],
        None,
    )
    .expect("a user")
    .to_string();
    let texts = texts();
    let now = chrono::Utc::now().naive_utc();
    let started = Instant::now();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        for i in have..n {
            let (customer, inbound, draft) = (
                uuid::Uuid::now_v7().to_string(),
                uuid::Uuid::now_v7().to_string(),
                uuid::Uuid::now_v7().to_string(),
            );
            let text = &texts[i as usize % texts.len()];
            let channel = if i % 10 == 0 { "mastodon" } else { "x" };
            diesel::sql_query("INSERT INTO customers (id, created_at) VALUES ($1, $2)")
                .bind::<Text, _>(&customer)
                .bind::<Timestamp, _>(now)
                .execute(conn)?;
            diesel::sql_query(
                "INSERT INTO inbound_messages (id, channel, external_id, customer_id, \
                 author_handle, text, received_at, due_at, state, created_at, at_risk_at) \
                 VALUES ($1, $2, $3, $4, $5, 'help', $6, $6, 'open', $6, $6)",
            )
            .bind::<Text, _>(&inbound)
            .bind::<Text, _>(channel)
            .bind::<Text, _>(format!("bench-{i}"))
            .bind::<Text, _>(&customer)
            .bind::<Text, _>(if channel == "x" {
                "cust"
            } else {
                "cust@example.social"
            })
            .bind::<Timestamp, _>(now)
            .execute(conn)?;
            diesel::sql_query(
                "INSERT INTO drafts (id, inbound_id, author_id, state, revision, text, \
                 check_report, approvals_needed, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'draft', 1, $4, '{}', 1, $5, $5)",
            )
            .bind::<Text, _>(&draft)
            .bind::<Text, _>(&inbound)
            .bind::<Text, _>(&author)
            .bind::<Text, _>(text)
            .bind::<Timestamp, _>(now)
            .execute(conn)?;
            diesel::sql_query(
                "INSERT INTO draft_revisions (draft_id, revision, text, author_id, \
                 check_report, created_at) VALUES ($1, $2, $3, $4, '{}', $5)",
            )
            .bind::<Text, _>(&draft)
            .bind::<Integer, _>(1)
            .bind::<Text, _>(text)
            .bind::<Text, _>(&author)
            .bind::<Timestamp, _>(now)
            .execute(conn)?;
        }
        Ok(())
    })
    .expect("filled");
    println!(
        "wrote {} revisions in {:.1} s",
        n - have,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: preview_speed DATABASE_URL N [PROPOSED_POLICIES_DIR]";
    let url = args.next().expect(usage);
    let n: i64 = args.next().expect(usage).parse().expect(usage);
    let proposed = args
        .next()
        .unwrap_or_else(|| "examples/real-replay/policies".into());
    let db = Db::connect(&url, 2).expect("the database");
    db.migrate().expect("migrations");
    fill(&db, n);
    let current = PolicySet::load(Path::new("policies")).expect("the shipped policies");
    let proposed = PolicySet::load(Path::new(&proposed)).expect("the proposed policies");
    let since = chrono::Utc::now().naive_utc() - chrono::Duration::days(30);
    for round in 1..=3 {
        let started = Instant::now();
        let mut conn = db.conn().expect("db");
        let p = preview_of(&mut conn, &current, &proposed, since).expect("preview");
        println!(
            "round {round}: {} revisions, {} changed, {} transitions, in {:.2} s",
            p.revisions,
            p.changed,
            p.transitions.len(),
            started.elapsed().as_secs_f64()
        );
    }
}
