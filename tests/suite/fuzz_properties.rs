//! Fuzzing on the stable toolchain: arbitrary bytes and arbitrary UTF-8 thrown at every
//! parser that takes outside input (the policy loader, the settings loader, ids, times,
//! usernames, and the JSON bodies of the HTTP API). None may panic; every refusal is a typed
//! error that says what was wrong, and the API answers it as a JSON 4xx.

use crate::common::{repo_path, Backend, TestApp};
use countersign::config::{ConfigError, Settings};
use countersign::domain::ids::{DraftId, UserId};
use countersign::domain::time::{earliest, latest, ApiTime};
use countersign::domain::username::{canonical, Username};
use countersign::policy::PolicySet;
use proptest::prelude::*;
use std::collections::HashMap;

/// Text that is often almost valid: bytes, or pieces of the formats glued together.
fn noisy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..400)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::collection::vec(
            prop_oneof![
                Just("[[rule]]\n".to_string()),
                Just("id = \"x.y\"\n".to_string()),
                Just("kind = \"pattern\"\n".to_string()),
                Just("kind = \"detector\"\ndetector = \"phone\"\n".to_string()),
                Just("category = \"pii.card\"\n".to_string()),
                Just("patterns = [\"(\"]\n".to_string()),
                Just("message = \"m\"\n".to_string()),
                Just("severity = \"block\"\n".to_string()),
                Just("[examples]\nmatch = [\"a\"]\n".to_string()),
                Just("database_url = \"sqlite://\"\n".to_string()),
                Just("session_hours = -1\n".to_string()),
                Just("trusted_proxies = [\"::1\", 3]\n".to_string()),
                Just("= \n".to_string()),
                Just("\"\u{0}\"".to_string()),
                "[a-z_]{1,12} = [0-9\"a-z\\[\\]]{0,12}\n",
            ],
            0..12
        )
        .prop_map(|parts| parts.concat()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn the_policy_loader_refuses_garbage_with_the_file_named(text in noisy_text()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(repo_path("policies/organisation.toml"), dir.path().join("organisation.toml")).unwrap();
        std::fs::write(dir.path().join("fuzzed.toml"), text.as_bytes()).unwrap();
        match PolicySet::load(dir.path()) {
            Ok(set) => prop_assert!(set.rule_count() < 10_000),
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                for err in &e.errors {
                    prop_assert!(err.file.ends_with(".toml"), "{err:?}");
                    prop_assert!(!err.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn the_settings_loader_names_what_it_refuses(text in noisy_text(), value in noisy_text(), key in 0usize..28) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("settings.toml");
        std::fs::write(&file, text.as_bytes()).unwrap();
        match Settings::from_sources(Some(&file), &HashMap::new()) {
            Ok(_) => {}
            Err(ConfigError::Parse { path, message }) => {
                prop_assert_eq!(path, file.clone());
                prop_assert!(!message.is_empty());
            }
            Err(ConfigError::Invalid { name, .. }) => prop_assert!(name.starts_with("COUNTERSIGN_")),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        let names = [
            "DATABASE_URL", "BIND", "POLICIES", "KEY_FILE", "SESSION_HOURS", "SMTP_URL",
            "X_API_BASE", "X_ACCESS_TOKEN", "X_USER_ID", "X_POLL_SECONDS", "POST_LOG",
            "TRUSTED_PROXIES", "BODY_TIMEOUT_SECONDS", "KEEP_ALIVE_SECONDS",
            "MAX_CONNECTIONS_PER_CLIENT", "LOG_ORIGIN", "CHECKPOINT_EVERY",
            "CHECKPOINT_MINUTES", "RETENTION_YEARS", "CHECKPOINT_MAIL_MINUTES",
            "AUDITOR_EMAILS", "X_REFRESH_TOKEN", "X_CLIENT_ID", "X_CLIENT_SECRET",
            "X_WEBHOOK_SECRET", "MASTODON_BASE_URL", "MASTODON_ACCESS_TOKEN",
            "MASTODON_POLL_SECONDS",
        ];
        let var = format!("COUNTERSIGN_{}", names[key]);
        let env = HashMap::from([(var.clone(), value)]);
        if let Err(e) = Settings::from_sources(None, &env) {
            prop_assert!(e.to_string().contains(&var), "{e} does not name {var}");
        }
    }

    #[test]
    fn ids_parse_only_from_uuids(text in noisy_text()) {
        match text.parse::<UserId>() {
            Ok(id) => prop_assert!(uuid::Uuid::parse_str(&text).is_ok(), "{id}"),
            Err(e) => prop_assert!(e.to_string().contains("UUID")),
        }
        prop_assert_eq!(text.parse::<DraftId>().is_ok(), uuid::Uuid::parse_str(&text).is_ok());
    }

    #[test]
    fn times_parse_only_in_bounds_and_round_trip(text in noisy_text(), secs in -100_000_000_000i64..300_000_000_000i64, nanos in 0u32..1_000_000_000) {
        if let Ok(t) = ApiTime::parse(&text) {
            prop_assert!(t.utc() >= earliest() && t.utc() <= latest());
        }
        // Any instant at all, written as RFC 3339: taken exactly when in bounds.
        if let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) {
            let written = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let parsed = ApiTime::parse(&written);
            let in_bounds = t >= earliest() && t < latest() + chrono::Duration::microseconds(1);
            prop_assert_eq!(parsed.is_ok(), in_bounds, "{}", written);
            if let Ok(p) = parsed {
                let back = serde_json::to_value(p).unwrap();
                let again: ApiTime = serde_json::from_value(back).unwrap();
                prop_assert_eq!(again, p);
                prop_assert!(t - p.utc() < chrono::Duration::microseconds(1));
            }
        }
    }

    #[test]
    fn usernames_have_one_canonical_form(text in noisy_text()) {
        let once = canonical(&text);
        prop_assert_eq!(canonical(&once), once.clone(), "canonical is idempotent");
        if let Ok(name) = Username::parse(&text) {
            prop_assert_eq!(name.canonical(), once.as_str());
            prop_assert!(!name.as_str().is_empty());
        }
    }
}

/// The JSON endpoints, fed arbitrary bodies: never a 5xx, always a JSON error, and nothing
/// recorded.
#[test]
fn json_bodies_of_any_shape_get_a_json_4xx() {
    let app = TestApp::spawn(Backend::Sqlite).expect("sqlite");
    let token = app.user(
        "fuzz",
        &[
            countersign::domain::roles::Role::Agent,
            countersign::domain::roles::Role::Reviewer,
        ],
    );
    let size = app.audit_size();
    let draft = uuid::Uuid::now_v7();
    let paths = [
        "/api/v1/login".to_string(),
        "/api/v1/inbound".to_string(),
        "/api/v1/drafts".to_string(),
        format!("/api/v1/drafts/{draft}/reviews"),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let body = prop_oneof![
        noisy_text(),
        Just("{\"username\": 1, \"password\": []}".to_string()),
        Just("{\"channel\": \"x\", \"external_id\": \"e\", \"author\": {\"handle\": \"\\u0000\"}, \"text\": \"t\", \"received_at\": \"+10000-01-01T00:00:00Z\"}".to_string()),
        Just("{\"inbound_id\": \"not-a-uuid\", \"text\": \"hi\"}".to_string()),
        Just("{\"decision\": \"approve\", \"comment\": \"\", \"revision\": 18446744073709551616}".to_string()),
        Just("[".repeat(10_000)),
    ];
    runner
        .run(&(body, 0usize..paths.len()), |(body, i)| {
            let token = (i > 0).then_some(token.as_str());
            let r = app.post_raw(&paths[i], token, "application/json", &body);
            prop_assert!(
                (400..500).contains(&r.status),
                "{} {:?} -> {} {}",
                paths[i],
                body,
                r.status,
                r.text
            );
            prop_assert!(r.body["error"].is_string(), "{}", r.text);
            Ok(())
        })
        .unwrap();
    assert_eq!(app.audit_size(), size, "no garbage was recorded");
}
