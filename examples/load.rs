//! A closed-loop load test of the write path, against Countersign or against the ceiling
//! (`../shared/bench/ceiling`: the least a service of its kind must do per write request).
//! `scripts/load` builds both, prepares fresh databases and users and runs this for each
//! backend and concurrency; see docs/performance.md "Write-path load test".
//!
//! ```text
//! load ceiling ADDR [--concurrency N] [--seconds S] [--max-requests N] [--backend NAME]
//! load workflow ADDR --agent NAME --reviewer NAME [--auditor NAME] [--password PASS]
//!      [--post-log FILE] [--no-check] [--check-seconds S] [--concurrency N] [--seconds S] …
//! load table FILE                       # one table of the RESULT lines in FILE
//! ```
//! ADDR is the server's `127.0.0.1:PORT` (loopback only). CONCURRENCY client threads, each
//! on its own kept-alive HTTP/1.1 connection, send their next request as soon as the last
//! one is answered, for SECONDS and at most `--max-requests` requests each.
//! - `ceiling`: `POST /items {"text"}` (kind `item`).
//! - `workflow`: the agent and the reviewer sign in once (the password from `--password`
//!   or `LOAD_PASSWORD`; the users from `--agent`/`LOAD_AGENT`, …) and every client shares
//!   their two tokens. Each iteration takes in an inbound message (kind `inbound`), drafts
//!   a reply (`draft`), submits it (`submit`) and approves it as the reviewer (`approve`);
//!   a non-2xx answer ends the iteration. Then (unless `--no-check`) it waits up to
//!   `--check-seconds` until every draft whose approval was acknowledged is `posted`, reads
//!   `review.approved` and `post.succeeded` from the audit log as the auditor (the time from
//!   one to the other), and checks that the post log (`--post-log`) holds each such draft
//!   exactly once. It exits 1 when one was not posted exactly once, or no request succeeded.
//!
//! It prints a table, one row per kind and an `all` row (req/s counts 2xx answers only;
//! latencies are over every answer), and a `RESULT {json}` line with the same figures.

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "load", about = "A closed-loop load test of the write path")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// POST /items to the ceiling.
    Ceiling(Common),
    /// Inbound, draft, submit, approve against Countersign; then check the posting.
    Workflow {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        users: Users,
    },
    /// Print one table of the RESULT lines in FILE (ceiling and Countersign side by side).
    Table { file: PathBuf },
}

#[derive(Args)]
struct Common {
    /// The server's address, 127.0.0.1:PORT (loopback only).
    addr: String,
    /// Client threads, one connection each.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long the closed loop runs.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// No client sends more than this many requests, whatever the duration.
    #[arg(long, default_value_t = 200_000)]
    max_requests: usize,
    /// The backend's name, for the table (sqlite, postgres).
    #[arg(long, default_value = "-")]
    backend: String,
    /// The target's name, for the table (default: ceiling, countersign).
    #[arg(long)]
    target: Option<String>,
}

