//! A fake X API v2 that answers as X does (docs.x.com): bearer tokens and their refresh
//! with rotating single-use refresh tokens, `POST /2/tweets`, the user's posts and
//! mentions newest first with `pagination_token`, problem+json errors, `x-rate-limit-*`
//! headers on every answer, X's HTML escaping and t.co links in the texts it returns, and
//! 403 for duplicate content. Faults can be queued for the next post.

use super::fake_http::{FakeServer, Reply, Request};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

pub const ACCOUNT_ID: &str = "100";
pub const ACCOUNT_NAME: &str = "ExampleCare";
pub const CLIENT_ID: &str = "fake-client";
pub const CLIENT_SECRET: &str = "fake-client-secret-9d1";

#[derive(Debug, Clone)]
pub struct FakeTweet {
    pub id: String,
    pub author_id: String,
    /// As its author sent it.
    pub text: String,
    pub in_reply_to: Option<String>,
    pub created_at: DateTime<Utc>,
    /// What X puts in front of a reply's text: `@author ` of the post it answers.
    pub reply_prefix: String,
}

/// What the next `POST /2/tweets` does instead of its usual answer.
pub enum Fault {
    /// 429 with the reset this many seconds ahead.
    RateLimited(i64),
    /// 503, nothing created.
    Unavailable,
    /// The post is created, and the connection closed without an answer.
    HangUpAfterCreate,
    /// The post is created, this runs (e.g. kills the caller), then the answer goes out.
    AfterCreate(Box<dyn FnOnce() + Send>),
    /// The access token in use expires (401) before this request.
    ExpireToken,
    /// The post is made, and the answer says the window has no request left for a minute.
    LastInWindow,
}

#[derive(Default)]
pub struct XState {
    pub tweets: Vec<FakeTweet>,
    pub users: HashMap<String, String>,
    pub access_tokens: HashSet<String>,
    pub refresh_tokens: HashSet<String>,
    pub faults: VecDeque<Fault>,
    pub refreshes: usize,
    /// Every request: method and path.
    pub requests: Vec<(String, String)>,
    next: u64,
}

impl XState {
    fn next_id(&mut self) -> String {
        self.next += 1;
        format!("19000000000000{:05}", self.next)
    }

    /// Our account's replies to `post`.
    pub fn replies_to(&self, post: &str) -> Vec<FakeTweet> {
        self.tweets
            .iter()
            .filter(|t| t.author_id == ACCOUNT_ID && t.in_reply_to.as_deref() == Some(post))
            .cloned()
            .collect()
    }
}

pub struct FakeX {
    pub server: FakeServer,
    pub state: Arc<Mutex<XState>>,
}

/// The t.co form of a link (stable per link, as X's are).
fn tco(url: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(url.as_bytes());
    format!("https://t.co/{}", &hex::encode(h)[..10])
}

/// X's copy of a text: links shortened, `&`, `<` and `>` escaped; with its url entities.
fn as_x_returns(text: &str) -> (String, Value) {
    let mut out = String::new();
    let mut urls = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if word.starts_with("http://") || word.starts_with("https://") {
            let short = tco(word);
            let start = out.chars().count();
            out.push_str(&short);
            urls.push(json!({"start": start, "end": start + short.chars().count(),
                "url": short, "expanded_url": word, "display_url": word.trim_start_matches("https://")}));
        } else {
            out.push_str(
                &word
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            );
        }
    }
    (out, json!({"urls": urls}))
}

fn problem(status: u16, title: &str, detail: &str) -> Reply {
    Reply::json(
        status,
        json!({"title": title, "detail": detail, "type": "about:blank", "status": status}),
    )
}

fn limits(reply: Reply) -> Reply {
    let reset = (Utc::now().timestamp() + 900).to_string();
    reply
        .with_header("x-rate-limit-limit", "100")
        .with_header("x-rate-limit-remaining", "99")
        .with_header("x-rate-limit-reset", &reset)
}

