//! The X channel: the X API v2 with an OAuth 2.0 user-context token.
//!
//! - Posting: `POST /2/tweets` with `{"text", "reply": {"in_reply_to_tweet_id"}}`
//!   (201 `{"data": {"id", "text"}}`).
//! - Idempotency: X has no idempotency key. On a retry (an earlier attempt may have created
//!   the post before it crashed or lost its connection), and on X's 403 "duplicate content",
//!   the channel first reads the account's posts since the job was enqueued
//!   (`GET /2/users/:id/tweets`) for a reply to the same post with the same text, compared
//!   after undoing X's HTML escaping and expanding its t.co links, and posts only if there
//!   is none. A duplicate-content refusal with no such post is a refusal.
//! - Tokens: on 401 the access token is refreshed (`POST /2/oauth2/token`,
//!   `grant_type=refresh_token`, the client's id and secret by HTTP Basic) under a lock in
//!   the database, and the request tried once more. X's refresh tokens rotate and work
//!   once, so the new pair is stored in the database, wins over the settings from then on,
//!   and an instance that finds the pair refreshed by another uses it instead of spending
//!   the old refresh token again.
//! - Rate limits: a 429 waits until `x-rate-limit-reset`; 5xx answers and timeouts are
//!   retried by the job queue with backoff.
//! - Mentions: `GET /2/users/:id/mentions` since the last id read, following
//!   `pagination_token`, with the authors' usernames (`expansions=author_id`).
//! - Webhooks (Account Activity API): the CRC answer and the signature check are here;
//!   `http::channels` serves them.

use super::http::{self, Answer};
use super::{Batch, Channel, ChannelError, Ingest, Mention, Network, OutgoingReply, PostReceipt};
use crate::app::clock::Clock;
use crate::config::{SecretString, Settings, XSettings};
use crate::db::Db;
use crate::error::{Error, Result};
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Where the refreshed tokens are kept in `channel_state`.
const TOKENS_KEY: &str = "tokens";
/// Requests to X end within this. A post attempt makes at most about eight requests (the
/// account's id once, two pages of posts, the post, each perhaps again after a refresh),
/// which stays within the job's two-minute lease.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A token refresh ends sooner: it holds the database's lock (SQLite's write lock, whose
/// other writers wait 15 s at most).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(8);
/// Pages of posts read when looking for a reply already made (100 posts a page).
const RECONCILE_PAGES: usize = 2;
/// Pages of mentions read in one poll (100 a page).
const MENTION_PAGES: usize = 20;

pub struct XChannel {
    agent: ureq::Agent,
    settings: XSettings,
    db: Db,
    /// The tokens in use: the stored pair once there is one, else the settings'.
    tokens: Mutex<Option<Tokens>>,
    user_id: OnceLock<String>,
    /// Per endpoint, the rate limit X last reported: requests left in the window, and when
    /// it resets. An endpoint with none left is not called before its reset.
    limits: Mutex<std::collections::HashMap<String, (u64, DateTime<Utc>)>>,
    clock: Clock,
}

#[derive(Clone)]
struct Tokens {
    access: SecretString,
    refresh: Option<SecretString>,
}

impl Tokens {
    fn to_stored(&self) -> String {
        serde_json::json!({
            "access_token": self.access.expose_secret(),
            "refresh_token": self.refresh.as_ref().map(|r| r.expose_secret().to_string()),
        })
        .to_string()
    }

    fn from_stored(text: &str) -> Option<Tokens> {
        #[derive(Deserialize)]
        struct Stored {
            access_token: String,
            refresh_token: Option<String>,
        }
        let s: Stored = serde_json::from_str(text).ok()?;
        Some(Tokens {
            access: s.access_token.into(),
            refresh: s.refresh_token.map(SecretString::from),
        })
    }
}

/// X's error body (RFC 7807 problem details, with X's `errors` list).
#[derive(Debug, Default, Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    errors: Option<Vec<ProblemItem>>,
    /// OAuth's error form (`/2/oauth2/token`).
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ProblemItem {
    message: Option<String>,
    detail: Option<String>,
    title: Option<String>,
}