#[derive(Args)]
struct Users {
    /// A user with the agent role.
    #[arg(long, env = "LOAD_AGENT")]
    agent: String,
    /// A user with the reviewer role.
    #[arg(long, env = "LOAD_REVIEWER")]
    reviewer: String,
    /// A user with the auditor role, to read the audit log in the check.
    #[arg(long, env = "LOAD_AUDITOR")]
    auditor: Option<String>,
    /// The users' password (all of them).
    #[arg(long, env = "LOAD_PASSWORD", hide_env_values = true)]
    password: String,
    /// The log channel's file (COUNTERSIGN_POST_LOG): each acknowledged draft once.
    #[arg(long)]
    post_log: Option<PathBuf>,
    /// Check the posting after the run (the default).
    #[arg(long, overrides_with = "no_check")]
    check: bool,
    /// Do not check the posting.
    #[arg(long)]
    no_check: bool,
    /// How long to wait for every acknowledged approval to be posted.
    #[arg(long, default_value_t = 30)]
    check_seconds: u64,
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1 over one kept-alive TcpStream.

/// Bodies larger than this are refused (an audit page of 1000 entries is a few MB).
const MAX_BODY: usize = 64 << 20;

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "status {}: not JSON ({e}): {}",
                self.status,
                snippet(&self.body)
            )
        })
    }

    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    fn connect(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            s.set_write_timeout(Some(Duration::from_secs(10)))?;
            self.stream = Some(BufReader::new(s));
        }
        Ok(())
    }

    /// One request; the connection is dropped (and opened again next time) on any error or
    /// when the server closes it. No request is retried: they are not idempotent.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> std::io::Result<Answer> {
        self.connect()?;
        let stream = self.stream.as_mut().expect("connected above");
        match exchange(stream, self.addr, method, path, token, body) {
            Ok((answer, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(answer)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

fn exchange(
    stream: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(Answer, bool)> {
    use std::io::{Error, ErrorKind};
    let bad = |m: String| Error::new(ErrorKind::InvalidData, m);
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    // One write: pieces written one by one meet Nagle and delayed ACKs.
    stream.get_mut().write_all(request.as_bytes())?;

    let mut line = String::new();
    if stream.read_line(&mut line)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("not an HTTP status line: {:?}", line.trim_end())))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut keep = !line.starts_with("HTTP/1.0");
    loop {
        line.clear();
        if stream.read_line(&mut line)? == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad(format!("a bad header line: {header:?}")));
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("Content-Length {value:?}")))?,
                )
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    keep = false;
                } else if v.contains("keep-alive") {
                    keep = true;
                }
            }
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            if stream.read_line(&mut line)? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            let size = line.trim_end().split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(format!("a bad chunk size: {size:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if stream.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                return Err(bad(format!("a body over {MAX_BODY} bytes")));
            }
            let start = body.len();
            body.resize(start + size, 0);
            stream.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            stream.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(bad(format!("a body of {n} bytes")));
        }
        body.resize(n, 0);
        stream.read_exact(&mut body)?;
    } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
        // No length: the body runs to the end of the connection.
        stream.take(MAX_BODY as u64).read_to_end(&mut body)?;
        keep = false;
    }
    Ok((Answer { status, body }, keep))
}

/// The address, refused unless every address it names is on the loopback.
fn loopback(addr: &str) -> Result<SocketAddr, String> {
    let addr = addr.trim_start_matches("http://").trim_end_matches('/');
    let all: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr:?} is not HOST:PORT ({e})"))?
        .collect();
    match all.first() {
        None => Err(format!("{addr:?} names no address")),
        Some(_) if all.iter().any(|a| !a.ip().is_loopback()) => Err(format!(
            "{addr:?} is not a loopback address: this load test only targets this machine"
        )),
        Some(first) => Ok(*first),
    }
}

// ---------------------------------------------------------------------------------------
// Figures.

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Answers by status; 0 for a request that got no answer (connection error, timeout).
    statuses: BTreeMap<u16, usize>,
    /// A few bodies of non-2xx answers, by status, to show what went wrong.
    samples: BTreeMap<u16, Vec<String>>,
}

