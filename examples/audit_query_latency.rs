//! Latency of the first page of the auditors' filtered query,
//! `countersign::db::audit::query`, on a log made by `audit_bulk` (docs/perf-audit-draft.md).
//!
//! ```text
//! audit_query_latency URL [RUNS] [LIMIT] [NAME]
//! ```
//! NAME, if given, runs only the filters whose description contains it (e.g. `since`).
//! For each filter, RUNS (default 100) runs of the same query (limit LIMIT, default 100),
//! after one untimed warm-up run; prints rows returned, p50 / p99 / max in ms. The filters:
//! the planted rare subject, actor and action (see `audit_bulk`), a common action and a
//! common actor, a subject that does not occur, and `since` at 50 %, 99 % and
//! "50 entries before the head" (fewer than a page: the query must reach the end), and a
//! few combinations.

use countersign::db::audit::AuditFilter;
use countersign::db::schema::audit_entries;
use diesel::prelude::*;
use std::time::Instant;

const RARE_SUBJECT: &str = "01900000-0000-7000-8000-00000000beef";
const RARE_ACTOR: &str = "01900000-0000-7000-8000-00000000cafe";

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn at_of(
    conn: &mut countersign::db::DbConn,
    seq: i64,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    let at: chrono::NaiveDateTime = audit_entries::table
        .select(audit_entries::at)
        .filter(audit_entries::seq.eq(seq))
        .get_result(conn)?;
    Ok(at.and_utc())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: audit_query_latency URL [RUNS] [LIMIT]"))?;
    let runs: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let limit: i64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(100);
    let only: Option<&str> = args.get(4).map(String::as_str);
    let db = countersign::db::Db::connect(url, 1)?;
    let mut conn = db.conn()?;
    let head = countersign::db::audit::head_size(&mut conn)?;
    // A common actor: the actor of the second entry that some user made (any user of the pool).
    let common_actor: String = audit_entries::table
        .select(audit_entries::actor)
        .filter(audit_entries::action.eq("user.login"))
        .order(audit_entries::seq.asc())
        .first(&mut *conn)?;
    let since_50 = at_of(&mut conn, head / 2)?;
    let since_99 = at_of(&mut conn, head * 99 / 100)?;
    let since_end = at_of(&mut conn, head - 50)?;

    let f = |g: &dyn Fn(&mut AuditFilter)| {
        let mut a = AuditFilter {
            limit,
            ..Default::default()
        };
        g(&mut a);
        a
    };
    let cases: Vec<(&str, AuditFilter)> = vec![
        ("no filter", f(&|_| {})),
        (
            "subject = rare (5 entries)",
            f(&|a| a.subject = Some(RARE_SUBJECT.into())),
        ),
        (
            "subject = absent",
            f(&|a| a.subject = Some("01900000-0000-7000-8000-000000000000".into())),
        ),
        (
            "actor = rare (5 entries)",
            f(&|a| a.actor = Some(RARE_ACTOR.into())),
        ),
        (
            "actor = a common user",
            f(&|a| a.actor = Some(common_actor.clone())),
        ),
        ("actor = system", f(&|a| a.actor = Some("system".into()))),
        (
            "action = policy.activated (5)",
            f(&|a| a.action = Some("policy.activated".into())),
        ),
        (
            "action = user.login (15 %)",
            f(&|a| a.action = Some("user.login".into())),
        ),
        ("since = at(50 %)", f(&|a| a.since = Some(since_50))),
        ("since = at(99 %)", f(&|a| a.since = Some(since_99))),
        ("since = at(head - 50)", f(&|a| a.since = Some(since_end))),
        ("until = at(50 %)", f(&|a| a.until = Some(since_50))),
        (
            "action = user.login, since = at(99 %)",
            f(&|a| {
                a.action = Some("user.login".into());
                a.since = Some(since_99);
            }),
        ),
        (
            "actor = rare, since = at(50 %)",
            f(&|a| {
                a.actor = Some(RARE_ACTOR.into());
                a.since = Some(since_50);
            }),
        ),
        (
            "subject = rare, action = review.rejected",
            f(&|a| {
                a.subject = Some(RARE_SUBJECT.into());
                a.action = Some("review.rejected".into());
            }),
        ),
        (
            "after = 50 % (cursor), action = policy.activated",
            f(&|a| {
                a.after = Some(head / 2);
                a.action = Some("policy.activated".into());
            }),
        ),
    ];
    println!("log of {head} entries, limit {limit}, {runs} runs each (after one warm-up)");
    println!("| filter | rows | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, filter) in &cases {
        if let Some(o) = only {
            if !name.contains(o) {
                continue;
            }
        }
        let rows = countersign::db::audit::query(&mut conn, filter)?.len();
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let r = countersign::db::audit::query(&mut conn, filter)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            assert_eq!(r.len(), rows);
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "| {name} | {rows} | {:.2} | {:.2} | {:.2} |",
            pct(&ms, 0.5),
            pct(&ms, 0.99),
            ms[ms.len() - 1]
        );
    }
    Ok(())
}
