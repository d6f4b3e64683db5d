//! The replay of real customer posts and the replies a care team really posted to them
//! (`../shared/corpus/real/pairs.jsonl`), through a running server, over HTTP, exactly as
//! clients do: each post is ingested, an agent drafts the real reply and submits it, a
//! different reviewer approves what may be approved (a second one where the verdict is
//! `escalate`), the worker posts it, and at the end the audit log is verified.

use crate::audit::Actor;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::roles::Role;
use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The file of pairs (JSON lines with id, customer_handle, customer_text, reply_text).
    #[arg(
        long,
        default_value = "../shared/corpus/real/pairs.jsonl",
        value_name = "FILE"
    )]
    pub pairs: PathBuf,
    /// The server's base URL; defaults to http:// and the COUNTERSIGN_BIND address.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Only the first N pairs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Parallel clients.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// USER:PASSWORD of an agent; without it the replay creates its users itself, in the
    /// database of the same settings (as `countersign user add` does).
    #[arg(long, value_name = "USER:PASSWORD", requires_all = ["reviewer", "auditor"])]
    pub agent: Option<String>,
    /// USER:PASSWORD of a reviewer; give two for drafts that need two approvals.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub reviewer: Vec<String>,
    /// USER:PASSWORD of an auditor, who runs the final verification.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub auditor: Option<String>,
    /// Print the summary as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One line of the corpus.
#[derive(Debug, Clone, Deserialize)]
pub struct Pair {
    pub id: String,
    pub customer_handle: String,
    pub customer_text: String,
    pub reply_text: String,
}

/// A reply the checks blocked or escalated, with why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flagged {
    pub id: String,
    pub reply_text: String,
    pub verdict: String,
    pub final_state: String,
    /// `category (rule): "matched text"` for each finding.
    pub findings: Vec<String>,
}

/// What the replay saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub server: String,
    pub pairs: usize,
    pub policy_version: String,
    pub verdicts: BTreeMap<String, usize>,
    pub final_states: BTreeMap<String, usize>,
    /// Pairs whose inbound message was answered by an earlier run, left alone.
    pub skipped: usize,
    pub blocked: Vec<Flagged>,
    pub escalated: Vec<Flagged>,
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub audit_ok: bool,
    pub audit_size: u64,
    /// Lines the `log` channel wrote for this run's drafts (checked when the post log is
    /// readable from here, i.e. same settings).
    pub posted_lines: Option<usize>,
}

/// `countersign replay`: runs and prints the summary; `Ok(true)` when every approved reply
/// was posted and the audit log verifies.
pub fn run(args: &ReplayArgs, config: Option<&Path>) -> anyhow::Result<bool> {
    let settings = Settings::load(config).context("the settings are invalid")?;
    let summary = replay(args, &settings)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary));
    }
    let unposted = summary.final_states.get("approved").copied().unwrap_or(0)
        + summary
            .final_states
            .get("post_failed")
            .copied()
            .unwrap_or(0);
    Ok(summary.audit_ok && unposted == 0)
}

struct Credentials {
    agent: (String, String),
    reviewers: Vec<(String, String)>,
    auditor: (String, String),
}

fn split_credentials(s: &str) -> anyhow::Result<(String, String)> {
    let (u, p) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("credentials must be USER:PASSWORD"))?;
    Ok((u.to_string(), p.to_string()))
}

/// Creates an agent, two reviewers and an auditor with random passwords, under names unique
/// to this run.
fn create_users(settings: &Settings) -> anyhow::Result<Credentials> {
    use rand::Rng;
    let db = Db::connect(&settings.database_url, 1)?;
    db.migrate()?;
    let mut conn = db.conn()?;
    let run: String = format!("{:06x}", rand::thread_rng().gen::<u32>() & 0xff_ffff);
    let mut make = |name: String, role: Role| -> anyhow::Result<(String, String)> {
        let password: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        crate::app::users::create_user(&mut conn, &Actor::System, &name, &password, &[role], None)?;
        Ok((name, password))
    };
    Ok(Credentials {
        agent: make(format!("replay-agent-{run}"), Role::Agent)?,
        reviewers: vec![
            make(format!("replay-reviewer1-{run}"), Role::Reviewer)?,
            make(format!("replay-reviewer2-{run}"), Role::Reviewer)?,
        ],
        auditor: make(format!("replay-auditor-{run}"), Role::Auditor)?,
    })
}

/// A small HTTP client that counts its requests.
struct Client {
    base: String,
    agent: ureq::Agent,
    requests: AtomicU64,
}

