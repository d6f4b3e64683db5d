//! Settings (spec/api.md "Running"): defaults, then an optional TOML file, then
//! `COUNTERSIGN_*` environment variables, which win. Parsed and validated once into
//! [`Settings`]; a bad value stops the start with a message naming the setting.

use crate::db::{sqlite_path, Backend};
pub use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The validated settings every command runs with. Its `Debug` output redacts the
/// credentials of the database and SMTP URLs; tokens and secrets are [`SecretString`]s,
/// which nothing prints.
#[derive(Clone)]
pub struct Settings {
    /// `sqlite://PATH` or `postgres://…`.
    pub database_url: String,
    pub bind: SocketAddr,
    /// The policies folder.
    pub policies: PathBuf,
    /// The audit signing key file.
    pub key_file: PathBuf,
    /// How long a sign-in token lives, in hours (≥ 1).
    pub session_hours: u32,
    /// `smtp://host:port` or `file://DIR`.
    pub smtp_url: String,
    /// The X account, if one is configured (`COUNTERSIGN_X_*`).
    pub x: XSettings,
    /// The Mastodon account, if one is configured (`COUNTERSIGN_MASTODON_*`).
    pub mastodon: Option<MastodonSettings>,
    /// The `log` channel's output file (JSON lines).
    pub post_log: PathBuf,
    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDR ranges).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A request body must arrive within this long, or the request gets 408.
    pub body_timeout: std::time::Duration,
    /// An idle keep-alive connection is closed after this long.
    pub keep_alive: std::time::Duration,
    /// Open connections one client address may hold (requests in flight, behind a trusted
    /// proxy); past it a request gets 429 and its connection is closed.
    pub max_connections_per_client: usize,
    /// The checkpoints' origin line and key name; `None` means `countersign/<host name>`,
    /// decided at the log's first start and recorded in the database.
    pub log_origin: Option<String>,
    /// A checkpoint is made after this many new entries (≥ 1).
    pub checkpoint_every: u64,
    /// … and at least this often when the log grew.
    pub checkpoint_interval: std::time::Duration,
    /// How long entries are kept, in years; never below the value the database records.
    pub retention_years: u32,
    /// Auditors are mailed the latest checkpoint at most this often (the mail itself comes
    /// with the reply desk's e-mail).
    pub checkpoint_mail_interval: std::time::Duration,
    /// More addresses that get every checkpoint, besides auditors with an e-mail.
    pub auditor_emails: Vec<String>,
    /// Posting attempts before a draft is `post_failed` (`COUNTERSIGN_POST_ATTEMPTS`).
    pub post_attempts: u32,
    /// An approval not posted within this many hours goes back to review
    /// (`COUNTERSIGN_APPROVAL_TTL_HOURS`).
    pub approval_ttl_hours: u32,
    /// The From address of every mail (`COUNTERSIGN_MAIL_FROM`).
    pub mail_from: String,
    /// The address people open, without a trailing slash, for links in mail
    /// (`COUNTERSIGN_PUBLIC_URL`; `http://` + the bind address by default).
    pub public_url: String,
    /// Business hours (the settings file's `[hours]` table only), the clock of deadlines.
    pub hours: crate::domain::hours::Schedule,
}

/// The X account (spec/api.md "Running"). Without an access token there is no X channel.
#[derive(Clone, Debug)]
pub struct XSettings {
    /// Without a trailing slash (`https://api.x.com`).
    pub api_base: String,
    /// OAuth 2.0 user-context access token. Once the service has refreshed it, the pair
    /// stored in the database wins over this one.
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub client_id: Option<String>,
    /// Absent for a public client (PKCE), whose refresh sends only the client id.
    pub client_secret: Option<SecretString>,
    /// The account whose mentions are read; asked of `GET /2/users/me` when not set.
    pub user_id: Option<String>,
    /// How often mentions are read; 0 turns polling off.
    pub poll_seconds: u64,
    /// The consumer secret of the Account Activity webhook; `None`: no webhook.
    pub webhook_secret: Option<SecretString>,
}

