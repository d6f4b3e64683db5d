//! Fills a fresh database with N audit entries through the library's own append path
//! (`countersign::db::audit::append` inside `countersign::db::write_tx`), for the audit
//! log's performance figures (docs/perf-audit-draft.md).
//!
//! ```text
//! audit_bulk URL N [BATCH]
//! ```
//! URL is `sqlite://PATH` or `postgres://...`; the database is migrated first. Entries are
//! appended in write transactions of BATCH appends (default 10,000). After each batch it
//! prints the log size, the batch's time and its rate, so one can see whether appending
//! slows as the log grows; at the end, the overall rate.
//!
//! The mix is that of a busy service: inbound messages with ~200-byte texts, drafts with
//! their check reports, submissions, reviews, posts, sign-ins. Subjects are UUID strings
//! (drafts and inbound messages recur over their life, users over and over). Planted, so a
//! filtered query has to search for them:
//! - subject `RARE_SUBJECT` (5 entries, at 25 %, 50 %, 75 %, 99.9 % of N and the last one),
//! - actor `RARE_ACTOR` (5 entries, at 10 %, 40 %, 60 %, 90 %, 99.99 % of N),
//! - action `policy.activated` (5 entries, at 1, 30 %, 55 %, 80 %, 99.5 % of N).
//!
//! Entries are deterministic except for their ids made from the clock (UUIDv7) and `at`.
//!
//! ```text
//! audit_bulk URL N --fast [ROWS_PER_TX]
//! ```
//! The benchmark loader, for logs of many millions (the append path does 1,700-6,000
//! entries/s here, so 10M would take hours). It builds the same mix of entries in memory,
//! with their canonical bodies (`countersign::audit::entry_body`), leaf hashes and the
//! stored tree's nodes (`countersign::audit::proof::nodes_completed_by`, fed from the last
//! node of each level, so exactly the nodes `append` stores), and writes them with
//! multi-row INSERTs, ROWS_PER_TX (200,000) per transaction. `at` starts at
//! 2026-01-01T00:00:00Z and grows by 50 ms (and some µs) per entry, so times never go
//! backwards.
//! Only on an empty log, and only for benchmarks: the triggers that make every insert
//! take the next seq and the head move one entry at a time (and so forbid multi-row
//! loads) are set aside while it runs: on SQLite dropped and re-created from their own
//! text in `sqlite_master` at the end, on PostgreSQL skipped with `session_replication_role
//! = replica` (the URL's role must be a superuser). `countersign audit verify` says ok on
//! the result.