/// A person's reading of an X error answer: status, title, detail, the errors listed.
fn describe(what: &str, a: &Answer) -> String {
    let p: Problem = serde_json::from_str(&a.body).unwrap_or_default();
    let mut parts: Vec<String> = Vec::new();
    for s in [&p.title, &p.detail, &p.error, &p.error_description]
        .into_iter()
        .flatten()
    {
        if !parts.contains(s) {
            parts.push(s.clone());
        }
    }
    for e in p.errors.iter().flatten() {
        if let Some(m) = e
            .message
            .as_ref()
            .or(e.detail.as_ref())
            .or(e.title.as_ref())
        {
            if !parts.contains(m) {
                parts.push(m.clone());
            }
        }
    }
    if parts.is_empty() {
        parts.push(http::excerpt(&a.body));
    }
    let kind = p
        .kind
        .filter(|k| k != "about:blank")
        .map(|k| format!(" ({k})"))
        .unwrap_or_default();
    format!(
        "{what}: X answered {}: {}{kind}",
        a.status,
        parts.join("; ")
    )
}

fn is_duplicate(a: &Answer) -> bool {
    a.status == 403 && a.body.to_lowercase().contains("duplicate content")
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    data: Option<T>,
    includes: Option<Includes>,
    meta: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
struct Includes {
    #[serde(default)]
    users: Vec<User>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    username: String,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    newest_id: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Tweet {
    id: String,
    text: String,
    author_id: Option<String>,
    created_at: Option<String>,
    #[serde(default)]
    referenced_tweets: Vec<Reference>,
    entities: Option<Entities>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct Entities {
    #[serde(default)]
    urls: Vec<UrlEntity>,
}

#[derive(Debug, Deserialize)]
struct UrlEntity {
    url: String,
    expanded_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
}

/// A post's text as its author wrote it: X's t.co links expanded and its HTML escaping
/// (`&amp;`, `&lt;`, `&gt;`) undone.
pub fn as_written(text: &str, urls: &[(String, String)]) -> String {
    let mut t = text.to_string();
    for (short, expanded) in urls {
        t = t.replace(short.as_str(), expanded);
    }
    t.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn tweet_text(t: &Tweet) -> String {
    let urls: Vec<(String, String)> = t
        .entities
        .iter()
        .flat_map(|e| &e.urls)
        .filter_map(|u| Some((u.url.clone(), u.expanded_url.clone()?)))
        .collect();
    as_written(&t.text, &urls)
}

/// A reply's text without the `@handle` mentions that lead it: X puts the replied-to
/// author's handle in front of a reply's text itself (outside `display_text_range`).
fn without_leading_mentions(text: &str) -> &str {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('@') {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end == 0 {
            break;
        }
        rest = after[end..].trim_start();
    }
    rest
}

/// Whether X's copy of a post is the text we sent (X may trim, normalises to NFC and puts
/// the replied-to handle in front).
fn same_text(theirs: &str, ours: &str) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let norm = |s: &str| without_leading_mentions(s).trim().nfc().collect::<String>();
    norm(theirs) == norm(ours)
}

/// Snowflake ids compare as numbers: longer is newer, then by digits.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

impl XChannel {
    /// The X channel, if an access token is configured.
    ///
    /// Errors: none today; the signature leaves room for a client that cannot be built.
    pub fn from_settings(settings: &Settings, db: &Db, clock: &Clock) -> Result<Option<XChannel>> {
        if settings.x.access_token.is_none() {
            return Ok(None);
        }
        let user_id = OnceLock::new();
        if let Some(id) = &settings.x.user_id {
            let _ = user_id.set(id.clone());
        }
        Ok(Some(XChannel {
            agent: http::agent(TIMEOUT),
            settings: settings.x.clone(),
            db: db.clone(),
            tokens: Mutex::new(None),
            user_id,
            limits: Mutex::new(std::collections::HashMap::new()),
            clock: clock.clone(),
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.api_base)
    }

    fn current_tokens(&self) -> std::result::Result<Tokens, ChannelError> {
        let mut held = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = held.as_ref() {
            return Ok(t.clone());
        }
        let stored = self
            .db
            .conn()
            .and_then(|mut c| crate::db::channels::get(&mut c, Network::X.as_str(), TOKENS_KEY))
            .map_err(|e| ChannelError::Temporary(format!("reading the X tokens: {e}")))?;
        let tokens = match stored.as_deref().and_then(Tokens::from_stored) {
            Some(t) => t,
            None => Tokens {
                access: self.settings.access_token.clone().ok_or_else(|| {
                    ChannelError::Refused("no X access token is configured".into())
                })?,
                refresh: self.settings.refresh_token.clone(),
            },
        };
        *held = Some(tokens.clone());
        Ok(tokens)
    }

    /// New tokens after `rejected` got a 401: the pair another instance stored meanwhile,
    /// or a refresh made under the database lock and stored before the lock is let go.
    fn refresh(&self, rejected: &Tokens) -> std::result::Result<Tokens, ChannelError> {
        let unavailable =
            |e: Error| ChannelError::Temporary(format!("refreshing the X token: {e}"));
        let mut conn = self.db.conn().map_err(unavailable)?;
        let now = self.clock.now().naive_utc();
        let refreshed = crate::db::channels::with_lock(
            &mut conn,
            Network::X.as_str(),
            TOKENS_KEY,
            now,
            |conn| {
                let stored = crate::db::channels::get(conn, Network::X.as_str(), TOKENS_KEY)?
                    .as_deref()
                    .and_then(Tokens::from_stored);
                if let Some(s) = &stored {
                    if s.access.expose_secret() != rejected.access.expose_secret() {
                        return Ok(Ok(s.clone()));
                    }
                }
                let Some(refresh) = stored
                    .as_ref()
                    .and_then(|s| s.refresh.clone())
                    .or_else(|| rejected.refresh.clone())
                else {
                    return Ok(Err(ChannelError::Refused(
                        "X refused the access token (401) and no refresh token is configured; \
                         connect the account again (docs/channels.md)"
                            .into(),
                    )));
                };
                let fresh = match self.token_request(&refresh) {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(e)),
                };
                crate::db::channels::put(
                    conn,
                    Network::X.as_str(),
                    TOKENS_KEY,
                    &fresh.to_stored(),
                    now,
                )?;
                tracing::info!("the X access token was refreshed and stored");
                Ok(Ok(fresh))
            },
        )
        .map_err(unavailable)??;
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) = Some(refreshed.clone());
        Ok(refreshed)
    }

    /// `POST /2/oauth2/token` with `grant_type=refresh_token`.
    fn token_request(&self, refresh: &SecretString) -> std::result::Result<Tokens, ChannelError> {
        const WHAT: &str = "POST /2/oauth2/token";
        let client_id = self.settings.client_id.clone().unwrap_or_default();
        let mut request = self
            .agent
            .post(self.url("/2/oauth2/token"))
            .config()
            .timeout_global(Some(REFRESH_TIMEOUT))
            .build();
        if let Some(secret) = &self.settings.client_secret {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{client_id}:{}", secret.expose_secret()));
            request = request.header("Authorization", format!("Basic {basic}"));
        }
        let a = http::read(
            request.send_form([
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose_secret()),
                ("client_id", client_id.as_str()),
            ]),
            WHAT,
        )?;
        match a.status {
            200 => {
                #[derive(Deserialize)]
                struct Answer {
                    access_token: String,
                    refresh_token: Option<String>,
                }
                // Never quoted in an error: the body holds the new tokens.
                let t: Answer = serde_json::from_str(&a.body).map_err(|e| {
                    ChannelError::Temporary(format!("{WHAT}: an answer that does not read ({e})"))
                })?;
                Ok(Tokens {
                    access: t.access_token.into(),
                    // X sends a new refresh token with each refresh; keep the old one if not.
                    refresh: t
                        .refresh_token
                        .map(SecretString::from)
                        .or(Some(refresh.clone())),
                })
            }
            429 => Err(self.rate_limited(WHAT, &a)),
            500..=599 => Err(ChannelError::Temporary(describe(WHAT, &a))),
            _ => Err(ChannelError::Refused(format!(
                "{}; connect the account again (docs/channels.md)",
                describe(WHAT, &a)
            ))),
        }
    }

    fn rate_limited(&self, what: &str, a: &Answer) -> ChannelError {
        let now = self.clock.now();
        // The daily posting cap's own headers, when it is that cap that ran out.
        let daily = ["x-user-limit-24hour", "x-app-limit-24hour"]
            .into_iter()
            .find(|h| a.header(&format!("{h}-remaining")).map(str::trim) == Some("0"))
            .and_then(|h| a.header(&format!("{h}-reset")))
            .and_then(http::parse_reset);
        let until = daily
            .or_else(|| a.rate_limit_reset(now))
            .unwrap_or(now + chrono::Duration::minutes(1))
            .min(now + chrono::Duration::hours(25));
        ChannelError::RateLimited {
            message: describe(what, a),
            until,
        }
    }

    /// Sends a request with the bearer token; on 401, refreshes once and sends it again.
    fn send(
        &self,
        what: &str,
        request: impl Fn(&str) -> std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> std::result::Result<Answer, ChannelError> {
        self.wait_for_window(what)?;
        let tokens = self.current_tokens()?;
        let a = http::read(
            request(&format!("Bearer {}", tokens.access.expose_secret())),
            what,
        )?;
        self.note_limits(what, &a);
        if a.status != 401 {
            return Ok(a);
        }
        tracing::info!("{}", describe(what, &a));
        let fresh = self.refresh(&tokens)?;
        let a = http::read(
            request(&format!("Bearer {}", fresh.access.expose_secret())),
            what,
        )?;
        self.note_limits(what, &a);
        if a.status == 401 {
            return Err(ChannelError::Refused(format!(
                "{} (after refreshing the token); connect the account again",
                describe(what, &a)
            )));
        }
        Ok(a)
    }

    /// Keeps what `x-rate-limit-remaining` and `x-rate-limit-reset` say of `what`.
    fn note_limits(&self, what: &str, a: &Answer) {
        let remaining = a
            .header("x-rate-limit-remaining")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let reset = a.header("x-rate-limit-reset").and_then(http::parse_reset);
        if let (Some(remaining), Some(reset)) = (remaining, reset) {
            tracing::debug!(
                endpoint = what,
                remaining,
                limit = a.header("x-rate-limit-limit").unwrap_or("?"),
                %reset,
                "X rate limit"
            );
            self.limits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(what.to_string(), (remaining, reset));
        }
    }

    /// Refuses to call `what` while X said its window has no request left.
    fn wait_for_window(&self, what: &str) -> std::result::Result<(), ChannelError> {
        let limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        match limits.get(what) {
            Some(&(0, until)) if until > self.clock.now() => Err(ChannelError::RateLimited {
                message: format!("{what}: no request left in X's rate-limit window"),
                until,
            }),
            _ => Ok(()),
        }
    }

    /// The account's user id: the setting, else `GET /2/users/me`.
    fn user_id(&self) -> std::result::Result<String, ChannelError> {
        if let Some(id) = self.user_id.get() {
            return Ok(id.clone());
        }
        const WHAT: &str = "GET /2/users/me";
        let a = self.send(WHAT, |auth| {
            self.agent
                .get(self.url("/2/users/me"))
                .header("Authorization", auth)
                .call()
        })?;
        match a.status {
            200 => {
                let me: Envelope<User> = a.json(WHAT)?;
                let id = me.data.map(|u| u.id).ok_or_else(|| {
                    ChannelError::Temporary(format!("{WHAT}: no user in the answer"))
                })?;
                let _ = self.user_id.set(id.clone());
                Ok(id)
            }
            429 => Err(self.rate_limited(WHAT, &a)),
            500..=599 => Err(ChannelError::Temporary(describe(WHAT, &a))),
            _ => Err(ChannelError::Refused(describe(WHAT, &a))),
        }
    }

    /// The reply this account already made to `reply.in_reply_to` with `reply.text`, among
    /// its posts since the job was enqueued.
    fn find_reply(
        &self,
        reply: &OutgoingReply,
    ) -> std::result::Result<Option<PostReceipt>, ChannelError> {
        const WHAT: &str = "GET /2/users/:id/tweets";
        let me = self.user_id()?;
        let start = (reply.since - chrono::Duration::minutes(5))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let mut token: Option<String> = None;
        for _ in 0..RECONCILE_PAGES {
            let a = self.send(WHAT, |auth| {
                let mut r = self
                    .agent
                    .get(self.url(&format!("/2/users/{me}/tweets")))
                    .header("Authorization", auth)
                    .query("max_results", "100")
                    .query("start_time", &start)
                    .query("tweet.fields", "referenced_tweets,entities,created_at");
                if let Some(t) = &token {
                    r = r.query("pagination_token", t);
                }
                r.call()
            })?;
            match a.status {
                200 => {}
                429 => return Err(self.rate_limited(WHAT, &a)),
                500..=599 => return Err(ChannelError::Temporary(describe(WHAT, &a))),
                _ => return Err(ChannelError::Refused(describe(WHAT, &a))),
            }
            let page: Envelope<Vec<Tweet>> = a.json(WHAT)?;
            for t in page.data.iter().flatten() {
                let answers = t
                    .referenced_tweets
                    .iter()
                    .any(|r| r.kind == "replied_to" && r.id == reply.in_reply_to);
                if answers && same_text(&tweet_text(t), &reply.text) {
                    tracing::info!(post_id = %t.id, draft_id = %reply.draft_id, "found the reply already posted on X");
                    return Ok(Some(self.receipt(&t.id)));
                }
            }
            match page.meta.and_then(|m| m.next_token) {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(None)
    }

    fn receipt(&self, id: &str) -> PostReceipt {
        PostReceipt {
            post_id: id.to_string(),
            url: Some(format!("https://x.com/i/web/status/{id}")),
        }
    }
}

impl Channel for XChannel {
    fn network(&self) -> Network {
        Network::X
    }

    fn post(&self, reply: &OutgoingReply) -> std::result::Result<PostReceipt, ChannelError> {
        const WHAT: &str = "POST /2/tweets";
        if reply.is_retry {
            if let Some(done) = self.find_reply(reply)? {
                return Ok(done);
            }
        }
        let body = serde_json::json!({
            "text": reply.text,
            "reply": {"in_reply_to_tweet_id": reply.in_reply_to},
        });
        let a = self.send(WHAT, |auth| {
            self.agent
                .post(self.url("/2/tweets"))
                .header("Authorization", auth)
                .send_json(&body)
        })?;
        match a.status {
            200 | 201 => {
                let created: Envelope<Created> = a.json(WHAT)?;
                let id = created.data.map(|d| d.id).ok_or_else(|| {
                    ChannelError::Temporary(format!("{WHAT}: no post id in the answer"))
                })?;
                Ok(self.receipt(&id))
            }
            429 => Err(self.rate_limited(WHAT, &a)),
            // Perhaps our own earlier attempt: look before calling it a refusal.
            403 if is_duplicate(&a) => match self.find_reply(reply)? {
                Some(done) => Ok(done),
                None => Err(ChannelError::Refused(describe(WHAT, &a))),
            },
            500..=599 => Err(ChannelError::Temporary(describe(WHAT, &a))),
            _ => Err(ChannelError::Refused(describe(WHAT, &a))),
        }
    }
}

impl Ingest for XChannel {
    fn network(&self) -> Network {
        Network::X
    }

    fn poll_every(&self) -> Option<Duration> {
        (self.settings.poll_seconds > 0).then(|| Duration::from_secs(self.settings.poll_seconds))
    }

    fn mentions_since(&self, cursor: Option<&str>) -> std::result::Result<Batch, ChannelError> {
        const WHAT: &str = "GET /2/users/:id/mentions";
        let me = self.user_id()?;
        let mut batch = Batch::default();
        let mut token: Option<String> = None;
        // The first poll of an account reads its latest page only, not years of mentions.
        let pages = if cursor.is_some() { MENTION_PAGES } else { 1 };
        for _ in 0..pages {
            let sent = self.send(WHAT, |auth| {
                let mut r = self
                    .agent
                    .get(self.url(&format!("/2/users/{me}/mentions")))
                    .header("Authorization", auth)
                    .query("max_results", "100")
                    .query("expansions", "author_id")
                    .query("user.fields", "username")
                    .query("tweet.fields", "created_at,author_id,entities");
                if let Some(c) = cursor {
                    r = r.query("since_id", c);
                }
                if let Some(t) = &token {
                    r = r.query("pagination_token", t);
                }
                r.call()
            });
            let (a, failure) = match sent {
                Ok(a) => {
                    let failure = match a.status {
                        200 => None,
                        429 => Some(self.rate_limited(WHAT, &a)),
                        500..=599 => Some(ChannelError::Temporary(describe(WHAT, &a))),
                        _ => Some(ChannelError::Refused(describe(WHAT, &a))),
                    };
                    (Some(a), failure)
                }
                Err(e) => (None, Some(e)),
            };
            if let Some(e) = failure {
                if batch.mentions.is_empty() {
                    return Err(e);
                }
                // Older pages are still to read: record what was read, keep the cursor.
                tracing::warn!(error = %e, "X mentions: a later page failed; the rest next time");
                batch.cursor = None;
                break;
            }
            let Some(a) = a else { break };
            let page: Envelope<Vec<Tweet>> = a.json(WHAT)?;
            let meta = page.meta.unwrap_or_default();
            if batch.cursor.is_none() {
                batch.cursor = meta.newest_id.clone();
            }
            let users = page.includes.unwrap_or_default().users;
            for t in page.data.iter().flatten() {
                let Some(author_id) = t.author_id.clone() else {
                    continue;
                };
                if author_id == me {
                    continue;
                }
                let Some(author) = users.iter().find(|u| u.id == author_id) else {
                    // X leaves out authors it will not show (suspended, withheld).
                    tracing::warn!(post_id = %t.id, "an X mention without its author was left out");
                    continue;
                };
                batch.mentions.push(Mention {
                    network: Network::X,
                    post_id: t.id.clone(),
                    author_handle: author.username.clone(),
                    author_id,
                    text: tweet_text(t),
                    created_at: t
                        .created_at
                        .as_deref()
                        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                        .map(|c| c.to_utc()),
                    visibility: None,
                });
            }
            match meta.next_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        batch
            .mentions
            .sort_by(|a, b| (a.post_id.len(), &a.post_id).cmp(&(b.post_id.len(), &b.post_id)));
        if let (Some(old), Some(new)) = (cursor, batch.cursor.as_deref()) {
            if !newer(new, old) {
                batch.cursor = None;
            }
        }
        Ok(batch)
    }
}

type HmacSha256 = Hmac<Sha256>;

/// The answer to X's challenge-response check (CRC) of the webhook:
/// `sha256=` + base64(HMAC-SHA256(consumer secret, crc_token)).
pub fn crc_response(secret: &SecretString, crc_token: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(crc_token.as_bytes());
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Whether `header` (`x-twitter-webhooks-signature`, `sha256=` + base64 HMAC-SHA256 of the
/// body) signs `body` with `secret`. The comparison takes the same time wherever the
/// signatures differ.
pub fn signature_verifies(secret: &SecretString, body: &[u8], header: &str) -> bool {
    let Some(given) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(given) else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The mentions in an Account Activity event (`tweet_create_events`, v1.1 post objects),
/// leaving out the account's own posts.
///
/// Errors: a body that is not an event object.
pub fn webhook_mentions(body: &[u8]) -> std::result::Result<Vec<Mention>, String> {
    #[derive(Deserialize)]
    struct Event {
        for_user_id: Option<String>,
        #[serde(default)]
        tweet_create_events: Vec<V1Tweet>,
    }
    #[derive(Deserialize)]
    struct V1Tweet {
        id_str: String,
        text: Option<String>,
        full_text: Option<String>,
        extended_tweet: Option<Extended>,
        created_at: Option<String>,
        user: V1User,
        entities: Option<Entities>,
        /// Present on a retweet, which is not a customer writing to us.
        retweeted_status: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct Extended {
        full_text: String,
        entities: Option<Entities>,
    }
    #[derive(Deserialize)]
    struct V1User {
        id_str: String,
        screen_name: String,
    }
    let event: Event =
        serde_json::from_slice(body).map_err(|e| format!("not an Account Activity event: {e}"))?;
    Ok(event
        .tweet_create_events
        .into_iter()
        .filter(|t| Some(&t.user.id_str) != event.for_user_id.as_ref())
        .filter(|t| t.retweeted_status.is_none())
        .map(|t| {
            let (text, entities) = match t.extended_tweet {
                Some(x) => (x.full_text, x.entities.or(t.entities)),
                None => (t.full_text.or(t.text).unwrap_or_default(), t.entities),
            };
            let urls: Vec<(String, String)> = entities
                .iter()
                .flat_map(|e| &e.urls)
                .filter_map(|u| Some((u.url.clone(), u.expanded_url.clone()?)))
                .collect();
            Mention {
                network: Network::X,
                post_id: t.id_str,
                author_handle: t.user.screen_name,
                author_id: t.user.id_str,
                text: as_written(&text, &urls),
                created_at: t
                    .created_at
                    .as_deref()
                    .and_then(|c| DateTime::parse_from_str(c, "%a %b %d %H:%M:%S %z %Y").ok())
                    .map(|c| c.to_utc()),
                visibility: None,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_copies_of_a_text_compare_equal_to_what_was_sent() {
        let sent = "Fees & terms: <see> https://example.com/terms?a=1&b=2";
        let theirs = "@jane_doe Fees &amp; terms: &lt;see&gt; https://t.co/AbC123";
        let urls = [(
            "https://t.co/AbC123".to_string(),
            "https://example.com/terms?a=1&b=2".to_string(),
        )];
        assert!(same_text(&as_written(theirs, &urls), sent));
        assert!(!same_text(&as_written(theirs, &[]), sent));
    }

    #[test]
    fn the_crc_answer_is_hmac_sha256_in_base64() {
        // Computed apart from this code: printf crc_token | openssl dgst -sha256 -hmac secret
        // -binary | base64
        assert_eq!(
            crc_response(&SecretString::from("secret"), "crc_token"),
            "sha256=gjiQ6uetgi4t5/+6PvFeAZ+idQ6rmuAfSEo3PnF6QV8="
        );
    }

    #[test]
    fn signatures_verify_only_for_the_signed_body() {
        let secret = SecretString::from("consumer-secret");
        let body = br#"{"for_user_id":"1","tweet_create_events":[]}"#;
        let good = crc_response(&secret, std::str::from_utf8(body).unwrap());
        assert!(signature_verifies(&secret, body, &good));
        assert!(!signature_verifies(&secret, b"{}", &good));
        assert!(!signature_verifies(
            &SecretString::from("other"),
            body,
            &good
        ));
        assert!(!signature_verifies(&secret, body, "sha256=not base64!"));
        assert!(!signature_verifies(&secret, body, ""));
    }

    #[test]
    fn snowflakes_compare_as_numbers() {
        assert!(newer("1000", "999"));
        assert!(!newer("999", "1000"));
        assert!(newer("1900000000000000002", "1900000000000000001"));
    }
}