impl FakeX {
    /// A fake X where `access_token` is valid and `refresh_token` can be spent once.
    pub fn start(access_token: &str, refresh_token: &str) -> FakeX {
        let state = Arc::new(Mutex::new(XState::default()));
        {
            let mut s = state.lock().unwrap();
            s.access_tokens.insert(access_token.into());
            s.refresh_tokens.insert(refresh_token.into());
            s.users.insert(ACCOUNT_ID.into(), ACCOUNT_NAME.into());
        }
        let shared = state.clone();
        let server = FakeServer::start(Arc::new(move |r: &Request| handle(&shared, r)));
        FakeX { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A customer's post mentioning the account; returns its id.
    pub fn mention(&self, author_id: &str, username: &str, text: &str) -> String {
        let mut s = self.state.lock().unwrap();
        s.users.insert(author_id.into(), username.into());
        let id = s.next_id();
        s.tweets.push(FakeTweet {
            id: id.clone(),
            author_id: author_id.into(),
            text: text.into(),
            in_reply_to: None,
            created_at: Utc::now(),
            reply_prefix: String::new(),
        });
        id
    }

    pub fn fault(&self, f: Fault) {
        self.state.lock().unwrap().faults.push_back(f);
    }

    pub fn replies_to(&self, post: &str) -> Vec<FakeTweet> {
        self.state.lock().unwrap().replies_to(post)
    }

    /// How many times `POST /2/tweets` was called.
    pub fn post_calls(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(m, p)| m == "POST" && p == "/2/tweets")
            .count()
    }
}

fn tweet_json(t: &FakeTweet, fields: &str) -> Value {
    let (text, entities) = as_x_returns(&format!("{}{}", t.reply_prefix, t.text));
    let mut v = json!({"id": t.id, "text": text});
    let fields: HashSet<&str> = fields.split(',').collect();
    if fields.contains("author_id") {
        v["author_id"] = json!(t.author_id);
    }
    if fields.contains("created_at") {
        v["created_at"] = json!(t.created_at.format("%Y-%m-%dT%H:%M:%S.000Z").to_string());
    }
    if fields.contains("entities") && entities["urls"].as_array().is_some_and(|u| !u.is_empty()) {
        v["entities"] = entities;
    }
    if fields.contains("referenced_tweets") {
        if let Some(to) = &t.in_reply_to {
            v["referenced_tweets"] = json!([{"type": "replied_to", "id": to}]);
        }
    }
    v
}

/// A page of `items` (newest first) after `pagination_token`, at most `max_results`.
fn page(r: &Request, items: Vec<&FakeTweet>, users: &HashMap<String, String>) -> Reply {
    let max: usize = r
        .param("max_results")
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    if !(5..=100).contains(&max) {
        return problem(
            400,
            "Invalid Request",
            "The `max_results` query parameter value is not between 5 and 100",
        );
    }
    let offset: usize = r
        .param("pagination_token")
        .and_then(|t| t.strip_prefix('p'))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let fields = r.param("tweet.fields").unwrap_or("");
    let chunk: Vec<&FakeTweet> = items.iter().skip(offset).take(max).copied().collect();
    let mut meta = json!({"result_count": chunk.len()});
    if let (Some(first), Some(last)) = (chunk.first(), chunk.last()) {
        meta["newest_id"] = json!(first.id);
        meta["oldest_id"] = json!(last.id);
    }
    if offset + chunk.len() < items.len() {
        meta["next_token"] = json!(format!("p{}", offset + chunk.len()));
    }
    let mut body = json!({"meta": meta});
    if !chunk.is_empty() {
        body["data"] = Value::Array(chunk.iter().map(|t| tweet_json(t, fields)).collect());
        if r.param("expansions") == Some("author_id") {
            let mut seen = HashSet::new();
            let includes: Vec<Value> = chunk
                .iter()
                .filter(|t| seen.insert(t.author_id.clone()))
                .map(|t| {
                    json!({"id": t.author_id, "name": "A customer",
                    "username": users.get(&t.author_id).cloned().unwrap_or_default()})
                })
                .collect();
            body["includes"] = json!({"users": includes});
        }
    }
    Reply::json(200, body)
}

fn handle(state: &Arc<Mutex<XState>>, r: &Request) -> Reply {
    let mut s = state.lock().unwrap();
    s.requests.push((r.method.clone(), r.path.clone()));
    if r.method == "POST" && r.path == "/2/oauth2/token" {
        return token(&mut s, r);
    }
    let expire = r.method == "POST"
        && r.path == "/2/tweets"
        && matches!(s.faults.front(), Some(Fault::ExpireToken));
    if expire {
        s.faults.pop_front();
        s.access_tokens.clear();
    }
    let bearer = r
        .header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.access_tokens.contains(bearer) {
        return limits(problem(401, "Unauthorized", "Unauthorized"));
    }
    let reply = match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/2/users/me") => Reply::json(
            200,
            json!({"data": {"id": ACCOUNT_ID, "name": "Example Care", "username": ACCOUNT_NAME}}),
        ),
        ("POST", "/2/tweets") => return create(&mut s, r),
        ("GET", p) if p.starts_with("/2/users/") && p.ends_with("/tweets") => {
            let id = &p["/2/users/".len()..p.len() - "/tweets".len()];
            let start = r
                .param("start_time")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.to_utc());
            let items: Vec<&FakeTweet> = s
                .tweets
                .iter()
                .rev()
                .filter(|t| t.author_id == id && start.is_none_or(|st| t.created_at >= st))
                .collect();
            page(r, items, &s.users)
        }
        ("GET", p) if p.starts_with("/2/users/") && p.ends_with("/mentions") => {
            let since = r.param("since_id").unwrap_or("").to_string();
            let handle = format!("@{}", ACCOUNT_NAME.to_lowercase());
            let items: Vec<&FakeTweet> = s
                .tweets
                .iter()
                .rev()
                .filter(|t| t.author_id != ACCOUNT_ID)
                .filter(|t| t.text.to_lowercase().contains(&handle))
                .filter(|t| since.is_empty() || (t.id.len(), &t.id) > (since.len(), &since))
                .collect();
            page(r, items, &s.users)
        }
        _ => problem(
            404,
            "Not Found Error",
            "The requested resource was not found",
        ),
    };
    limits(reply)
}

