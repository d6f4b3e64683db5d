//! What the network clients share: one blocking HTTP agent (ureq over native-tls, which
//! trusts the platform's certificates and `SSL_CERT_FILE`), answers read whole into memory
//! under a size cap, rate-limit headers, and transport failures classed as temporary.

use super::ChannelError;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The most of an answer body that is read (the networks' answers are a few kB).
const MAX_BODY: u64 = 2 * 1024 * 1024;

/// An agent whose every request ends within `timeout` (connect, send and read), which
/// reads 4xx and 5xx answers instead of failing on them.
pub fn agent(timeout: Duration) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(tls)
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Answer {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T`; a body that does not read is temporary (the network answered
    /// something we do not understand: look again later rather than assume).
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, ChannelError> {
        serde_json::from_str(&self.body).map_err(|e| {
            ChannelError::Temporary(format!(
                "{what}: an answer that does not read ({e}): {}",
                excerpt(&self.body)
            ))
        })
    }

    /// When the network's rate limit resets, from `x-rate-limit-reset` (X: Unix seconds),
    /// `X-RateLimit-Reset` (Mastodon: an ISO 8601 time) or `Retry-After` (seconds).
    /// A reset beyond a day (a proxy's nonsense) counts as a day.
    pub fn rate_limit_reset(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cap = now + chrono::Duration::hours(24);
        for name in ["x-rate-limit-reset", "x-ratelimit-reset"] {
            if let Some(t) = self.header(name).and_then(parse_reset) {
                return Some(t.min(cap));
            }
        }
        if let Some(secs) = self
            .header("retry-after")
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            return Some(now + chrono::Duration::seconds(secs.clamp(0, 86_400)));
        }
        None
    }
}

/// A reset time as either network writes it: Unix seconds, or RFC 3339.
pub fn parse_reset(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<i64>() {
        return DateTime::from_timestamp(secs, 0);
    }
    DateTime::parse_from_rfc3339(v).ok().map(|t| t.to_utc())
}

/// The first 300 characters of a body, for error messages.
pub fn excerpt(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if s.len() < body.len() {
        s.push('…');
    }
    s
}

/// Reads the answer of a request; a failure to connect, send or read (a timeout, a dropped
/// connection) is temporary: the request may or may not have had its effect.
pub fn read(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<Answer, ChannelError> {
    let mut response =
        result.map_err(|e| ChannelError::Temporary(format!("{what}: no answer: {e}")))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| ChannelError::Temporary(format!("{what}: the answer broke off: {e}")))?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The `rel="…"` target of a `Link` header (RFC 8288), as Mastodon paginates.
pub fn link_rel(link: &str, rel: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == format!("rel=\"{rel}\"") || p == format!("rel={rel}")
            })
            .then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_times_read_in_both_networks_forms() {
        assert_eq!(
            parse_reset("1767225600"),
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .ok()
                .map(|t| t.to_utc())
        );
        assert_eq!(
            parse_reset("2026-01-01T00:05:00.000Z"),
            DateTime::parse_from_rfc3339("2026-01-01T00:05:00Z")
                .ok()
                .map(|t| t.to_utc())
        );
        assert_eq!(parse_reset("soon"), None);
    }

    #[test]
    fn link_headers_give_their_targets_by_rel() {
        let link = "<https://m.example/api/v1/notifications?max_id=7>; rel=\"next\", \
                    <https://m.example/api/v1/notifications?min_id=9>; rel=\"prev\"";
        assert_eq!(
            link_rel(link, "prev").as_deref(),
            Some("https://m.example/api/v1/notifications?min_id=9")
        );
        assert_eq!(
            link_rel(link, "next").as_deref(),
            Some("https://m.example/api/v1/notifications?max_id=7")
        );
        assert_eq!(link_rel(link, "last"), None);
    }
}
