//! A fake Mastodon instance that answers as Mastodon's REST API does (docs.joinmastodon.org):
//! bearer token, `POST /api/v1/statuses` honouring `Idempotency-Key`, 422/404 `{"error"}`
//! bodies, 429 with `X-RateLimit-Reset` (ISO 8601), the account's statuses newest first
//! with `max_id`, and mention notifications paged with `min_id` and a `Link` header.

use super::fake_http::{FakeServer, Reply, Request};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

pub const ACCOUNT_ID: &str = "1";
pub const TOKEN: &str = "mastodon-token-5f2a";

#[derive(Debug, Clone)]
pub struct FakeStatus {
    pub id: String,
    pub account_id: String,
    pub acct: String,
    /// HTML, as Mastodon stores it.
    pub content: String,
    pub in_reply_to_id: Option<String>,
    pub visibility: String,
    pub created_at: DateTime<Utc>,
}

pub enum Fault {
    RateLimited(i64),
    Unavailable,
    HangUpAfterCreate,
}

/// A request as the fake saw it: method, path and query.
pub type Seen = (String, String, Vec<(String, String)>);

#[derive(Default)]
pub struct MastodonState {
    pub statuses: Vec<FakeStatus>,
    /// (notification id, status id) of mentions of the account.
    pub notifications: Vec<(String, String)>,
    pub idempotency: HashMap<String, String>,
    pub faults: VecDeque<Fault>,
    /// Every request: method, path and query.
    pub requests: Vec<Seen>,
    next: u64,
}

impl MastodonState {
    fn next_id(&mut self) -> String {
        self.next += 1;
        format!("1100000000000{:05}", self.next)
    }

    pub fn replies_to(&self, id: &str) -> Vec<FakeStatus> {
        self.statuses
            .iter()
            .filter(|s| s.account_id == ACCOUNT_ID && s.in_reply_to_id.as_deref() == Some(id))
            .cloned()
            .collect()
    }
}

pub struct FakeMastodon {
    pub server: FakeServer,
    pub state: Arc<Mutex<MastodonState>>,
}

fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, json!({"error": message}))
}

impl FakeMastodon {
    pub fn start() -> FakeMastodon {
        let state = Arc::new(Mutex::new(MastodonState::default()));
        let shared = state.clone();
        let server = FakeServer::start(Arc::new(move |r: &Request| handle(&shared, r)));
        FakeMastodon { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// A status by `acct` mentioning the account; returns the status id.
    pub fn mention(&self, account_id: &str, acct: &str, html: &str, visibility: &str) -> String {
        let mut s = self.state.lock().unwrap();
        let id = s.next_id();
        s.statuses.push(FakeStatus {
            id: id.clone(),
            account_id: account_id.into(),
            acct: acct.into(),
            content: html.into(),
            in_reply_to_id: None,
            visibility: visibility.into(),
            created_at: Utc::now(),
        });
        let n = s.next_id();
        s.notifications.push((n, id.clone()));
        id
    }

    pub fn fault(&self, f: Fault) {
        self.state.lock().unwrap().faults.push_back(f);
    }

    pub fn replies_to(&self, id: &str) -> Vec<FakeStatus> {
        self.state.lock().unwrap().replies_to(id)
    }

    /// Mastodon keeps idempotency keys for about an hour: this is that hour passing.
    pub fn forget_idempotency_keys(&self) {
        self.state.lock().unwrap().idempotency.clear();
    }

    /// The status is deleted by its author.
    pub fn delete(&self, id: &str) {
        self.state.lock().unwrap().statuses.retain(|s| s.id != id);
    }
}

fn account_json(id: &str, acct: &str) -> Value {
    let username = acct.split('@').next().unwrap_or(acct);
    json!({"id": id, "username": username, "acct": acct,
           "url": format!("https://m.example/@{acct}")})
}

fn status_json(s: &FakeStatus) -> Value {
    json!({
        "id": s.id,
        "created_at": s.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "in_reply_to_id": s.in_reply_to_id,
        "visibility": s.visibility,
        "content": s.content,
        "url": format!("https://m.example/@{}/{}", s.acct, s.id),
        "account": account_json(&s.account_id, &s.acct),
    })
}

fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

fn handle(state: &Arc<Mutex<MastodonState>>, r: &Request) -> Reply {
    let mut s = state.lock().unwrap();
    s.requests
        .push((r.method.clone(), r.path.clone(), r.query.clone()));
    if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
        return error(401, "The access token is invalid");
    }
    match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/v1/accounts/verify_credentials") => {
            Reply::json(200, account_json(ACCOUNT_ID, "examplecare"))
        }
        ("POST", "/api/v1/statuses") => create(&mut s, r),
        ("GET", p) if p.starts_with("/api/v1/accounts/") && p.ends_with("/statuses") => {
            let id = &p["/api/v1/accounts/".len()..p.len() - "/statuses".len()];
            let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
            let max_id = r.param("max_id").map(str::to_string);
            let list: Vec<Value> = s
                .statuses
                .iter()
                .rev()
                .filter(|st| st.account_id == id)
                .filter(|st| max_id.as_ref().is_none_or(|m| newer(m, &st.id)))
                .take(limit)
                .map(status_json)
                .collect();
            Reply::json(200, Value::Array(list))
        }
        ("GET", "/api/v1/notifications") => {
            if r.param("types[]") != Some("mention") {
                return error(422, "this fake serves mention notifications only");
            }
            let limit: usize = r
                .param("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(40)
                .min(80);
            let min_id = r.param("min_id").map(str::to_string);
            let mut newer_ones: Vec<&(String, String)> = s
                .notifications
                .iter()
                .filter(|(n, _)| min_id.as_ref().is_none_or(|m| newer(n, m)))
                .collect();
            // With min_id: the page just after it; without: the newest page. Newest first.
            let page: Vec<&(String, String)> = if min_id.is_some() {
                newer_ones.truncate(limit);
                newer_ones.into_iter().rev().collect()
            } else {
                newer_ones.into_iter().rev().take(limit).collect()
            };
            let list: Vec<Value> = page
                .iter()
                .map(|(n, sid)| {
                    let st = s.statuses.iter().find(|st| &st.id == sid).unwrap();
                    json!({"id": n, "type": "mention",
                           "created_at": st.created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                           "account": account_json(&st.account_id, &st.acct),
                           "status": status_json(st)})
                })
                .collect();
            let mut reply = Reply::json(200, Value::Array(list));
            if let (Some(first), Some(last)) = (page.first(), page.last()) {
                let base = "http://fake/api/v1/notifications?types[]=mention";
                reply = reply.with_header(
                    "link",
                    &format!(
                        "<{base}&max_id={}>; rel=\"next\", <{base}&min_id={}>; rel=\"prev\"",
                        last.0, first.0
                    ),
                );
            }
            reply
        }
        _ => error(404, "Record not found"),
    }
}