/// A Mastodon account (spec/api.md "Running").
#[derive(Clone, Debug)]
pub struct MastodonSettings {
    /// The instance, without a trailing slash (`https://mastodon.social`).
    pub base_url: String,
    pub access_token: SecretString,
    /// How often mentions are read; 0 turns polling off.
    pub poll_seconds: u64,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact_url(&self.database_url))
            .field("bind", &self.bind)
            .field("policies", &self.policies)
            .field("key_file", &self.key_file)
            .field("session_hours", &self.session_hours)
            .field("smtp_url", &redact_url(&self.smtp_url))
            .field("x", &self.x)
            .field("mastodon", &self.mastodon)
            .field("post_log", &self.post_log)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("body_timeout", &self.body_timeout)
            .field("keep_alive", &self.keep_alive)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("log_origin", &self.log_origin)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("retention_years", &self.retention_years)
            .field("checkpoint_mail_interval", &self.checkpoint_mail_interval)
            .field("auditor_emails", &self.auditor_emails)
            .field("post_attempts", &self.post_attempts)
            .field("approval_ttl_hours", &self.approval_ttl_hours)
            .field("mail_from", &self.mail_from)
            .field("public_url", &redact_url(&self.public_url))
            .field("hours", &self.hours)
            .finish()
    }
}

/// Query parameters of a URL that carry a credential (libpq's and lettre's spellings).
const SECRET_QUERY_KEYS: [&str; 4] = ["password", "pass", "passwd", "sslpassword"];

/// Where the credentials of `url` are, as byte ranges: the password of its user part
/// (`scheme://user:PASSWORD@host`) and the values of credential query parameters.
fn credential_ranges(url: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (main, query_start) = match url.find('?') {
        Some(q) => (&url[..q], Some(q + 1)),
        None => (url, None),
    };
    if let Some(scheme_end) = main.find("://") {
        let start = scheme_end + 3;
        let rest = &main[start..];
        // The user part ends at the last '@' before the path.
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                ranges.push(start + colon + 1..start + at);
            }
        }
    }
    if let Some(mut pos) = query_start {
        for pair in url[pos..].split('&') {
            if let Some((k, v)) = pair.split_once('=') {
                if SECRET_QUERY_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    let value_start = pos + k.len() + 1;
                    ranges.push(value_start..value_start + v.len());
                }
            }
            pos += pair.len() + 1;
        }
    }
    ranges.retain(|r| !r.is_empty());
    ranges
}

/// `url` with the password of its user part and any credential query parameter replaced
/// by `***`, for messages, logs and `Debug` output: `postgres://cs:***@db/cs`.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    // Back to front, so earlier ranges stay where they were.
    for r in credential_ranges(url).into_iter().rev() {
        out.replace_range(r, "***");
    }
    out
}

/// The secrets inside `url` (its password and credential query values), to scrub from
/// messages that a library built from it (a connection error may quote them).
pub fn url_secrets(url: &str) -> Vec<String> {
    credential_ranges(url)
        .into_iter()
        .map(|r| url[r].to_string())
        .collect()
}

/// `message` with each of `secrets` replaced by `***`.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_string(), |m, secret| {
        m.replace(secret.as_str(), "***")
    })
}

/// A setting that could not be used; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("settings file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("settings file {path}: {source}")]
    Hours {
        path: PathBuf,
        source: crate::domain::hours::HoursError,
    },
    #[error("setting {name} ({origin}): {message}")]
    Invalid {
        name: &'static str,
        origin: String,
        message: String,
    },
}