fn create(s: &mut XState, r: &Request) -> Reply {
    let Some(body) = r.json() else {
        return problem(400, "Invalid Request", "The request body is not JSON");
    };
    let fault = s.faults.pop_front();
    match fault {
        Some(Fault::RateLimited(secs)) => {
            let reset = (Utc::now().timestamp() + secs).to_string();
            return problem(429, "Too Many Requests", "Too Many Requests")
                .with_header("x-rate-limit-limit", "100")
                .with_header("x-rate-limit-remaining", "0")
                .with_header("x-rate-limit-reset", &reset);
        }
        Some(Fault::Unavailable) => {
            return limits(problem(503, "Service Unavailable", "Service Unavailable"))
        }
        _ => {}
    }
    let text = body["text"].as_str().unwrap_or("").to_string();
    if text.is_empty() || text.chars().count() > 280 {
        return limits(problem(400, "Invalid Request", "Tweet text is invalid"));
    }
    if s.tweets
        .iter()
        .any(|t| t.author_id == ACCOUNT_ID && t.text == text)
    {
        return limits(problem(
            403,
            "Forbidden",
            "You are not allowed to create a Tweet with duplicate content.",
        ));
    }
    let in_reply_to = body["reply"]["in_reply_to_tweet_id"]
        .as_str()
        .map(str::to_string);
    if let Some(to) = &in_reply_to {
        if !s.tweets.iter().any(|t| &t.id == to) {
            return limits(problem(
                400,
                "Invalid Request",
                "Your Tweet cannot be sent because the Tweet you are replying to does not exist.",
            ));
        }
    }
    // X writes the answered author's handle in front of a reply, unless the text starts
    // with it already.
    let reply_prefix = in_reply_to
        .as_ref()
        .and_then(|to| s.tweets.iter().find(|t| &t.id == to))
        .and_then(|t| s.users.get(&t.author_id))
        .map(|name| format!("@{name} "))
        .filter(|p| !text.starts_with(p.as_str()))
        .unwrap_or_default();
    let id = s.next_id();
    s.tweets.push(FakeTweet {
        id: id.clone(),
        author_id: ACCOUNT_ID.into(),
        text: text.clone(),
        in_reply_to,
        created_at: Utc::now(),
        reply_prefix: reply_prefix.clone(),
    });
    let (shown, _) = as_x_returns(&format!("{reply_prefix}{text}"));
    let created = Reply::json(201, json!({"data": {"id": id, "text": shown}}));
    match fault {
        Some(Fault::HangUpAfterCreate) => return Reply::HangUp,
        Some(Fault::AfterCreate(then)) => then(),
        Some(Fault::LastInWindow) => {
            let reset = (Utc::now().timestamp() + 60).to_string();
            return created
                .with_header("x-rate-limit-limit", "100")
                .with_header("x-rate-limit-remaining", "0")
                .with_header("x-rate-limit-reset", &reset);
        }
        _ => {}
    }
    limits(created)
}

fn token(s: &mut XState, r: &Request) -> Reply {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if r.header("authorization") != Some(expected.as_str()) {
        return Reply::json(
            401,
            json!({"error": "unauthorized_client", "error_description": "Missing valid authorization header"}),
        );
    }
    let form = r.form();
    let given = form.get("refresh_token").cloned().unwrap_or_default();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || !s.refresh_tokens.remove(&given)
    {
        return Reply::json(
            400,
            json!({"error": "invalid_request", "error_description": "Value passed for the token was invalid."}),
        );
    }
    s.refreshes += 1;
    let n = s.refreshes;
    let (access, refresh) = (format!("access-{n}-fresh"), format!("refresh-{n}-fresh"));
    s.access_tokens.insert(access.clone());
    s.refresh_tokens.insert(refresh.clone());
    Reply::json(
        200,
        json!({"token_type": "bearer", "expires_in": 7200, "access_token": access,
            "scope": "tweet.read tweet.write users.read offline.access", "refresh_token": refresh}),
    )
}