impl Client {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let resp = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.send_json(b),
                    None => r.send_empty(),
                }
            }
        };
        let mut resp = resp.with_context(|| format!("{method} {url}: is the server running?"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    fn login(&self, (user, password): &(String, String)) -> anyhow::Result<String> {
        let (status, body) = self.call(
            "POST",
            "/api/v1/login",
            None,
            Some(&json!({"username": user, "password": password})),
        )?;
        if status != 200 {
            bail!(
                "signing in as {user} failed ({status}): {}",
                body["message"]
            );
        }
        Ok(body["token"].as_str().unwrap_or_default().to_string())
    }
}

struct Tokens {
    agent: String,
    reviewers: Vec<String>,
}

/// What happened to one pair.
struct Outcome {
    verdict: String,
    state: String,
    draft_id: Option<String>,
    report: Value,
    skipped: bool,
}

fn replay_one(c: &Client, t: &Tokens, p: &Pair) -> anyhow::Result<Outcome> {
    let (status, inbound) = c.call(
        "POST",
        "/api/v1/inbound",
        Some(&t.agent),
        Some(&json!({"channel": "x", "external_id": p.id, "author": {"handle": p.customer_handle}, "text": p.customer_text})),
    )?;
    if !(status == 200 || status == 201) {
        bail!(
            "pair {}: inbound answered {status}: {}",
            p.id,
            inbound["message"]
        );
    }
    if inbound["state"] != "open" {
        return Ok(Outcome {
            verdict: String::new(),
            state: String::new(),
            draft_id: None,
            report: Value::Null,
            skipped: true,
        });
    }
    let (status, draft) = c.call(
        "POST",
        "/api/v1/drafts",
        Some(&t.agent),
        Some(&json!({"inbound_id": inbound["id"], "text": p.reply_text})),
    )?;
    if status != 201 {
        bail!(
            "pair {}: draft answered {status}: {}",
            p.id,
            draft["message"]
        );
    }
    let id = draft["id"].as_str().unwrap_or_default().to_string();
    let revision = draft["revision"].clone();
    let (status, submitted) = c.call(
        "POST",
        &format!("/api/v1/drafts/{id}/submit"),
        Some(&t.agent),
        None,
    )?;
    if status == 422 {
        return Ok(Outcome {
            verdict: "block".into(),
            state: "draft".into(),
            draft_id: Some(id),
            report: submitted["check"].clone(),
            skipped: false,
        });
    }
    if status != 200 {
        bail!(
            "pair {}: submit answered {status}: {}",
            p.id,
            submitted["message"]
        );
    }
    let verdict = submitted["check"]["verdict"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut state = submitted["state"].as_str().unwrap_or_default().to_string();
    for reviewer in &t.reviewers {
        if state != "pending_review" {
            break;
        }
        let (status, reviewed) = c.call(
            "POST",
            &format!("/api/v1/drafts/{id}/reviews"),
            Some(reviewer),
            Some(&json!({"decision": "approve", "comment": "replay", "revision": revision})),
        )?;
        if status != 200 {
            bail!(
                "pair {}: review answered {status}: {}",
                p.id,
                reviewed["message"]
            );
        }
        state = reviewed["state"].as_str().unwrap_or_default().to_string();
    }
    Ok(Outcome {
        verdict,
        state,
        draft_id: Some(id),
        report: submitted["check"].clone(),
        skipped: false,
    })
}

fn describe_findings(report: &Value, text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    report["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| {
                    let (s, e) = (
                        f["start"].as_u64().unwrap_or(0) as usize,
                        f["end"].as_u64().unwrap_or(0) as usize,
                    );
                    let matched: String = chars
                        .get(s.min(chars.len())..e.min(chars.len()))
                        .map(|c| c.iter().collect())
                        .unwrap_or_default();
                    format!(
                        "{} ({}, {}): {:?}",
                        f["category"].as_str().unwrap_or("?"),
                        f["rule"].as_str().unwrap_or("?"),
                        f["severity"].as_str().unwrap_or("?"),
                        matched
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn read_pairs(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Pair>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        pairs.push(
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a pair", path.display(), n + 1))?,
        );
        if limit.is_some_and(|l| pairs.len() >= l) {
            break;
        }
    }
    Ok(pairs)
}

/// Runs the replay and returns its summary.
pub fn replay(args: &ReplayArgs, settings: &Settings) -> anyhow::Result<Summary> {
    let pairs = read_pairs(&args.pairs, args.limit)?;
    let creds = match &args.agent {
        Some(agent) => Credentials {
            agent: split_credentials(agent)?,
            reviewers: args
                .reviewer
                .iter()
                .map(|r| split_credentials(r))
                .collect::<anyhow::Result<_>>()?,
            auditor: split_credentials(args.auditor.as_deref().unwrap_or_default())?,
        },
        None => create_users(settings)?,
    };
    if creds.reviewers.is_empty() {
        bail!("at least one --reviewer is needed");
    }
    let base = args
        .server
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.bind))
        .trim_end_matches('/')
        .to_string();
    let client = Client {
        base: base.clone(),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into(),
        requests: AtomicU64::new(0),
    };
    let tokens = Tokens {
        agent: client.login(&creds.agent)?,
        reviewers: creds
            .reviewers
            .iter()
            .map(|r| client.login(r))
            .collect::<anyhow::Result<_>>()?,
    };
    let auditor = client.login(&creds.auditor)?;

    let started = Instant::now();
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<(usize, Outcome)>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..args.concurrency.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= pairs.len() || first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return;
                }
                match replay_one(&client, &tokens, &pairs[i]) {
                    Ok(o) => results.lock().expect("results").push((i, o)),
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let mut results = results
        .into_inner()
        .map_err(|_| anyhow!("a client thread panicked"))?;
    results.sort_by_key(|(i, _)| *i);

    // Wait (bounded) for the worker to post every approved reply.
    let deadline = Instant::now() + Duration::from_secs(120);
    for (_, o) in results.iter_mut() {
        let Some(id) = &o.draft_id else { continue };
        while o.state == "approved" || o.state == "post_failed" {
            let (_, d) = client.call(
                "GET",
                &format!("/api/v1/drafts/{id}"),
                Some(&tokens.agent),
                None,
            )?;
            o.state = d["state"].as_str().unwrap_or_default().to_string();
            if o.state == "posted" || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let requests = client.requests.load(Ordering::Relaxed);

    let (status, verified) = client.call("GET", "/api/v1/audit/verify", Some(&auditor), None)?;
    if status != 200 {
        bail!("audit verify answered {status}: {}", verified["message"]);
    }

    let mut summary = Summary {
        server: base,
        pairs: pairs.len(),
        requests,
        seconds,
        requests_per_second: requests as f64 / seconds.max(1e-9),
        audit_ok: verified["ok"] == true,
        audit_size: verified["size"].as_u64().unwrap_or(0),
        ..Default::default()
    };
    let mut posted_ids = Vec::new();
    for (i, o) in &results {
        if o.skipped {
            summary.skipped += 1;
            continue;
        }
        if summary.policy_version.is_empty() {
            summary.policy_version = o.report["policy_version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        *summary.verdicts.entry(o.verdict.clone()).or_default() += 1;
        *summary.final_states.entry(o.state.clone()).or_default() += 1;
        if o.state == "posted" {
            posted_ids.extend(o.draft_id.clone());
        }
        let p = &pairs[*i];
        let flagged = || Flagged {
            id: p.id.clone(),
            reply_text: p.reply_text.clone(),
            verdict: o.verdict.clone(),
            final_state: o.state.clone(),
            findings: describe_findings(&o.report, &p.reply_text),
        };
        match o.verdict.as_str() {
            "block" => summary.blocked.push(flagged()),
            "escalate" => summary.escalated.push(flagged()),
            _ => {}
        }
    }
    if let Ok(log) = std::fs::read_to_string(&settings.post_log) {
        let ids: std::collections::HashSet<&str> = posted_ids.iter().map(String::as_str).collect();
        summary.posted_lines = Some(
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["draft_id"].as_str().is_some_and(|d| ids.contains(d)))
                .count(),
        );
    }
    Ok(summary)
}

/// The summary as text for a person.
pub fn render(s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let counts = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "Replayed {} real customer posts and replies against {}",
        s.pairs, s.server
    );
    let _ = writeln!(out, "policy_version {}", s.policy_version);
    let _ = writeln!(out, "verdicts:     {}", counts(&s.verdicts));
    let _ = writeln!(out, "final states: {}", counts(&s.final_states));
    if s.skipped > 0 {
        let _ = writeln!(
            out,
            "skipped:      {} (answered by an earlier run)",
            s.skipped
        );
    }
    if let Some(n) = s.posted_lines {
        let _ = writeln!(out, "post log:     {n} lines for this run's posted drafts");
    }
    for (title, list) in [("blocked", &s.blocked), ("escalated", &s.escalated)] {
        let _ = writeln!(out, "\n{title} ({}):", list.len());
        for f in list {
            let _ = writeln!(out, "  {} [{}] {:?}", f.id, f.final_state, f.reply_text);
            for finding in &f.findings {
                let _ = writeln!(out, "      {finding}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\nthroughput:   {} requests in {:.1} s = {:.0} requests/s",
        s.requests, s.seconds, s.requests_per_second
    );
    let _ = writeln!(
        out,
        "audit verify: {} ({} entries)",
        if s.audit_ok { "ok" } else { "FAILED" },
        s.audit_size
    );
    out
}