/// Every setting's name without the `COUNTERSIGN_` prefix, lower case (the TOML key).
const KEYS: [&str; 32] = [
    "database_url",
    "bind",
    "policies",
    "key_file",
    "session_hours",
    "smtp_url",
    "x_api_base",
    "x_access_token",
    "x_refresh_token",
    "x_client_id",
    "x_client_secret",
    "x_user_id",
    "x_poll_seconds",
    "x_webhook_secret",
    "mastodon_base_url",
    "mastodon_access_token",
    "mastodon_poll_seconds",
    "post_log",
    "trusted_proxies",
    "body_timeout_seconds",
    "keep_alive_seconds",
    "max_connections_per_client",
    "log_origin",
    "checkpoint_every",
    "checkpoint_minutes",
    "retention_years",
    "checkpoint_mail_minutes",
    "auditor_emails",
    "post_attempts",
    "approval_ttl_hours",
    "mail_from",
    "public_url",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    database_url: Option<String>,
    bind: Option<String>,
    policies: Option<String>,
    key_file: Option<String>,
    session_hours: Option<toml::Value>,
    smtp_url: Option<String>,
    x_api_base: Option<String>,
    x_access_token: Option<String>,
    x_refresh_token: Option<String>,
    x_client_id: Option<String>,
    x_client_secret: Option<String>,
    x_user_id: Option<String>,
    x_poll_seconds: Option<toml::Value>,
    x_webhook_secret: Option<String>,
    mastodon_base_url: Option<String>,
    mastodon_access_token: Option<String>,
    mastodon_poll_seconds: Option<toml::Value>,
    post_log: Option<String>,
    trusted_proxies: Option<toml::Value>,
    body_timeout_seconds: Option<toml::Value>,
    keep_alive_seconds: Option<toml::Value>,
    max_connections_per_client: Option<toml::Value>,
    log_origin: Option<String>,
    checkpoint_every: Option<toml::Value>,
    checkpoint_minutes: Option<toml::Value>,
    retention_years: Option<toml::Value>,
    checkpoint_mail_minutes: Option<toml::Value>,
    auditor_emails: Option<toml::Value>,
    post_attempts: Option<toml::Value>,
    approval_ttl_hours: Option<toml::Value>,
    mail_from: Option<String>,
    public_url: Option<String>,
    hours: Option<HoursFile>,
}

/// The settings file's `[hours]` table (spec/api.md "Business hours and deadlines").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursFile {
    time_zone: Option<String>,
    reply_within_minutes: Option<i64>,
    at_risk_minutes: Option<i64>,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    week: std::collections::BTreeMap<String, Vec<String>>,
}

