//! The Mastodon channel: one account on one instance, with an access token (scopes
//! `read:notifications write:statuses`; reconciliation reads the account's statuses).
//!
//! - Posting: `POST /api/v1/statuses` with `status`, `in_reply_to_id` and `visibility` (the
//!   answered post's, so a direct or followers-only mention is never answered in public).
//! - Idempotency: every attempt sends `Idempotency-Key: <job id>`, which Mastodon honours for
//!   about an hour. On a retry the channel first reads the account's own statuses for a
//!   reply to the same post made since the job was enqueued (one answer per message, so a
//!   reply to that post is this one), so a retry hours later cannot post twice either.
//! - Rate limits: a 429 waits until `X-RateLimit-Reset`; 5xx answers and timeouts are
//!   retried by the job queue. Mastodon's `{"error": …}` bodies become the messages.
//! - Mentions: `GET /api/v1/notifications?types[]=mention` newer than the last id read
//!   (`min_id`), page after page; the status's HTML is stored as the plain text its author
//!   wrote (html2text), and the author's `acct` (with the instance's domain for a local
//!   account) is the handle.

use super::http::{self, Answer};
use super::{Batch, Channel, ChannelError, Ingest, Mention, Network, OutgoingReply, PostReceipt};
use crate::app::clock::Clock;
use crate::config::{MastodonSettings, Settings};
use crate::error::{Error, Result};
use chrono::DateTime;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::sync::OnceLock;
use std::time::Duration;

/// A post attempt makes at most five requests (the account's id, three pages of
/// statuses, the post): within the job's two-minute lease.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications a page (Mastodon's maximum is 80 for notifications; 40 is its default cap
/// on many instances).
const PAGE: usize = 40;
const MENTION_PAGES: usize = 25;
/// Statuses read when looking for a reply already made (40 a page).
const RECONCILE_PAGES: usize = 3;

pub struct MastodonChannel {
    agent: ureq::Agent,
    settings: MastodonSettings,
    /// The instance's host, for the handles of its local accounts (`user` → `user@host`).
    domain: String,
    me: OnceLock<String>,
    clock: Clock,
}

#[derive(Debug, Deserialize)]
struct Account {
    id: String,
    acct: String,
}

#[derive(Debug, Deserialize)]
struct Status {
    id: String,
    url: Option<String>,
    in_reply_to_id: Option<String>,
    content: Option<String>,
    visibility: Option<String>,
    created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Notification {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    account: Option<Account>,
    status: Option<Status>,
}

/// A person's reading of a Mastodon error answer.
fn describe(what: &str, a: &Answer) -> String {
    #[derive(Deserialize, Default)]
    struct Problem {
        error: Option<String>,
        error_description: Option<String>,
    }
    let p: Problem = serde_json::from_str(&a.body).unwrap_or_default();
    let detail = match (p.error, p.error_description) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e,
        (None, Some(d)) => d,
        (None, None) => http::excerpt(&a.body),
    };
    format!("{what}: Mastodon answered {}: {detail}", a.status)
}