fn create(s: &mut MastodonState, r: &Request) -> Reply {
    let body = r.json().unwrap_or_else(|| {
        let f = r.form();
        json!({"status": f.get("status"), "in_reply_to_id": f.get("in_reply_to_id"),
               "visibility": f.get("visibility")})
    });
    let key = r.header("idempotency-key").map(str::to_string);
    if let Some(k) = &key {
        if let Some(id) = s.idempotency.get(k).cloned() {
            let st = s.statuses.iter().find(|st| st.id == id).unwrap();
            return Reply::json(200, status_json(st));
        }
    }
    match s.faults.pop_front() {
        Some(Fault::RateLimited(secs)) => {
            let reset = (Utc::now() + chrono::Duration::seconds(secs))
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string();
            return error(429, "Too many requests")
                .with_header("X-RateLimit-Limit", "300")
                .with_header("X-RateLimit-Remaining", "0")
                .with_header("X-RateLimit-Reset", &reset);
        }
        Some(Fault::Unavailable) => return error(503, "Service Unavailable"),
        Some(Fault::HangUpAfterCreate) => {
            s.faults.push_front(Fault::HangUpAfterCreate);
        }
        None => {}
    }
    let text = body["status"].as_str().unwrap_or("").to_string();
    if text.is_empty() {
        return error(422, "Validation failed: Text can't be blank");
    }
    if text.chars().count() > 500 {
        return error(
            422,
            "Validation failed: Text character limit of 500 exceeded",
        );
    }
    let reply_to = body["in_reply_to_id"].as_str().map(str::to_string);
    if let Some(to) = &reply_to {
        if !s.statuses.iter().any(|st| &st.id == to) {
            return error(404, "Record not found");
        }
    }
    let id = s.next_id();
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let status = FakeStatus {
        id: id.clone(),
        account_id: ACCOUNT_ID.into(),
        acct: "examplecare".into(),
        content: format!("<p>{escaped}</p>"),
        in_reply_to_id: reply_to,
        visibility: body["visibility"].as_str().unwrap_or("public").to_string(),
        created_at: Utc::now(),
    };
    let json = status_json(&status);
    s.statuses.push(status);
    if let Some(k) = key {
        s.idempotency.insert(k, id);
    }
    if matches!(s.faults.front(), Some(Fault::HangUpAfterCreate)) {
        s.faults.pop_front();
        return Reply::HangUp;
    }
    Reply::json(200, json)
}