impl Settings {
    /// Reads the settings from the optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Self::from_sources(file, &env)
    }

    /// The same from an explicit environment (tests).
    pub fn from_sources(
        file: Option<&Path>,
        env: &HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        // (value, where it came from) per key; later sources overwrite earlier ones.
        let mut raw: HashMap<&'static str, (String, String)> = HashMap::new();
        let mut schedule = crate::domain::hours::Schedule::Always;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let parsed: FileSettings = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.into(),
                message: parse_message(&text, &e),
            })?;
            let origin = format!("in {}", path.display());
            if let Some(h) = &parsed.hours {
                let input = crate::domain::hours::HoursInput {
                    time_zone: h.time_zone.clone(),
                    reply_within_minutes: h.reply_within_minutes,
                    at_risk_minutes: h.at_risk_minutes,
                    holidays: h.holidays.clone(),
                    week: h.week.clone().into_iter().collect(),
                };
                let table =
                    crate::domain::hours::BusinessHours::from_input(&input).map_err(|source| {
                        ConfigError::Hours {
                            path: path.into(),
                            source,
                        }
                    })?;
                schedule = crate::domain::hours::Schedule::Hours(Box::new(table));
            }
            fn as_text(v: toml::Value) -> String {
                match v {
                    toml::Value::String(s) => s,
                    // A list (of proxies) is read like the variable's comma-separated form.
                    toml::Value::Array(items) => {
                        items.into_iter().map(as_text).collect::<Vec<_>>().join(",")
                    }
                    other => other.to_string(),
                }
            }
            let from_file = [
                ("database_url", parsed.database_url),
                ("bind", parsed.bind),
                ("policies", parsed.policies),
                ("key_file", parsed.key_file),
                ("session_hours", parsed.session_hours.map(as_text)),
                ("smtp_url", parsed.smtp_url),
                ("x_api_base", parsed.x_api_base),
                ("x_access_token", parsed.x_access_token),
                ("x_refresh_token", parsed.x_refresh_token),
                ("x_client_id", parsed.x_client_id),
                ("x_client_secret", parsed.x_client_secret),
                ("x_user_id", parsed.x_user_id),
                ("x_poll_seconds", parsed.x_poll_seconds.map(as_text)),
                ("x_webhook_secret", parsed.x_webhook_secret),
                ("mastodon_base_url", parsed.mastodon_base_url),
                ("mastodon_access_token", parsed.mastodon_access_token),
                (
                    "mastodon_poll_seconds",
                    parsed.mastodon_poll_seconds.map(as_text),
                ),
                ("post_log", parsed.post_log),
                ("trusted_proxies", parsed.trusted_proxies.map(as_text)),
                (
                    "body_timeout_seconds",
                    parsed.body_timeout_seconds.map(as_text),
                ),
                ("keep_alive_seconds", parsed.keep_alive_seconds.map(as_text)),
                (
                    "max_connections_per_client",
                    parsed.max_connections_per_client.map(as_text),
                ),
                ("log_origin", parsed.log_origin),
                ("checkpoint_every", parsed.checkpoint_every.map(as_text)),
                ("checkpoint_minutes", parsed.checkpoint_minutes.map(as_text)),
                ("retention_years", parsed.retention_years.map(as_text)),
                (
                    "checkpoint_mail_minutes",
                    parsed.checkpoint_mail_minutes.map(as_text),
                ),
                ("auditor_emails", parsed.auditor_emails.map(as_text)),
                ("post_attempts", parsed.post_attempts.map(as_text)),
                ("approval_ttl_hours", parsed.approval_ttl_hours.map(as_text)),
                ("mail_from", parsed.mail_from),
                ("public_url", parsed.public_url),
            ];
            for (key, value) in from_file {
                if let Some(v) = value {
                    raw.insert(key, (v, origin.clone()));
                }
            }
        }
        for key in KEYS {
            let var = format!("COUNTERSIGN_{}", key.to_uppercase());
            if let Some(v) = env.get(&var) {
                raw.insert(key, (v.clone(), format!("from ${var}")));
            }
        }

        let get = |key: &str| raw.get(key).map(|(v, o)| (v.as_str(), o.as_str()));
        let invalid = |name: &'static str, origin: &str, message: String| ConfigError::Invalid {
            name,
            origin: origin.to_string(),
            message,
        };
        let origin_of = |key: &str| get(key).map_or("default", |(_, o)| o);

        let (database_url, origin) =
            get("database_url").unwrap_or(("sqlite://countersign.db", "default"));
        let backend = Backend::of_url(database_url).ok_or_else(|| {
            invalid(
                "COUNTERSIGN_DATABASE_URL",
                origin,
                "must be sqlite://PATH or postgres://USER@HOST/DB".into(),
            )
        })?;
        if backend == Backend::Sqlite && sqlite_path(database_url).is_empty() {
            return Err(invalid(
                "COUNTERSIGN_DATABASE_URL",
                origin,
                "sqlite:// needs a file path".into(),
            ));
        }

        let (bind, origin) = get("bind").unwrap_or(("127.0.0.1:8080", "default"));
        let bind: SocketAddr = bind.parse().map_err(|_| {
            invalid(
                "COUNTERSIGN_BIND",
                origin,
                format!("{bind:?} is not an address:port such as 127.0.0.1:8080"),
            )
        })?;

        let policies = PathBuf::from(get("policies").map(|(v, _)| v).unwrap_or("policies"));

        let key_file = match get("key_file") {
            Some((v, _)) => PathBuf::from(v),
            None => match backend {
                // Beside the SQLite file, so the key travels with the database.
                Backend::Sqlite => {
                    let db = Path::new(sqlite_path(database_url));
                    db.with_file_name(format!(
                        "{}.key",
                        db.file_stem()
                            .and_then(|s| s.to_str())
                            .unwrap_or("countersign")
                    ))
                }
                Backend::Postgres => PathBuf::from("countersign.key"),
            },
        };

        let (hours, origin) = get("session_hours").unwrap_or(("12", "default"));
        let session_hours: u32 = hours
            .trim()
            .parse()
            .ok()
            .filter(|h| (1..=24 * 90).contains(h))
            .ok_or_else(|| {
                invalid(
                    "COUNTERSIGN_SESSION_HOURS",
                    origin,
                    format!("{hours:?} is not a whole number of hours between 1 and 2160"),
                )
            })?;

        let (smtp_url, origin) = get("smtp_url").unwrap_or(("file://mail", "default"));
        if !(smtp_url.starts_with("smtp://")
            || smtp_url.starts_with("smtps://")
            || smtp_url.starts_with("file://"))
        {
            return Err(invalid(
                "COUNTERSIGN_SMTP_URL",
                origin,
                format!(
                    "{:?} must be smtp://host:port or file://DIR",
                    redact_url(smtp_url)
                ),
            ));
        }

        let (x_api_base, origin) = get("x_api_base").unwrap_or(("https://api.x.com", "default"));
        if !(x_api_base.starts_with("https://") || x_api_base.starts_with("http://")) {
            return Err(invalid(
                "COUNTERSIGN_X_API_BASE",
                origin,
                format!("{x_api_base:?} is not an http(s) URL"),
            ));
        }

        let non_empty = |key: &str| {
            get(key)
                .map(|(v, _)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secret = |key: &str| non_empty(key).map(SecretString::from);
        let poll_seconds = |key: &str, name: &'static str| {
            let (poll, origin) = get(key).unwrap_or(("60", "default"));
            poll.trim().parse::<u64>().map_err(|_| {
                invalid(
                    name,
                    origin,
                    format!("{poll:?} is not a whole number of seconds"),
                )
            })
        };
        let x = XSettings {
            api_base: x_api_base.trim_end_matches('/').to_string(),
            access_token: secret("x_access_token"),
            refresh_token: secret("x_refresh_token"),
            client_id: non_empty("x_client_id"),
            client_secret: secret("x_client_secret"),
            user_id: non_empty("x_user_id"),
            poll_seconds: poll_seconds("x_poll_seconds", "COUNTERSIGN_X_POLL_SECONDS")?,
            webhook_secret: secret("x_webhook_secret"),
        };
        if let Some(id) = &x.user_id {
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(
                    "COUNTERSIGN_X_USER_ID",
                    origin_of("x_user_id"),
                    format!("{id:?} is not an X user id (digits)"),
                ));
            }
        }
        if x.refresh_token.is_some() && x.client_id.is_none() {
            return Err(invalid(
                "COUNTERSIGN_X_REFRESH_TOKEN",
                origin_of("x_refresh_token"),
                "is set, but COUNTERSIGN_X_CLIENT_ID is missing (and COUNTERSIGN_X_CLIENT_SECRET, for a confidential client)".into(),
            ));
        }
        if x.refresh_token.is_some() && x.access_token.is_none() {
            return Err(invalid(
                "COUNTERSIGN_X_REFRESH_TOKEN",
                origin_of("x_refresh_token"),
                "is set, but COUNTERSIGN_X_ACCESS_TOKEN, the token it refreshes, is missing".into(),
            ));
        }
        // Read even without an account: a bad value is an error either way.
        let mastodon_poll =
            poll_seconds("mastodon_poll_seconds", "COUNTERSIGN_MASTODON_POLL_SECONDS")?;
        let mastodon = match (
            non_empty("mastodon_base_url"),
            secret("mastodon_access_token"),
        ) {
            (None, None) => None,
            (Some(base), Some(token)) => {
                if !(base.starts_with("https://") || base.starts_with("http://")) {
                    return Err(invalid(
                        "COUNTERSIGN_MASTODON_BASE_URL",
                        origin_of("mastodon_base_url"),
                        format!("{base:?} is not an http(s) URL such as https://mastodon.social"),
                    ));
                }
                Some(MastodonSettings {
                    base_url: base.trim_end_matches('/').to_string(),
                    access_token: token,
                    poll_seconds: mastodon_poll,
                })
            }
            (Some(_), None) => {
                return Err(invalid(
                    "COUNTERSIGN_MASTODON_BASE_URL",
                    origin_of("mastodon_base_url"),
                    "is set, but COUNTERSIGN_MASTODON_ACCESS_TOKEN is missing (both are needed)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "COUNTERSIGN_MASTODON_ACCESS_TOKEN",
                    origin_of("mastodon_access_token"),
                    "is set, but COUNTERSIGN_MASTODON_BASE_URL (the instance) is missing".into(),
                ))
            }
        };

        let post_log = PathBuf::from(get("post_log").map(|(v, _)| v).unwrap_or("posted.jsonl"));

        let mut trusted_proxies = Vec::new();
        if let Some((list, origin)) = get("trusted_proxies") {
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let net = item
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "COUNTERSIGN_TRUSTED_PROXIES",
                            origin,
                            format!(
                                "{item:?} is not an IP address or CIDR range such as 10.0.0.0/8"
                            ),
                        )
                    })?;
                trusted_proxies.push(net);
            }
        }

        let whole = |key: &str,
                     name: &'static str,
                     default: &str,
                     range: std::ops::RangeInclusive<u64>,
                     unit: &str| {
            let (v, origin) = get(key).unwrap_or((default, "default"));
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    invalid(
                        name,
                        origin,
                        format!(
                            "{v:?} is not a whole number of {unit} between {} and {}",
                            range.start(),
                            range.end()
                        ),
                    )
                })
        };
        let body_timeout = std::time::Duration::from_secs(whole(
            "body_timeout_seconds",
            "COUNTERSIGN_BODY_TIMEOUT_SECONDS",
            "10",
            1..=3600,
            "seconds",
        )?);
        let keep_alive = std::time::Duration::from_secs(whole(
            "keep_alive_seconds",
            "COUNTERSIGN_KEEP_ALIVE_SECONDS",
            "30",
            1..=3600,
            "seconds",
        )?);
        let max_connections_per_client = whole(
            "max_connections_per_client",
            "COUNTERSIGN_MAX_CONNECTIONS_PER_CLIENT",
            "64",
            1..=100_000,
            "connections",
        )? as usize;
        let checkpoint_every = whole(
            "checkpoint_every",
            "COUNTERSIGN_CHECKPOINT_EVERY",
            "1000",
            1..=1_000_000_000,
            "entries",
        )?;
        let checkpoint_interval = std::time::Duration::from_secs(
            60 * whole(
                "checkpoint_minutes",
                "COUNTERSIGN_CHECKPOINT_MINUTES",
                "10",
                1..=10_080,
                "minutes",
            )?,
        );
        let retention_years = whole(
            "retention_years",
            "COUNTERSIGN_RETENTION_YEARS",
            "6",
            1..=100,
            "years",
        )? as u32;
        let checkpoint_mail_interval = std::time::Duration::from_secs(
            60 * whole(
                "checkpoint_mail_minutes",
                "COUNTERSIGN_CHECKPOINT_MAIL_MINUTES",
                "60",
                1..=10_080,
                "minutes",
            )?,
        );
        let mut auditor_emails = Vec::new();
        if let Some((list, origin)) = get("auditor_emails") {
            for address in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                if !is_mail_address(address) {
                    return Err(invalid(
                        "COUNTERSIGN_AUDITOR_EMAILS",
                        origin,
                        format!("{address:?} is not an e-mail address"),
                    ));
                }
                auditor_emails.push(address.to_string());
            }
        }
        let post_attempts = whole(
            "post_attempts",
            "COUNTERSIGN_POST_ATTEMPTS",
            "8",
            1..=1000,
            "attempts",
        )? as u32;
        let approval_ttl_hours = whole(
            "approval_ttl_hours",
            "COUNTERSIGN_APPROVAL_TTL_HOURS",
            "24",
            1..=8760,
            "hours",
        )? as u32;
        let (mail_from, origin) = get("mail_from").unwrap_or(("countersign@localhost", "default"));
        let mail_from = mail_from.trim();
        if mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                "COUNTERSIGN_MAIL_FROM",
                origin,
                format!("{mail_from:?} is not an e-mail address (or `Name <address>`)"),
            ));
        }
        let public_url = match get("public_url") {
            None => format!("http://{bind}"),
            Some((v, origin)) => {
                let v = v.trim().trim_end_matches('/');
                let ok = (v.starts_with("https://") || v.starts_with("http://"))
                    && v.len() > "https://".len()
                    && !v.contains(['?', '#', ' ', '\n', '\r']);
                if !ok {
                    return Err(invalid(
                        "COUNTERSIGN_PUBLIC_URL",
                        origin,
                        format!(
                            "{:?} is not an http(s) address such as https://replies.example.com",
                            redact_url(v)
                        ),
                    ));
                }
                v.to_string()
            }
        };
        let log_origin = match get("log_origin") {
            None => None,
            Some((v, origin)) => {
                let v = v.trim();
                if v.is_empty() || v.contains(['+', ' ', '\t', '\n', '\r']) {
                    return Err(invalid(
                        "COUNTERSIGN_LOG_ORIGIN",
                        origin,
                        format!(
                            "{v:?} cannot be a checkpoint origin: it must be non-empty, \
                             without spaces or '+' (e.g. example.com/countersign)"
                        ),
                    ));
                }
                Some(v.to_string())
            }
        };

        Ok(Settings {
            database_url: database_url.to_string(),
            bind,
            policies,
            key_file,
            session_hours,
            smtp_url: smtp_url.to_string(),
            x,
            mastodon,
            post_log,
            trusted_proxies,
            body_timeout,
            keep_alive,
            max_connections_per_client,
            log_origin,
            checkpoint_every,
            checkpoint_interval,
            retention_years,
            checkpoint_mail_interval,
            auditor_emails,
            post_attempts,
            approval_ttl_hours,
            mail_from: mail_from.to_string(),
            public_url,
            hours: schedule,
        })
    }
}