impl Tally {
    fn record(&mut self, took: Duration, status: u16, body: &[u8]) {
        self.latencies.push(took);
        *self.statuses.entry(status).or_default() += 1;
        if !(200..300).contains(&status) {
            let s = self.samples.entry(status).or_default();
            if s.len() < 3 {
                s.push(snippet(body));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.samples {
            let s = self.samples.entry(k).or_default();
            for b in v {
                if s.len() < 3 {
                    s.push(b);
                }
            }
        }
    }

    fn ok(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn status_name(s: u16) -> String {
    if s == 0 {
        "err".into()
    } else {
        s.to_string()
    }
}

/// One row's figures, as printed and as put in the RESULT line.
fn row(kind: &str, tally: &mut Tally, elapsed: Duration) -> Value {
    tally.latencies.sort();
    let l = &tally.latencies;
    let non2xx: BTreeMap<String, usize> = tally
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(s, n)| (status_name(*s), *n))
        .collect();
    json!({
        "kind": kind,
        "requests": l.len(),
        "ok": tally.ok(),
        "rps": tally.ok() as f64 / elapsed.as_secs_f64().max(1e-9),
        "p50_ms": ms(percentile(l, 0.50)),
        "p99_ms": ms(percentile(l, 0.99)),
        "max_ms": ms(percentile(l, 1.0)),
        "non2xx": non2xx,
    })
}

fn non2xx_text(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(s, n)| format!("{s}×{}", n.as_u64().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "0".into(),
    }
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

/// Prints the table and returns the RESULT object (without the check).
fn report(
    target: &str,
    backend: &str,
    concurrency: usize,
    elapsed: Duration,
    kinds: Vec<(&str, Tally)>,
) -> Value {
    let mut all = Tally::default();
    let mut rows = Vec::new();
    for (kind, mut tally) in kinds {
        rows.push(row(kind, &mut tally, elapsed));
        all.merge(tally);
    }
    let all_row = row("all", &mut all, elapsed);
    println!(
        "| target | backend | concurrency | kind | requests | req/s | p50 ms | p99 ms | max ms | non-2xx |"
    );
    println!("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows.iter().chain(std::iter::once(&all_row)) {
        println!(
            "| {target} | {backend} | {concurrency} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r["kind"].as_str().unwrap_or("?"),
            r["requests"],
            f(r, "rps"),
            f(r, "p50_ms"),
            f(r, "p99_ms"),
            f(r, "max_ms"),
            non2xx_text(&r["non2xx"]),
        );
    }
    println!("({:.1} s, {concurrency} clients)", elapsed.as_secs_f64());
    if !all.samples.is_empty() {
        println!("non-2xx answers, a few of each status:");
        for (status, bodies) in &all.samples {
            for b in bodies {
                println!("  {}: {b}", status_name(*status));
            }
        }
    }
    json!({
        "target": target,
        "backend": backend,
        "concurrency": concurrency,
        "seconds": elapsed.as_secs_f64(),
        "kinds": rows,
        "all": all_row,
    })
}

/// Runs `client(c, deadline, max)` on `concurrency` threads, all starting together;
/// returns their results and the time from the start until the last one finished.
fn closed_loop<T: Send>(
    addr: SocketAddr,
    concurrency: usize,
    seconds: u64,
    client: impl Fn(usize, &mut Conn, Instant) -> T + Sync,
) -> (Vec<T>, Duration) {
    let barrier = Barrier::new(concurrency + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|c| {
                let (barrier, client) = (&barrier, &client);
                scope.spawn(move || {
                    let mut conn = Conn::new(addr);
                    // Connect before the clock starts; a failure shows as errors later.
                    let _ = conn.connect();
                    barrier.wait();
                    let deadline = Instant::now() + Duration::from_secs(seconds);
                    client(c, &mut conn, deadline)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let results = handles
            .into_iter()
            .map(|h| h.join().expect("a client thread panicked"))
            .collect();
        (results, start.elapsed())
    })
}

// ---------------------------------------------------------------------------------------
// Ceiling mode.

fn run_ceiling(addr: SocketAddr, common: &Common) -> Result<Value, String> {
    let max = common.max_requests;
    let (tallies, elapsed) = closed_loop(
        addr,
        common.concurrency,
        common.seconds,
        |c, conn, deadline| {
            let mut tally = Tally::default();
            let mut n = 0usize;
            while Instant::now() < deadline && n < max {
                let body = json!({"text": format!("load item {c}-{n}")}).to_string();
                n += 1;
                let t = Instant::now();
                match conn.request("POST", "/items", None, Some(&body)) {
                    Ok(a) => tally.record(t.elapsed(), a.status, &a.body),
                    Err(e) => tally.record(t.elapsed(), 0, e.to_string().as_bytes()),
                }
            }
            tally
        },
    );
    let mut all = Tally::default();
    for t in tallies {
        all.merge(t);
    }
    let target = common.target.as_deref().unwrap_or("ceiling");
    let result = report(
        target,
        &common.backend,
        common.concurrency,
        elapsed,
        vec![("item", all)],
    );
    if result["all"]["ok"].as_u64().unwrap_or(0) == 0 {
        println!("RESULT {result}");
        return Err("no request succeeded".into());
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// Workflow mode.

const KINDS: [&str; 4] = ["inbound", "draft", "submit", "approve"];
const INBOUND_TEXT: &str = "My card was charged twice, can you help?";
const DRAFT_TEXT: &str = "Sorry about that. We are looking into the double charge now and will get back to you here today.";

fn base36(mut n: usize) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[n % 36]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

fn login(addr: SocketAddr, username: &str, password: &str) -> Result<String, String> {
    let body = json!({"username": username, "password": password}).to_string();
    let mut conn = Conn::new(addr);
    // Sign-in may be refused for a moment (503 when the hashing queue is full); retry a few
    // times, never with a wrong password.
    for attempt in 0..10 {
        let a = conn
            .request("POST", "/api/v1/login", None, Some(&body))
            .map_err(|e| format!("sign-in as {username}: {e}"))?;
        match a.status {
            200 => {
                return a
                    .json()?
                    .get("token")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        format!("sign-in as {username}: no token in {}", snippet(&a.body))
                    })
            }
            429 | 503 if attempt < 9 => std::thread::sleep(Duration::from_secs(1)),
            s => return Err(format!("sign-in as {username}: {s} {}", snippet(&a.body))),
        }
    }
    Err(format!("sign-in as {username}: refused ten times"))
}

#[derive(Default)]
struct ClientRun {
    tallies: [Tally; 4],
    /// Drafts whose approval was answered 200 in state approved or posted, with when.
    acknowledged: Vec<String>,
    /// Approvals answered 200 that left the draft waiting for another approval.
    awaiting_more: usize,
    /// The drafts' verdicts (`check.verdict`) as created.
    verdicts: BTreeMap<String, usize>,
    /// Answers that were 2xx but not what the contract says, with a sample.
    oddities: Vec<String>,
}

struct Tokens<'a> {
    agent: &'a str,
    reviewer: &'a str,
}

/// One iteration: inbound, draft, submit, approve. Stops at the first non-2xx answer (or
/// at the deadline, or the request budget).
fn iteration(
    conn: &mut Conn,
    tokens: &Tokens,
    run: &mut ClientRun,
    ids: (&str, usize, usize),
    mut may_send: impl FnMut() -> bool,
) {
    let (run_id, c, n) = ids;
    // Sends one request of kind `k`; returns the answer's JSON when it is 2xx.
    let mut send = |run: &mut ClientRun,
                    k: usize,
                    path: &str,
                    token: &str,
                    body: Option<String>|
     -> Option<Value> {
        if !may_send() {
            return None;
        }
        let t = Instant::now();
        let answer = conn.request("POST", path, Some(token), body.as_deref());
        let took = t.elapsed();
        match answer {
            Err(e) => {
                run.tallies[k].record(took, 0, e.to_string().as_bytes());
                None
            }
            Ok(a) => {
                run.tallies[k].record(took, a.status, &a.body);
                if !a.ok() {
                    return None;
                }
                match a.json() {
                    Ok(v) => Some(v),
                    Err(e) => {
                        run.oddities.push(format!("{}: {e}", KINDS[k]));
                        None
                    }
                }
            }
        }
    };
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);

    let inbound = json!({
        "channel": "x",
        "external_id": format!("load-{run_id}-{c}-{n}"),
        "author": {"handle": format!("l{}x{}", base36(c), base36(n))},
        "text": INBOUND_TEXT,
    });
    let Some(v) = send(
        run,
        0,
        "/api/v1/inbound",
        tokens.agent,
        Some(inbound.to_string()),
    ) else {
        return;
    };
    let Some(inbound_id) = str_of(&v, "id") else {
        run.oddities.push(format!("inbound: no id in {v}"));
        return;
    };

    let draft = json!({"inbound_id": inbound_id, "text": DRAFT_TEXT});
    let Some(v) = send(
        run,
        1,
        "/api/v1/drafts",
        tokens.agent,
        Some(draft.to_string()),
    ) else {
        return;
    };
    let Some(draft_id) = str_of(&v, "id") else {
        run.oddities.push(format!(
            "draft: no id in {}",
            snippet(v.to_string().as_bytes())
        ));
        return;
    };
    let verdict = v
        .pointer("/check/verdict")
        .and_then(Value::as_str)
        .unwrap_or("(none)")
        .to_string();
    *run.verdicts.entry(verdict).or_default() += 1;
    let revision = v.get("revision").and_then(Value::as_i64).unwrap_or(1);

    let submit = format!("/api/v1/drafts/{draft_id}/submit");
    if send(run, 2, &submit, tokens.agent, None).is_none() {
        return;
    }

    let review = json!({"decision": "approve", "comment": "ok", "revision": revision});
    let path = format!("/api/v1/drafts/{draft_id}/reviews");
    let Some(v) = send(run, 3, &path, tokens.reviewer, Some(review.to_string())) else {
        return;
    };
    match v.get("state").and_then(Value::as_str) {
        Some("approved" | "posted") => run.acknowledged.push(draft_id),
        Some("pending_review") => run.awaiting_more += 1,
        other => run.oddities.push(format!(
            "approve: answered 200 with state {other:?} for draft {draft_id}"
        )),
    }
}

#[derive(Default)]
struct CheckOutcome {
    acknowledged: usize,
    posted: usize,
    not_posted: Vec<(String, String)>,
    /// Acknowledged drafts whose post.succeeded entries are not exactly one.
    audit_not_once: Vec<(String, usize)>,
    /// Acknowledged drafts whose post-log lines are not exactly one.
    log_not_once: Vec<(String, usize)>,
    latencies: Vec<Duration>,
    notes: Vec<String>,
}

/// Pages through `GET /api/v1/audit?action=ACTION`; returns (subject, at) of each entry.
fn audit_entries(
    conn: &mut Conn,
    token: &str,
    action: &str,
) -> Result<Vec<(String, chrono::DateTime<chrono::FixedOffset>)>, String> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _page in 0..100_000 {
        let mut path = format!("/api/v1/audit?action={action}&limit=1000");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let a = conn
            .request("GET", &path, Some(token), None)
            .map_err(|e| format!("GET {path}: {e}"))?;
        if a.status != 200 {
            return Err(format!("GET {path}: {} {}", a.status, snippet(&a.body)));
        }
        let v = a.json()?;
        let entries = v
            .get("entries")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("GET {path}: no entries in {}", snippet(&a.body)))?;
        for e in entries {
            let (Some(subject), Some(at)) = (
                e.get("subject").and_then(Value::as_str),
                e.get("at").and_then(Value::as_str),
            ) else {
                return Err(format!("{action}: an entry without subject or at: {e}"));
            };
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|err| format!("{action}: at {at:?} is not RFC 3339: {err}"))?;
            out.push((subject.to_string(), at));
        }
        after = match v.get("next") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => return Ok(out),
        };
    }
    Err(format!("{action}: more than 100,000 pages"))
}

