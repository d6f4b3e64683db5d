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
                    inbound_id: self.inbound.pick(&mut self.rng).to_string(),
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
                        customer_id: uuid(),
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
                        inbound_id: self.inbound.pick(&mut self.rng).to_string(),
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
                    retry_at: rfc3339_now(),
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
        anyhow::bail!("usage: audit_bulk URL N [BATCH]");
    }
    let url = &args[1];
    let n: u64 = args[2].replace('_', "").parse()?;
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
                    subject.as_deref(),
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
