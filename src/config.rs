//! Settings (spec/api.md "Running"): defaults, then an optional TOML file, then
//! `COUNTERSIGN_*` environment variables, which win. Parsed and validated once into
//! [`Settings`]; a bad value stops the start with a message naming the setting.

use crate::db::{sqlite_path, Backend};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The validated settings every command runs with.
#[derive(Debug, Clone)]
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
    pub x_api_base: String,
    pub x_access_token: Option<String>,
    pub x_user_id: Option<String>,
    /// 0 turns polling off.
    pub x_poll_seconds: u64,
    /// The `log` channel's output file (JSON lines).
    pub post_log: PathBuf,
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
    #[error("setting {name} ({origin}): {message}")]
    Invalid {
        name: &'static str,
        origin: String,
        message: String,
    },
}

/// Every setting's name without the `COUNTERSIGN_` prefix, lower case (the TOML key).
const KEYS: [&str; 11] = [
    "database_url",
    "bind",
    "policies",
    "key_file",
    "session_hours",
    "smtp_url",
    "x_api_base",
    "x_access_token",
    "x_user_id",
    "x_poll_seconds",
    "post_log",
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
    x_user_id: Option<String>,
    x_poll_seconds: Option<toml::Value>,
    post_log: Option<String>,
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
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.into(),
                source,
            })?;
            let parsed: FileSettings = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.into(),
                message: e.to_string(),
            })?;
            let origin = format!("in {}", path.display());
            let as_text = |v: toml::Value| match v {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            let from_file = [
                ("database_url", parsed.database_url),
                ("bind", parsed.bind),
                ("policies", parsed.policies),
                ("key_file", parsed.key_file),
                ("session_hours", parsed.session_hours.map(as_text)),
                ("smtp_url", parsed.smtp_url),
                ("x_api_base", parsed.x_api_base),
                ("x_access_token", parsed.x_access_token),
                ("x_user_id", parsed.x_user_id),
                ("x_poll_seconds", parsed.x_poll_seconds.map(as_text)),
                ("post_log", parsed.post_log),
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
                format!("{smtp_url:?} must be smtp://host:port or file://DIR"),
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
        let x_access_token = non_empty("x_access_token");
        let x_user_id = non_empty("x_user_id");

        let (poll, origin) = get("x_poll_seconds").unwrap_or(("60", "default"));
        let x_poll_seconds: u64 = poll.trim().parse().map_err(|_| {
            invalid(
                "COUNTERSIGN_X_POLL_SECONDS",
                origin,
                format!("{poll:?} is not a whole number of seconds"),
            )
        })?;

        let post_log = PathBuf::from(get("post_log").map(|(v, _)| v).unwrap_or("posted.jsonl"));

        Ok(Settings {
            database_url: database_url.to_string(),
            bind,
            policies,
            key_file,
            session_hours,
            smtp_url: smtp_url.to_string(),
            x_api_base: x_api_base.trim_end_matches('/').to_string(),
            x_access_token,
            x_user_id,
            x_poll_seconds,
            post_log,
        })
    }
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
        assert_eq!(s.x_api_base, "https://api.x.com");
        assert_eq!(s.x_access_token, None);
        assert_eq!(s.x_poll_seconds, 60);
        assert_eq!(s.post_log, PathBuf::from("posted.jsonl"));
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
}