fn check_posting(
    addr: SocketAddr,
    users: &Users,
    reader_token: &str,
    acknowledged: &[String],
) -> CheckOutcome {
    let mut out = CheckOutcome {
        acknowledged: acknowledged.len(),
        ..CheckOutcome::default()
    };
    let mut conn = Conn::new(addr);
    // 1. Every acknowledged approval ends `posted`: poll each draft, one full pass at
    //    least, then the ones still pending until the wait is over.
    let deadline = Instant::now() + Duration::from_secs(users.check_seconds);
    let mut pending: Vec<(String, String)> = acknowledged
        .iter()
        .map(|id| (id.clone(), "unknown".to_string()))
        .collect();
    loop {
        let mut still = Vec::new();
        for (id, _) in pending {
            let path = format!("/api/v1/drafts/{id}");
            let state = match conn.request("GET", &path, Some(reader_token), None) {
                Ok(a) if a.status == 200 => match a.json() {
                    Ok(v) => v
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("(no state)")
                        .to_string(),
                    Err(e) => e,
                },
                Ok(a) => format!("GET answered {}: {}", a.status, snippet(&a.body)),
                Err(e) => format!("GET failed: {e}"),
            };
            if state == "posted" {
                out.posted += 1;
            } else {
                still.push((id, state));
            }
        }
        pending = still;
        // post_failed is final (a reviewer may retry it, this test does not).
        if pending.iter().all(|(_, s)| s == "post_failed") || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    out.not_posted = pending;

    // 2. The audit log: one post.succeeded per acknowledged draft, and its time after the
    //    draft's (last) review.approved.
    if let Some(auditor) = &users.auditor {
        let read = login(addr, auditor, &users.password).and_then(|token| {
            let posted = audit_entries(&mut conn, &token, "post.succeeded")?;
            let approved = audit_entries(&mut conn, &token, "review.approved")?;
            Ok((posted, approved))
        });
        match read {
            Err(e) => out.notes.push(format!("audit log not read: {e}")),
            Ok((posted, approved)) => {
                let mut post_at: HashMap<&str, Vec<_>> = HashMap::new();
                for (subject, at) in &posted {
                    post_at.entry(subject.as_str()).or_default().push(*at);
                }
                let mut approved_at: HashMap<&str, _> = HashMap::new();
                for (subject, at) in &approved {
                    // Entries come oldest first: the last approval is the one that counts.
                    approved_at.insert(subject.as_str(), *at);
                }
                for id in acknowledged {
                    let posts = post_at.get(id.as_str()).map_or(&[][..], Vec::as_slice);
                    if posts.len() != 1 {
                        out.audit_not_once.push((id.clone(), posts.len()));
                    }
                    match (posts.first(), approved_at.get(id.as_str())) {
                        (Some(p), Some(a)) => {
                            let d = (*p - *a).to_std().unwrap_or(Duration::ZERO);
                            out.latencies.push(d);
                        }
                        (Some(_), None) => out
                            .notes
                            .push(format!("draft {id}: posted but no review.approved entry")),
                        _ => {}
                    }
                }
            }
        }
    } else {
        out.notes
            .push("no --auditor: audit log not read, no posting latency".into());
    }

    // 3. The post log: each acknowledged draft exactly once.
    if let Some(path) = &users.post_log {
        match read_post_log(path) {
            Err(e) => out.notes.push(e),
            Ok((counts, bad)) => {
                if bad > 0 {
                    out.notes.push(format!(
                        "{}: {bad} lines are not JSON with a draft_id",
                        path.display()
                    ));
                }
                for id in acknowledged {
                    let n = counts.get(id).copied().unwrap_or(0);
                    if n != 1 {
                        out.log_not_once.push((id.clone(), n));
                    }
                }
            }
        }
    }
    out
}

/// Lines of the post log by draft id, and how many lines had none.
fn read_post_log(path: &Path) -> Result<(HashMap<String, usize>, usize), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("post log {} not read: {e}", path.display()))?;
    let mut counts = HashMap::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line).ok().and_then(|v| {
            v.get("draft_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        }) {
            Some(id) => *counts.entry(id).or_default() += 1,
            None => bad += 1,
        }
    }
    Ok((counts, bad))
}