/// A settings file's TOML error as "line L, column C: what", without the quoted line that
/// `toml`'s own message shows: that line may hold a token or a password.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim();
    let what = if what.is_empty() {
        "not valid TOML"
    } else {
        what
    };
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.to_string(),
    }
}

/// Whether `address` looks like a deliverable e-mail address (`local@domain.tld`, no
/// spaces or angle brackets: one address, not a list or a display name).
pub fn is_mail_address(address: &str) -> bool {
    address.len() <= 254
        && address
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'))
        && !address.contains([' ', '<', '>', ',', ';', '\n', '\r', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::from_sources(None, &env(&[])).unwrap();
        assert_eq!(s.database_url, "sqlite://countersign.db");
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.policies, PathBuf::from("policies"));
        assert_eq!(s.key_file, PathBuf::from("countersign.key"));
        assert_eq!(s.session_hours, 12);
        assert_eq!(s.smtp_url, "file://mail");
        assert_eq!(s.x.api_base, "https://api.x.com");
        assert!(s.x.access_token.is_none());
        assert_eq!(s.x.poll_seconds, 60);
        assert!(s.mastodon.is_none());
        assert_eq!(s.post_log, PathBuf::from("posted.jsonl"));
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.body_timeout.as_secs(), 10);
        assert_eq!(s.keep_alive.as_secs(), 30);
        assert_eq!(s.max_connections_per_client, 64);
        assert_eq!(s.log_origin, None);
        assert_eq!(s.checkpoint_every, 1000);
        assert_eq!(s.checkpoint_interval.as_secs(), 600);
        assert_eq!(s.retention_years, 6);
        assert_eq!(s.checkpoint_mail_interval.as_secs(), 3600);
        assert!(s.auditor_emails.is_empty());
    }

    #[test]
    fn audit_log_settings_are_validated_and_named() {
        for (var, value) in [
            ("COUNTERSIGN_LOG_ORIGIN", "has space"),
            ("COUNTERSIGN_LOG_ORIGIN", "a+b"),
            ("COUNTERSIGN_CHECKPOINT_EVERY", "0"),
            ("COUNTERSIGN_CHECKPOINT_MINUTES", "ten"),
            ("COUNTERSIGN_RETENTION_YEARS", "0"),
            (
                "COUNTERSIGN_AUDITOR_EMAILS",
                "ok@example.com, not-an-address",
            ),
        ] {
            let e = Settings::from_sources(None, &env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().contains(var), "{var}={value}: {e}");
        }
        let s = Settings::from_sources(
            None,
            &env(&[
                ("COUNTERSIGN_LOG_ORIGIN", "care.example.com/log"),
                ("COUNTERSIGN_AUDITOR_EMAILS", "a@example.com,b@example.org"),
            ]),
        )
        .unwrap();
        assert_eq!(s.log_origin.as_deref(), Some("care.example.com/log"));
        assert_eq!(s.auditor_emails.len(), 2);
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges_from_a_list_or_a_comma_list() {
        let s = Settings::from_sources(
            None,
            &env(&[("COUNTERSIGN_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]),
        )
        .unwrap();
        let shown: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cs.toml");
        std::fs::write(
            &file,
            "trusted_proxies = [\"192.168.1.10\", \"fd00::/8\"]\nbody_timeout_seconds = 3\n",
        )
        .unwrap();
        let s = Settings::from_sources(Some(&file), &env(&[])).unwrap();
        assert_eq!(s.trusted_proxies.len(), 2);
        assert_eq!(s.body_timeout.as_secs(), 3);
        let e = Settings::from_sources(
            None,
            &env(&[("COUNTERSIGN_TRUSTED_PROXIES", "proxy.internal")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("COUNTERSIGN_TRUSTED_PROXIES"), "{e}");
        let e = Settings::from_sources(None, &env(&[("COUNTERSIGN_BODY_TIMEOUT_SECONDS", "0")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("COUNTERSIGN_BODY_TIMEOUT_SECONDS"),
            "{e}"
        );
    }

    #[test]
    fn credentials_never_show_in_debug_output_or_messages() {
        let s = Settings::from_sources(
            None,
            &env(&[
                (
                    "COUNTERSIGN_DATABASE_URL",
                    "postgres://cs:hunter2-db@db.internal:5432/cs?sslmode=require&password=hunter3",
                ),
                (
                    "COUNTERSIGN_SMTP_URL",
                    "smtp://mailer:hunter4-smtp@mail.internal:587?tls=required",
                ),
                ("COUNTERSIGN_X_ACCESS_TOKEN", "hunter5-token"),
                ("COUNTERSIGN_X_REFRESH_TOKEN", "hunter7-refresh"),
                ("COUNTERSIGN_X_CLIENT_ID", "app-id"),
                ("COUNTERSIGN_X_CLIENT_SECRET", "hunter8-client"),
                ("COUNTERSIGN_X_WEBHOOK_SECRET", "hunter9-webhook"),
                ("COUNTERSIGN_MASTODON_BASE_URL", "https://mastodon.example"),
                ("COUNTERSIGN_MASTODON_ACCESS_TOKEN", "hunter10-mastodon"),
            ]),
        )
        .unwrap();
        let shown = format!("{s:?}");
        for secret in [
            "hunter2", "hunter3", "hunter4", "hunter5", "hunter7", "hunter8", "hunter9", "hunter10",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("postgres://cs:***@db.internal:5432/cs?sslmode=require&password=***"),
            "{shown}"
        );
        assert!(
            shown.contains("smtp://mailer:***@mail.internal:587?tls=required"),
            "{shown}"
        );
        let e = Settings::from_sources(
            None,
            &env(&[("COUNTERSIGN_SMTP_URL", "smpt://u:hunter6@h")]),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter6"), "{e}");
        assert_eq!(
            scrub(
                "auth failed for hunter2-db",
                &url_secrets("postgres://cs:hunter2-db@db/cs")
            ),
            "auth failed for ***"
        );
        assert_eq!(
            redact_url("sqlite://countersign.db"),
            "sqlite://countersign.db"
        );
        assert_eq!(redact_url("postgres://cs@db/cs"), "postgres://cs@db/cs");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cs.toml");
        std::fs::write(&file, "database_url = \"sqlite://from-file.db\"\nsession_hours = 3\nbind = \"127.0.0.1:9000\"\n").unwrap();
        let s = Settings::from_sources(Some(&file), &env(&[("COUNTERSIGN_BIND", "0.0.0.0:7000")]))
            .unwrap();
        assert_eq!(s.database_url, "sqlite://from-file.db");
        assert_eq!(s.session_hours, 3);
        assert_eq!(s.bind.to_string(), "0.0.0.0:7000");
        assert_eq!(s.key_file, PathBuf::from("from-file.key"));
    }

    #[test]
    fn a_bad_value_names_the_setting() {
        let e = Settings::from_sources(None, &env(&[("COUNTERSIGN_SESSION_HOURS", "soon")]))
            .unwrap_err();
        assert!(e.to_string().contains("COUNTERSIGN_SESSION_HOURS"), "{e}");
        let e = Settings::from_sources(None, &env(&[("COUNTERSIGN_DATABASE_URL", "mysql://x")]))
            .unwrap_err();
        assert!(e.to_string().contains("COUNTERSIGN_DATABASE_URL"), "{e}");
        let e =
            Settings::from_sources(None, &env(&[("COUNTERSIGN_BIND", "localhost")])).unwrap_err();
        assert!(e.to_string().contains("COUNTERSIGN_BIND"), "{e}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cs.toml");
        std::fs::write(&file, "databse_url = \"sqlite://x.db\"\n").unwrap();
        let e = Settings::from_sources(Some(&file), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("databse_url"), "{e}");
    }

    #[test]
    fn a_broken_settings_file_is_named_by_line_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("countersign.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:8080\"\nx_access_token = \"hunter11-secret\n",
        )
        .unwrap();
        let e = Settings::from_sources(Some(&file), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("hunter11"), "{e}");
    }
}