use countersign::audit::action::{LockScope, LoginFailure, PolicyFileRecord};
use countersign::audit::{text_sha256, Actor, AuditAction};
use countersign::domain::ids::UserId;
use countersign::policy::{CheckReport, Finding, Severity, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

pub const RARE_SUBJECT: &str = "01900000-0000-7000-8000-00000000beef";
pub const RARE_ACTOR: &str = "01900000-0000-7000-8000-00000000cafe";

const WORDS: &[&str] = &[
    "hello",
    "my",
    "order",
    "still",
    "hasn't",
    "arrived",
    "and",
    "the",
    "tracking",
    "page",
    "says",
    "delivered",
    "since",
    "Tuesday",
    "please",
    "help",
    "refund",
    "account",
    "locked",
    "again",
    "after",
    "update",
    "your",
    "app",
    "crashes",
    "every",
    "time",
    "I",
    "open",
    "it",
    "charged",
    "twice",
    "for",
    "same",
    "subscription",
    "can",
    "someone",
    "call",
    "me",
    "back",
    "waiting",
    "three",
    "weeks",
    "now",
    "this",
    "is",
    "unacceptable",
    "thanks",
    "for",
    "quick",
    "reply",
    "store",
    "manager",
    "was",
    "rude",
    "package",
    "damaged",
    "box",
    "wet",
    "missing",
];

fn text(rng: &mut StdRng, target: usize) -> String {
    let mut s = String::with_capacity(target + 16);
    while s.len() < target {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
    }
    s.push('.');
    s
}

fn rfc3339_now() -> String {
    countersign::app::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn uuid() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

fn check(rng: &mut StdRng, len: usize) -> CheckReport {
    let findings = if rng.gen_bool(0.2) {
        vec![Finding {
            rule: "links.unknown_domain".into(),
            category: "links".into(),
            severity: Severity::Warn,
            start: 10,
            end: 34,
            message: "a link to a domain that is not ours".into(),
            suggestion: None,
        }]
    } else {
        vec![]
    };
    CheckReport {
        id: None,
        verdict: Verdict::Pass,
        weighted_length: len,
        length_rule: countersign::policy::LengthRule::X,
        policy_version: "9f2c1e7a4b3d5f60".into(),
        findings,
    }
}

/// A small ring of subjects that are "alive" (drafts and inbound messages under way).
struct Live {
    ring: Vec<String>,
    next: usize,
}

impl Live {
    fn new(n: usize) -> Live {
        Live {
            ring: (0..n).map(|_| uuid()).collect(),
            next: 0,
        }
    }
    fn pick(&self, rng: &mut StdRng) -> &str {
        &self.ring[rng.gen_range(0..self.ring.len())]
    }
    fn fresh(&mut self) -> String {
        let id = uuid();
        self.ring[self.next] = id.clone();
        self.next = (self.next + 1) % self.ring.len();
        id
    }
}

struct Gen {
    rng: StdRng,
    users: Vec<UserId>,
    drafts: Live,
    inbound: Live,
    planted_subject: Vec<u64>,
    planted_actor: Vec<u64>,
    planted_action: Vec<u64>,
}

impl Gen {
    fn new(n: u64) -> Gen {
        let at = |f: f64| ((n as f64 * f) as u64).clamp(1, n);
        Gen {
            rng: StdRng::seed_from_u64(20261203),
            users: (0..200).map(|_| UserId::new()).collect(),
            drafts: Live::new(2000),
            inbound: Live::new(2000),
            planted_subject: vec![at(0.25), at(0.5), at(0.75), at(0.999), n],
            planted_actor: vec![at(0.1), at(0.4), at(0.6), at(0.9), at(0.9999)],
            planted_action: vec![1, at(0.3), at(0.55), at(0.8), at(0.995)],
        }
    }

    /// The entry to append as entry `seq` of the planned log: (actor, subject, action).
    fn entry(&mut self, seq: u64) -> (Actor, Option<String>, AuditAction) {
        let user = Actor::User(self.users[self.rng.gen_range(0..self.users.len())]);
        if self.planted_action.contains(&seq) {
            return (
                Actor::System,
                None,
                AuditAction::PolicyActivated {
                    policy_version: format!("{:016x}", seq),
                    files: vec![PolicyFileRecord {
                        name: "base.toml".into(),
                        sha256: text_sha256("policy text"),
                        text: "[[rule]]\nid = \"pii.card\"\ncategory = \"pii.card\"\n".into(),
                    }],
                    preview: None,
                },
            );
        }
        if self.planted_actor.contains(&seq) {
            let id: UserId = RARE_ACTOR.parse().expect("uuid");
            let t = text(&mut self.rng, 180);
            let sha = text_sha256(&t);
            return (
                Actor::User(id),
                Some(self.drafts.fresh()),
                AuditAction::DraftCreated {
                    inbound_id: self
                        .inbound
                        .pick(&mut self.rng)
                        .parse()
                        .expect("a generated id"),
                    revision: 1,
                    check: check(&mut self.rng, t.len()),
                    text: t,
                    text_sha256: sha,
                },
            );
        }
        if self.planted_subject.contains(&seq) {
            return (
                user,
                Some(RARE_SUBJECT.to_string()),
                AuditAction::ReviewRejected {
                    revision: 1,
                    comment: "please do not promise a refund date".into(),
                },
            );
        }
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=34 => {
                let id = self.inbound.fresh();
                let now = rfc3339_now();
                (
                    Actor::System,
                    Some(id),
                    AuditAction::InboundReceived {
                        channel: "x".into(),
                        external_id: format!("{}", 1_800_000_000_000_000_000u64 + seq),
                        customer_id: countersign::domain::ids::CustomerId::new(),
                        author_handle: format!("@customer{}", self.rng.gen_range(0..100_000)),
                        text: text(&mut self.rng, 200),
                        received_at: now.clone(),
                        due_at: now,
                    },
                )
            }
            35..=49 => {
                let subject = match &user {
                    Actor::User(u) => u.to_string(),
                    Actor::System => unreachable!(),
                };
                (user, Some(subject), AuditAction::UserLogin {})
            }
            50..=53 => {
                let u = self.users[self.rng.gen_range(0..self.users.len())].to_string();
                (
                    Actor::System,
                    Some(u),
                    AuditAction::UserLoginFailed {
                        reason: LoginFailure::WrongPassword,
                    },
                )
            }
            54 => {
                let u = self.users[self.rng.gen_range(0..self.users.len())].to_string();
                (
                    Actor::System,
                    Some(u),
                    AuditAction::UserLockedOut {
                        scope: LockScope::Username,
                        until: rfc3339_now(),
                    },
                )
            }
            55..=58 => {
                let subject = match &user {
                    Actor::User(u) => u.to_string(),
                    Actor::System => unreachable!(),
                };
                (user, Some(subject), AuditAction::UserLogout {})
            }
            59..=68 => {
                let t = text(&mut self.rng, 200);
                let sha = text_sha256(&t);
                (
                    user,
                    Some(self.drafts.fresh()),
                    AuditAction::DraftCreated {
                        inbound_id: self
                            .inbound
                            .pick(&mut self.rng)
                            .parse()
                            .expect("a generated id"),
                        revision: 1,
                        check: check(&mut self.rng, t.len()),
                        text: t,
                        text_sha256: sha,
                    },
                )
            }
            69..=78 => {
                let t = text(&mut self.rng, 40);
                (
                    user,
                    Some(self.drafts.pick(&mut self.rng).to_string()),
                    AuditAction::DraftSubmitted {
                        revision: 1,
                        text_sha256: text_sha256(&t),
                        check: check(&mut self.rng, 200),
                        route: countersign::domain::routing::Plan::default_for(
                            countersign::policy::Verdict::Pass,
                        ),
                    },
                )
            }
            79..=86 => {
                let t = text(&mut self.rng, 40);
                (
                    user,
                    Some(self.drafts.pick(&mut self.rng).to_string()),
                    AuditAction::ReviewApproved {
                        revision: 1,
                        comment: "ok".into(),
                        text_sha256: text_sha256(&t),
                        check: check(&mut self.rng, 200),
                        approvals: 1,
                        approvals_needed: 1,
                        route: "default".into(),
                        step: 1,
                        group: None,
                    },
                )
            }
            87..=88 => (
                user,
                Some(self.drafts.pick(&mut self.rng).to_string()),
                AuditAction::ReviewChangesRequested {
                    revision: 1,
                    comment: text(&mut self.rng, 60),
                },
            ),
            89..=95 => {
                let t = text(&mut self.rng, 40);
                (
                    Actor::System,
                    Some(self.drafts.pick(&mut self.rng).to_string()),
                    AuditAction::PostSucceeded {
                        url: None,
                        channel: "x".into(),
                        post_id: format!("{}", 1_900_000_000_000_000_000u64 + seq),
                        in_reply_to: format!("{}", 1_800_000_000_000_000_000u64 + seq / 2),
                        revision: 1,
                        text_sha256: text_sha256(&t),
                        attempt: 1,
                    },
                )
            }
            96..=97 => (
                Actor::System,
                Some(self.drafts.pick(&mut self.rng).to_string()),
                AuditAction::PostFailed {
                    channel: "x".into(),
                    error: "429 Too Many Requests: rate limit exceeded".into(),
                    attempt: self.rng.gen_range(1..5),
                    retry_at: Some(rfc3339_now()),
                },
            ),
            _ => (
                Actor::System,
                Some(uuid()),
                AuditAction::CustomerCreated {
                    channel: "x".into(),
                    handle: format!("@customer{}", self.rng.gen_range(0..100_000)),
                },
            ),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        anyhow::bail!("usage: audit_bulk URL N [BATCH] | audit_bulk URL N --fast [ROWS_PER_TX]");
    }
    let url = &args[1];
    let n: u64 = args[2].replace('_', "").parse()?;
    if args.get(3).map(String::as_str) == Some("--fast") {
        let per_tx: u64 = args
            .get(4)
            .map(|b| b.replace('_', "").parse())
            .transpose()?
            .unwrap_or(200_000);
        return fast::load(url, n, per_tx);
    }
    let batch: u64 = args
        .get(3)
        .map(|b| b.replace('_', "").parse())
        .transpose()?
        .unwrap_or(10_000);

    let db = countersign::db::Db::connect(url, 4)?;
    db.migrate()?;
    let mut conn = db.conn()?;
    let start_size = countersign::db::audit::head_size(&mut conn)? as u64;
    if start_size >= n {
        println!("the log already holds {start_size} entries");
        return Ok(());
    }
    let mut gen = Gen::new(n);
    // Replay the generator up to the current size so a resumed run plants the same entries.
    for seq in 1..=start_size {
        let _ = gen.entry(seq);
    }
    println!("# size batch_s batch_entries_per_s total_entries_per_s elapsed_s");
    let t0 = Instant::now();
    let mut seq = start_size;
    while seq < n {
        let this = batch.min(n - seq);
        let entries: Vec<_> = (seq + 1..=seq + this).map(|s| gen.entry(s)).collect();
        let tb = Instant::now();
        countersign::db::write_tx(&mut conn, |conn| {
            for (actor, subject, action) in &entries {
                countersign::db::audit::append(
                    conn,
                    countersign::app::now().naive_utc(),
                    actor,
                    subject.as_ref().map(|s| s as &dyn std::fmt::Display),
                    action,
                )?;
            }
            Ok(())
        })?;
        let bs = tb.elapsed().as_secs_f64();
        seq += this;
        let el = t0.elapsed().as_secs_f64();
        println!(
            "{seq} {bs:.3} {:.0} {:.0} {el:.1}",
            this as f64 / bs,
            (seq - start_size) as f64 / el
        );
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "# appended {} entries in {el:.1} s: {:.0} entries/s (generation of the entries included)",
        seq - start_size,
        (seq - start_size) as f64 / el
    );
    println!(
        "# rare subject {RARE_SUBJECT}, rare actor {RARE_ACTOR}, rare action policy.activated"
    );
    Ok(())
}

/// The benchmark loader (`--fast`): see the module's documentation.
mod fast {
    use super::Gen;
    use countersign::audit::merkle::Hash;
    use countersign::audit::proof::{nodes_completed_by, NodeId};
    use countersign::audit::{entry_body, leaf_hash};
    use countersign::db::schema::{audit_entries, audit_head, audit_tree};
    use countersign::db::DbConn;
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use std::time::Instant;

    type EntryRow = (
        i64,
        chrono::NaiveDateTime,
        String,
        String,
        Option<String>,
        String,
        String,
    );

    /// Rows per INSERT: under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
    const ENTRIES_PER_INSERT: usize = 4_000;
    const NODES_PER_INSERT: usize = 10_000;

    /// The SQLite triggers that refuse a multi-row load (see the module's documentation).
    const SQLITE_TRIGGERS: [&str; 2] = ["audit_entries_next_seq", "audit_head_forward"];

    #[derive(QueryableByName)]
    struct Sql {
        #[diesel(sql_type = diesel::sql_types::Text)]
        sql: String,
    }

    pub fn load(url: &str, n: u64, per_tx: u64) -> anyhow::Result<()> {
        let db = countersign::db::Db::connect(url, 1)?;
        db.migrate()?;
        let mut conn = db.conn()?;
        let conn: &mut DbConn = &mut conn;
        let head = countersign::db::audit::head_size(conn)?;
        anyhow::ensure!(
            head == 0,
            "--fast loads only an empty log (this one has {head})"
        );
        // Saved before anything is dropped, so the schema comes back exactly as migrated.
        let mut triggers = Vec::new();
        match conn {
            DbConn::Sqlite(c) => {
                c.batch_execute("PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;")?;
                for name in SQLITE_TRIGGERS {
                    let found: Vec<Sql> = diesel::sql_query(
                        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                    )
                    .bind::<diesel::sql_types::Text, _>(name)
                    .load(c)?;
                    let sql = found
                        .into_iter()
                        .next()
                        .ok_or_else(|| anyhow::anyhow!("no trigger {name} to set aside"))?;
                    triggers.push(sql.sql);
                    c.batch_execute(&format!("DROP TRIGGER {name}"))?;
                }
            }
            DbConn::Postgres(c) => c.batch_execute(
                "SET session_replication_role = replica; SET synchronous_commit = off",
            )?,
        }
        let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")?.naive_utc();
        let mut gen = Gen::new(n);
        // last[level]: the newest stored node of each level, the left sibling of the next.
        let mut last: Vec<Hash> = Vec::new();
        let t0 = Instant::now();
        println!("# size tx_s total_entries_per_s elapsed_s");
        let mut seq = 0u64;
        while seq < n {
            let this = per_tx.min(n - seq);
            let tb = Instant::now();
            let mut entries: Vec<EntryRow> = Vec::with_capacity(this as usize);
            let mut nodes: Vec<(i32, i64, Vec<u8>)> = Vec::with_capacity(this as usize);
            for s in seq + 1..=seq + this {
                let (actor, subject, action) = gen.entry(s);
                // 50 ms apart, plus under a millisecond so most times have six digits.
                let at = start
                    + chrono::Duration::microseconds(50_000 * s as i64 + (s * 7919 % 1000) as i64);
                let name = action.name().as_str();
                let body = entry_body(
                    s as i64,
                    at.and_utc(),
                    &actor,
                    name,
                    subject.as_deref(),
                    &action.data()?,
                )?;
                let leaf = leaf_hash(body.as_bytes());
                let index = s - 1;
                let completed = nodes_completed_by(index, leaf, |id: NodeId| {
                    last.get(id.level as usize)
                        .copied()
                        .ok_or_else(|| anyhow::anyhow!("no node at level {}", id.level))
                })?;
                set(&mut last, 0, leaf);
                for (id, hash) in completed {
                    set(&mut last, id.level as usize, hash);
                    nodes.push((id.level as i32, id.index as i64, hash.to_vec()));
                }
                entries.push((
                    s as i64,
                    at,
                    actor.to_string(),
                    name.to_string(),
                    subject,
                    body,
                    hex::encode(leaf),
                ));
            }
            let new_size = (seq + this) as i64;
            // Multi-row INSERTs exist only on each engine's own connection type, not on the
            // service's connection over both: the same code for each.
            macro_rules! write_batch {
                ($c:expr) => {
                    $c.transaction::<_, diesel::result::Error, _>(|c| {
                        for chunk in entries.chunks(ENTRIES_PER_INSERT) {
                            let values: Vec<_> = chunk
                                .iter()
                                .map(|(seq, at, actor, action, subject, body, hash)| {
                                    (
                                        audit_entries::seq.eq(*seq),
                                        audit_entries::at.eq(*at),
                                        audit_entries::actor.eq(actor),
                                        audit_entries::action.eq(action),
                                        audit_entries::subject.eq(subject.as_deref()),
                                        audit_entries::body.eq(body),
                                        audit_entries::leaf_hash.eq(hash),
                                    )
                                })
                                .collect();
                            diesel::insert_into(audit_entries::table)
                                .values(values)
                                .execute(c)?;
                        }
                        for chunk in nodes.chunks(NODES_PER_INSERT) {
                            let values: Vec<_> = chunk
                                .iter()
                                .map(|(level, idx, hash)| {
                                    (
                                        audit_tree::level.eq(*level),
                                        audit_tree::idx.eq(*idx),
                                        audit_tree::hash.eq(hash),
                                    )
                                })
                                .collect();
                            diesel::insert_into(audit_tree::table)
                                .values(values)
                                .execute(c)?;
                        }
                        diesel::update(audit_head::table.filter(audit_head::id.eq(1)))
                            .set((
                                audit_head::size.eq(new_size),
                                audit_head::tree_size.eq(new_size),
                            ))
                            .execute(c)?;
                        Ok(())
                    })?
                };
            }
            match &mut *conn {
                DbConn::Sqlite(c) => write_batch!(c),
                DbConn::Postgres(c) => write_batch!(c),
            }
            seq += this;
            let el = t0.elapsed().as_secs_f64();
            println!(
                "{seq} {:.2} {:.0} {el:.1}",
                tb.elapsed().as_secs_f64(),
                seq as f64 / el
            );
        }
        if let DbConn::Sqlite(c) = conn {
            for sql in &triggers {
                c.batch_execute(sql)?;
            }
            c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "# loaded {n} entries in {el:.1} s: {:.0} entries/s",
            n as f64 / el
        );
        Ok(())
    }

    fn set(last: &mut Vec<Hash>, level: usize, hash: Hash) {
        if last.len() <= level {
            last.resize(level + 1, [0; 32]);
        }
        last[level] = hash;
    }
}