fn run_workflow(addr: SocketAddr, common: &Common, users: &Users) -> Result<Value, String> {
    let agent = login(addr, &users.agent, &users.password)?;
    let reviewer = login(addr, &users.reviewer, &users.password)?;
    let tokens = Tokens {
        agent: &agent,
        reviewer: &reviewer,
    };
    // Unique external ids across runs on one database.
    let run_id = base36(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as usize)
            .unwrap_or(0),
    );
    let max = common.max_requests;
    let (runs, elapsed) = closed_loop(
        addr,
        common.concurrency,
        common.seconds,
        |c, conn, deadline| {
            let mut run = ClientRun::default();
            let mut sent = 0usize;
            let mut n = 0usize;
            while Instant::now() < deadline && sent < max {
                let may_send = || {
                    let go = Instant::now() < deadline && sent < max;
                    sent += usize::from(go);
                    go
                };
                iteration(conn, &tokens, &mut run, (&run_id, c, n), may_send);
                n += 1;
            }
            run
        },
    );

    let mut tallies: [Tally; 4] = Default::default();
    let mut acknowledged = Vec::new();
    let mut awaiting_more = 0;
    let mut verdicts = BTreeMap::<String, usize>::new();
    let mut oddities = Vec::new();
    for run in runs {
        for (all, t) in tallies.iter_mut().zip(run.tallies) {
            all.merge(t);
        }
        acknowledged.extend(run.acknowledged);
        awaiting_more += run.awaiting_more;
        for (k, v) in run.verdicts {
            *verdicts.entry(k).or_default() += v;
        }
        oddities.extend(run.oddities);
    }
    let target = common.target.as_deref().unwrap_or("countersign");
    let kinds = KINDS.iter().copied().zip(tallies).collect();
    let mut result = report(target, &common.backend, common.concurrency, elapsed, kinds);
    let verdict_text = verdicts
        .iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!("drafts' verdicts: {verdict_text}");
    if verdicts.keys().any(|v| v != "pass") {
        println!("  (every draft of this test should pass its check: the text has no finding)");
    }
    if awaiting_more > 0 {
        println!("{awaiting_more} approvals left their draft waiting for another approval");
    }
    for o in oddities.iter().take(10) {
        println!("unexpected: {o}");
    }
    result["verdicts"] = json!(verdicts);
    result["awaiting_more"] = json!(awaiting_more);
    let mut failed = Vec::new();
    if result["all"]["ok"].as_u64().unwrap_or(0) == 0 {
        failed.push("no request succeeded".to_string());
    }

    if users.check || !users.no_check {
        println!(
            "checking: waiting up to {} s for {} acknowledged approvals to be posted…",
            users.check_seconds,
            acknowledged.len()
        );
        let mut c = check_posting(addr, users, &reviewer, &acknowledged);
        c.latencies.sort();
        let l = &c.latencies;
        println!(
            "approvals acknowledged {}, posted {}, not posted {}",
            c.acknowledged,
            c.posted,
            c.not_posted.len()
        );
        for (id, state) in c.not_posted.iter().take(10) {
            println!("  not posted: draft {id}: {state}");
        }
        if !l.is_empty() {
            println!(
                "approval to post.succeeded ({} drafts): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.len(),
                ms(percentile(l, 0.5)),
                ms(percentile(l, 0.99)),
                ms(percentile(l, 1.0))
            );
        }
        if users.auditor.is_some() {
            println!(
                "audit log: {} acknowledged drafts without exactly one post.succeeded",
                c.audit_not_once.len()
            );
            for (id, n) in c.audit_not_once.iter().take(10) {
                println!("  draft {id}: {n} post.succeeded entries");
            }
        }
        if let Some(p) = &users.post_log {
            println!(
                "post log {}: {} acknowledged drafts not there exactly once",
                p.display(),
                c.log_not_once.len()
            );
            for (id, n) in c.log_not_once.iter().take(10) {
                println!("  draft {id}: {n} lines");
            }
        }
        for note in &c.notes {
            println!("note: {note}");
        }
        if !c.not_posted.is_empty() {
            failed.push(format!(
                "{} acknowledged approvals not posted",
                c.not_posted.len()
            ));
        }
        if !c.audit_not_once.is_empty() {
            failed.push(format!(
                "{} drafts without exactly one post.succeeded",
                c.audit_not_once.len()
            ));
        }
        if !c.log_not_once.is_empty() {
            failed.push(format!(
                "{} drafts not in the post log exactly once",
                c.log_not_once.len()
            ));
        }
        result["check"] = json!({
            "acknowledged": c.acknowledged,
            "posted": c.posted,
            "not_posted": c.not_posted.len(),
            "audit_not_once": users.auditor.as_ref().map(|_| c.audit_not_once.len()),
            "log_not_once": users.post_log.as_ref().map(|_| c.log_not_once.len()),
            "post_latency_ms": if l.is_empty() { Value::Null } else { json!({
                "drafts": l.len(),
                "p50": ms(percentile(l, 0.5)),
                "p99": ms(percentile(l, 0.99)),
                "max": ms(percentile(l, 1.0)),
            })},
            "notes": c.notes,
        });
    }
    result["failed"] = json!(failed);
    if failed.is_empty() {
        Ok(result)
    } else {
        println!("RESULT {result}");
        Err(failed.join("; "))
    }
}