/// The plain text of a status's HTML, as its author wrote it.
pub fn plain_text(html: &str) -> String {
    html2text::config::with_decorator(html2text::render::TrivialDecorator::new())
        .no_link_wrapping()
        .string_from_read(html.as_bytes(), 100_000)
        .map(|t| {
            t.lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// Mastodon's ids compare as numbers: longer is newer, then by digits.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

impl MastodonChannel {
    /// The Mastodon channel, if an account is configured.
    ///
    /// Errors: a base URL without a host.
    pub fn from_settings(settings: &Settings, clock: &Clock) -> Result<Option<MastodonChannel>> {
        let Some(m) = &settings.mastodon else {
            return Ok(None);
        };
        let host = m
            .base_url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(""))
            .unwrap_or("")
            .to_lowercase();
        if host.is_empty() {
            return Err(Error::BadRequest(format!(
                "COUNTERSIGN_MASTODON_BASE_URL {:?} names no host",
                m.base_url
            )));
        }
        Ok(Some(MastodonChannel {
            agent: http::agent(TIMEOUT),
            settings: m.clone(),
            domain: host,
            me: OnceLock::new(),
            clock: clock.clone(),
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.settings.access_token.expose_secret())
    }

    fn failure(&self, what: &str, a: &Answer) -> ChannelError {
        match a.status {
            429 => {
                let now = self.clock.now();
                ChannelError::RateLimited {
                    message: describe(what, a),
                    until: a
                        .rate_limit_reset(now)
                        .unwrap_or(now + chrono::Duration::minutes(5)),
                }
            }
            500..=599 => ChannelError::Temporary(describe(what, a)),
            _ => ChannelError::Refused(describe(what, a)),
        }
    }

    /// The account's id (`GET /api/v1/accounts/verify_credentials`).
    fn me(&self) -> std::result::Result<String, ChannelError> {
        if let Some(id) = self.me.get() {
            return Ok(id.clone());
        }
        const WHAT: &str = "GET /api/v1/accounts/verify_credentials";
        let a = http::read(
            self.agent
                .get(self.url("/api/v1/accounts/verify_credentials"))
                .header("Authorization", self.bearer())
                .call(),
            WHAT,
        )?;
        if a.status != 200 {
            return Err(self.failure(WHAT, &a));
        }
        let me: Account = a.json(WHAT)?;
        let _ = self.me.set(me.id.clone());
        Ok(me.id)
    }

    /// This account's reply to `reply.in_reply_to` made since the job was enqueued.
    fn find_reply(
        &self,
        reply: &OutgoingReply,
    ) -> std::result::Result<Option<PostReceipt>, ChannelError> {
        const WHAT: &str = "GET /api/v1/accounts/:id/statuses";
        let me = self.me()?;
        let since = reply.since - chrono::Duration::minutes(5);
        let mut max_id: Option<String> = None;
        for _ in 0..RECONCILE_PAGES {
            let mut r = self
                .agent
                .get(self.url(&format!("/api/v1/accounts/{me}/statuses")))
                .header("Authorization", self.bearer())
                .query("limit", "40")
                .query("exclude_reblogs", "true");
            if let Some(m) = &max_id {
                r = r.query("max_id", m);
            }
            let a = http::read(r.call(), WHAT)?;
            if a.status != 200 {
                return Err(self.failure(WHAT, &a));
            }
            let statuses: Vec<Status> = a.json(WHAT)?;
            let mut older = false;
            for s in &statuses {
                let at = s
                    .created_at
                    .as_deref()
                    .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                    .map(|c| c.to_utc());
                if at.is_some_and(|t| t < since) {
                    older = true;
                    continue;
                }
                if s.in_reply_to_id.as_deref() == Some(reply.in_reply_to.as_str()) {
                    tracing::info!(post_id = %s.id, draft_id = %reply.draft_id, "found the reply already posted on Mastodon");
                    return Ok(Some(PostReceipt {
                        post_id: s.id.clone(),
                        url: s.url.clone(),
                    }));
                }
            }
            match statuses.last() {
                Some(last) if !older && statuses.len() >= 40 => max_id = Some(last.id.clone()),
                _ => break,
            }
        }
        Ok(None)
    }
}

impl Channel for MastodonChannel {
    fn network(&self) -> Network {
        Network::Mastodon
    }

    fn post(&self, reply: &OutgoingReply) -> std::result::Result<PostReceipt, ChannelError> {
        const WHAT: &str = "POST /api/v1/statuses";
        if reply.is_retry {
            if let Some(done) = self.find_reply(reply)? {
                return Ok(done);
            }
        }
        // A visibility we do not know (a fork's `local`, `limited`) is answered privately:
        // never more widely than the customer posted.
        let visibility = match reply.visibility.as_deref() {
            None => "public",
            Some(v @ ("public" | "unlisted" | "private" | "direct")) => v,
            Some(_) => "direct",
        };
        let a = http::read(
            self.agent
                .post(self.url("/api/v1/statuses"))
                .header("Authorization", self.bearer())
                .header("Idempotency-Key", reply.job_id.to_string())
                .send_json(serde_json::json!({
                    "status": reply.text,
                    "in_reply_to_id": reply.in_reply_to,
                    "visibility": visibility,
                })),
            WHAT,
        )?;
        if a.status != 200 {
            return Err(self.failure(WHAT, &a));
        }
        let s: Status = a.json(WHAT)?;
        Ok(PostReceipt {
            post_id: s.id,
            url: s.url,
        })
    }
}

impl Ingest for MastodonChannel {
    fn network(&self) -> Network {
        Network::Mastodon
    }

    fn poll_every(&self) -> Option<Duration> {
        (self.settings.poll_seconds > 0).then(|| Duration::from_secs(self.settings.poll_seconds))
    }

    fn mentions_since(&self, cursor: Option<&str>) -> std::result::Result<Batch, ChannelError> {
        const WHAT: &str = "GET /api/v1/notifications";
        let mut batch = Batch::default();
        let mut after = cursor.map(str::to_string);
        // The first poll of an account reads its latest page only.
        let pages = if cursor.is_some() { MENTION_PAGES } else { 1 };
        for _ in 0..pages {
            let mut r = self
                .agent
                .get(self.url("/api/v1/notifications"))
                .header("Authorization", self.bearer())
                .query("types[]", "mention")
                // Mastodon 4.3+ holds back mentions from accounts we do not follow (often a
                // customer's private mention) unless asked for them.
                .query("include_filtered", "true")
                .query("limit", PAGE.to_string());
            if let Some(a) = &after {
                r = r.query("min_id", a);
            }
            let a = http::read(r.call(), WHAT)?;
            if a.status != 200 {
                return Err(self.failure(WHAT, &a));
            }
            let page: Vec<Notification> = a.json(WHAT)?;
            let Some(newest) =
                page.iter()
                    .map(|n| n.id.clone())
                    .reduce(|x, y| if newer(&y, &x) { y } else { x })
            else {
                break;
            };
            for n in &page {
                if n.kind != "mention" {
                    continue;
                }
                let (Some(status), Some(account)) = (&n.status, n.account.as_ref()) else {
                    continue;
                };
                let handle = if account.acct.contains('@') {
                    account.acct.clone()
                } else {
                    format!("{}@{}", account.acct, self.domain)
                };
                batch.mentions.push(Mention {
                    network: Network::Mastodon,
                    post_id: status.id.clone(),
                    author_handle: handle,
                    author_id: account.id.clone(),
                    text: plain_text(status.content.as_deref().unwrap_or("")),
                    created_at: status
                        .created_at
                        .as_deref()
                        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                        .map(|c| c.to_utc()),
                    visibility: status.visibility.clone(),
                });
            }
            batch.cursor = Some(newest.clone());
            // Mastodon pages newer results through `rel="prev"`: a short page is the last.
            let more = a
                .header("link")
                .and_then(|l| http::link_rel(l, "prev"))
                .is_some();
            if page.len() < PAGE || !more {
                break;
            }
            after = Some(newest);
        }
        batch
            .mentions
            .sort_by(|a, b| (a.post_id.len(), &a.post_id).cmp(&(b.post_id.len(), &b.post_id)));
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_reads_as_the_text_its_author_wrote() {
        let html = "<p><span class=\"h-card\"><a href=\"https://m.example/@examplecare\" \
                    class=\"u-url mention\">@<span>examplecare</span></a></span> my bill is \
                    wrong &amp; nobody answers &lt;3</p><p>second line</p>";
        assert_eq!(
            plain_text(html),
            "@examplecare my bill is wrong & nobody answers <3\n\nsecond line"
        );
    }
}
