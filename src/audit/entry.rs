//! Audit entries: the body is RFC 8785 (JSON Canonicalization Scheme) JSON of
//! `{seq, at, actor, action, subject, data}`, stored verbatim and hashed as an RFC 6962 leaf.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who did it: a user, or the service itself (workers, start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(crate::domain::ids::UserId),
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => id.fmt(f),
            Actor::System => f.write_str("system"),
        }
    }
}

/// The fields of an entry's body (spec/api.md "Audit log").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryBody {
    pub seq: i64,
    /// UTC, RFC 3339 with microseconds.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub data: serde_json::Value,
}

/// The canonical (RFC 8785) bytes of an entry's body, as stored and hashed.
///
/// Errors only if `data` holds a number JCS cannot represent (NaN or infinity can't occur
/// in a `serde_json::Value`, so in practice never).
pub fn entry_body(
    seq: i64,
    at: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    subject: Option<&str>,
    data: &serde_json::Value,
) -> Result<String, serde_json::Error> {
    let body = EntryBody {
        seq,
        at: format_at(at),
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.map(str::to_string),
        data: data.clone(),
    };
    serde_json_canonicalizer::to_string(&body)
}

/// The entry's time as it appears in the body: RFC 3339, UTC, microseconds, `Z`.
pub fn format_at(at: DateTime<Utc>) -> String {
    crate::domain::time::format_utc(at)
}

/// `SHA-256(0x00 || body)` (RFC 6962 section 2.1).
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(body);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn body_is_canonical_json_with_sorted_keys() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let body = entry_body(
            7,
            at,
            &Actor::System,
            "post.succeeded",
            Some("abc"),
            &json!({"z": 1, "a": "é"}),
        )
        .unwrap();
        assert_eq!(
            body,
            r#"{"action":"post.succeeded","actor":"system","at":"2026-11-29T15:00:00.000000Z","data":{"a":"é","z":1},"seq":7,"subject":"abc"}"#
        );
        let parsed: EntryBody = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.seq, 7);
    }

    #[test]
    fn leaf_hash_prefixes_zero_byte() {
        // SHA-256 of the single byte 0x00: the leaf hash of an empty body.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