// ---------------------------------------------------------------------------------------
// The combined table.

fn table(file: &Path) -> Result<(), String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("{} not read: {e}", file.display()))?;
    // (backend, concurrency) in the order first seen, with the ceiling's and Countersign's.
    type Point = ((String, u64), Option<Value>, Option<Value>);
    let mut points: Vec<Point> = Vec::new();
    for line in text.lines() {
        let Some(json) = line.strip_prefix("RESULT ") else {
            continue;
        };
        let v: Value =
            serde_json::from_str(json).map_err(|e| format!("a bad RESULT line ({e})"))?;
        let key = (
            v["backend"].as_str().unwrap_or("-").to_string(),
            v["concurrency"].as_u64().unwrap_or(0),
        );
        let i = match points.iter().position(|(k, _, _)| *k == key) {
            Some(i) => i,
            None => {
                points.push((key, None, None));
                points.len() - 1
            }
        };
        if v["target"].as_str() == Some("ceiling") {
            points[i].1 = Some(v);
        } else {
            points[i].2 = Some(v);
        }
    }
    println!(
        "| backend | concurrency | ceiling req/s | Countersign req/s | ratio | Countersign p99 ms | Countersign max ms | posted / acknowledged | posting p99 ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let num =
        |v: Option<&Value>, path: &str| v.and_then(|v| v.pointer(path)).and_then(Value::as_f64);
    let show = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{x:.1}"));
    for ((backend, concurrency), ceiling, cs) in &points {
        let (ceiling, cs) = (ceiling.as_ref(), cs.as_ref());
        let c_rps = num(ceiling, "/all/rps");
        let s_rps = num(cs, "/all/rps");
        let ratio = match (c_rps, s_rps) {
            (Some(c), Some(s)) if c > 0.0 => format!("{:.2}", s / c),
            _ => "–".into(),
        };
        let posted = match (num(cs, "/check/posted"), num(cs, "/check/acknowledged")) {
            (Some(p), Some(a)) => format!("{p} / {a}"),
            _ => "–".into(),
        };
        println!(
            "| {backend} | {concurrency} | {} | {} | {ratio} | {} | {} | {posted} | {} |",
            show(c_rps),
            show(s_rps),
            show(num(cs, "/all/p99_ms")),
            show(num(cs, "/all/max_ms")),
            show(num(cs, "/check/post_latency_ms/p99")),
        );
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let outcome = match &cli.mode {
        Mode::Table { file } => table(file).map(|()| Value::Null),
        Mode::Ceiling(common) | Mode::Workflow { common, .. } => match loopback(&common.addr) {
            Err(e) => Err(e),
            Ok(_) if common.concurrency == 0 => Err("--concurrency must be at least 1".into()),
            Ok(addr) => match &cli.mode {
                Mode::Workflow { users, .. } => run_workflow(addr, common, users),
                _ => run_ceiling(addr, common),
            },
        },
    };
    match outcome {
        Ok(Value::Null) => {}
        Ok(result) => println!("RESULT {result}"),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(1);
        }
    }
}
