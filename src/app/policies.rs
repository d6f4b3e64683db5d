//! Policy sets coming into force, recorded in the audit log (spec/audit.md "Policy
//! versions"): each file's name, SHA-256 and text, so the rules a reply was checked under
//! can be read back from the log years later; and the preview of a proposed set (what it
//! would judge otherwise), which a reload records too.

use super::clock::Clock;
use super::Caller;
use crate::audit::action::PolicyFileRecord;
use crate::audit::{ActionName, Actor, AuditAction};
use crate::db::{self, write_tx, DbConn};
use crate::domain::roles::Permission;
use crate::error::Error;
use crate::error::Result;
use crate::policy::preview::{self, Preview, Sample};
use crate::policy::PolicySet;
use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

/// How far back a preview looks unless told otherwise, and what a reload's preview covers.
pub const DEFAULT_PREVIEW_DAYS: i64 = 30;

fn activation(set: &PolicySet, preview: Option<Preview>) -> AuditAction {
    AuditAction::PolicyActivated {
        preview: preview.map(Preview::summary),
        policy_version: set.version().to_string(),
        files: set
            .texts()
            .iter()
            .map(|(name, text)| PolicyFileRecord {
                name: name.clone(),
                sha256: hex::encode(Sha256::digest(text.as_bytes())),
                text: text.clone(),
            })
            .collect(),
    }
}

/// Records `policy.activated` for `set` replacing `old` (on every successful reload), with
/// the preview of the change over the last [`DEFAULT_PREVIEW_DAYS`] days (counts and rules,
/// no reply texts).
pub fn record_activation(
    conn: &mut DbConn,
    clock: &Clock,
    actor: &Actor,
    old: &PolicySet,
    set: &PolicySet,
) -> Result<()> {
    let now = clock.now().naive_utc();
    let since = now - chrono::Duration::days(DEFAULT_PREVIEW_DAYS);
    let preview = preview_of(conn, old, set, since)?;
    write_tx(conn, |conn| {
        db::audit::append(conn, now, actor, None, &activation(set, Some(preview)))?;
        Ok(())
    })
}

/// The draft revisions written since `since`, as a preview checks them.
pub fn samples_since(conn: &mut DbConn, since: NaiveDateTime) -> Result<Vec<Sample>> {
    Ok(db::drafts::revisions_since(conn, since)?
        .into_iter()
        .map(|r| {
            // As the drafts themselves are checked.
            let (length_rule, mention) = super::drafts::reply_context(&r.channel, &r.author_handle);
            let mention = mention.map(str::to_string);
            Sample {
                draft_id: r.draft_id,
                revision: r.revision,
                text: r.text,
                length_rule,
                mention,
            }
        })
        .collect())
}

/// What `proposed` would judge otherwise than `current`, over the revisions since `since`.
pub fn preview_of(
    conn: &mut DbConn,
    current: &PolicySet,
    proposed: &PolicySet,
    since: NaiveDateTime,
) -> Result<Preview> {
    let samples = samples_since(conn, since)?;
    Ok(preview::compare(current, proposed, &samples))
}

/// `POST /policies/preview`: the set in force against the proposed `files` (name, text),
/// over the revisions since `since`.
///
/// Errors: 403 for anyone but admins and auditors; 422 `policy_invalid` naming file and line
/// when the proposed files do not load.
pub fn preview_files(
    ctx: &super::Context,
    conn: &mut DbConn,
    caller: &Caller,
    files: Vec<(String, String)>,
    since: NaiveDateTime,
) -> Result<Preview> {
    caller.require(Permission::ReadPolicies)?;
    let proposed = PolicySet::from_files(files).map_err(Error::PolicyInvalid)?;
    preview_of(conn, &ctx.policies.current(), &proposed, since)
}

/// The longest period a preview reads (every revision's text is held in memory).
pub const MAX_PREVIEW_DAYS: i64 = 366;

/// Reads how far back a preview looks: `30d`, `12h`, `90m`, or an RFC 3339 time, at most
/// [`MAX_PREVIEW_DAYS`] back.
///
/// Errors: 400 naming the value.
pub fn parse_since(spec: &str, now: NaiveDateTime) -> Result<NaiveDateTime> {
    let bad = || {
        Error::BadRequest(format!(
            "since is a duration such as 30d, 12h or 90m, or an RFC 3339 time, at most \
             {MAX_PREVIEW_DAYS} days back: {:?}",
            spec.chars().take(40).collect::<String>()
        ))
    };
    let spec = spec.trim();
    if let Some(unit) = spec.chars().last().filter(|c| matches!(c, 'd' | 'h' | 'm')) {
        let n: i64 = spec[..spec.len() - 1].parse().map_err(|_| bad())?;
        let days = match unit {
            'd' => n,
            'h' => n / 24,
            _ => n / (24 * 60),
        };
        if n < 0 || days > MAX_PREVIEW_DAYS {
            return Err(bad());
        }
        let span = match unit {
            'd' => chrono::Duration::days(n),
            'h' => chrono::Duration::hours(n),
            _ => chrono::Duration::minutes(n),
        };
        return Ok(now - span);
    }
    let at = crate::domain::time::ApiTime::parse(spec)
        .map(|t| t.utc().naive_utc())
        .map_err(|_| bad())?;
    if now - at > chrono::Duration::days(MAX_PREVIEW_DAYS) {
        return Err(bad());
    }
    Ok(at)
}

/// At start: records `policy.activated` unless the last one recorded is this version.
pub fn record_if_new(conn: &mut DbConn, clock: &Clock, set: &PolicySet) -> Result<bool> {
    write_tx(conn, |conn| {
        let last = db::audit::last_of_action(conn, ActionName::PolicyActivated)?;
        let same = last
            .as_ref()
            .and_then(|b| b.data.get("policy_version")?.as_str())
            == Some(set.version());
        if same {
            return Ok(false);
        }
        db::audit::append(
            conn,
            clock.now().naive_utc(),
            &Actor::System,
            None,
            &activation(set, None),
        )?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_durations_and_times() {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_opt(12, 0, 0)
            .unwrap();
        assert_eq!(
            parse_since("30d", now).unwrap(),
            now - chrono::Duration::days(30)
        );
        assert_eq!(
            parse_since("12h", now).unwrap(),
            now - chrono::Duration::hours(12)
        );
        assert_eq!(
            parse_since("90m", now).unwrap(),
            now - chrono::Duration::minutes(90)
        );
        assert_eq!(
            parse_since("2026-12-01T00:00:00Z", now).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        );
        for bad in [
            "",
            "d",
            "-1d",
            "30",
            "30w",
            "soon",
            "99999999d",
            "367d",
            "2000-01-01T00:00:00Z",
        ] {
            assert!(parse_since(bad, now).is_err(), "{bad:?}");
        }
    }
}
