//! Moving the `log` channel's file: `countersign post-log adopt`.
//!
//! The log channel keeps exactly once across instances by recording which file it appends
//! to (`channels::log`). When that file moves for good (a restore on another machine, a new
//! disk, a rotation), no instance has the recorded file and log replies wait until their
//! approval expires. Adopting records this instance's file instead; running instances see
//! it before their next look for work.
//!
//! A reply that an attempt has started on may already be a line in the old file, and the
//! new file's retry would not see it and log it again. So adopting is refused while such a
//! reply is missing from the new file: copy the old file's lines into it first (or let an
//! instance that has the old file finish those jobs).

use super::posting::PostReply;
use crate::app::clock::Clock;
use crate::app::jobs::Job;
use crate::channels::log::{self, FileIdentity, LogChannel};
use crate::channels::Channels;
use crate::config::Settings;
use crate::db::Db;
use crate::error::{Error, Result};

/// What adopting did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// The file was already the recorded one.
    AlreadyRecorded(FileIdentity),
    /// The file is now recorded; `previous` is the one it replaces.
    Adopted {
        file: FileIdentity,
        previous: FileIdentity,
    },
}

/// Records `settings.post_log` as the log channel's file (created if missing).
///
/// Errors: [`Error::Conflict`] naming each reply that an attempt started on and that the new
/// file does not hold (nothing changes); [`Error::Unavailable`] when the file or the
/// database cannot be reached.
pub fn adopt(settings: &Settings, db: &Db, clock: &Clock) -> Result<Adoption> {
    // The registry decides which networks' replies go to the log channel, as in `serve`;
    // it also records the file when none is recorded yet.
    let channels = Channels::from_settings(settings, db, clock)?;
    let new = LogChannel::unrecorded(settings.post_log.clone())?;
    // Asked before this function takes its connection: the answer reads the database too.
    if channels.unavailable().is_empty() {
        return Ok(Adoption::AlreadyRecorded(new.identity().clone()));
    }
    let mut conn = db.conn()?;
    let previous = log::recorded_identity(&mut conn)?
        .ok_or_else(|| Error::Internal("no post log is recorded".into()))?;
    let networks: Vec<&str> = channels
        .routed_to_log()
        .into_iter()
        .map(|n| n.as_str())
        .collect();
    let mut missing = Vec::new();
    for job in crate::db::jobs::started(&mut conn, PostReply::KIND, &networks)? {
        let reply: PostReply = serde_json::from_str(&job.payload)
            .map_err(|e| Error::Internal(format!("post job {}: {e}", job.id)))?;
        let held = new
            .holds(reply.draft_id)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        if held.is_none() {
            missing.push(reply.draft_id.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(Error::Conflict(format!(
            "not adopted: {} repl{} may already be logged in the recorded file {} (machine {}) \
             and {} does not hold {}: drafts {}. Copy the recorded file's lines into the new \
             one (cat OLD >> NEW), or let an instance with the recorded file post them, then \
             adopt again",
            missing.len(),
            if missing.len() == 1 { "y" } else { "ies" },
            previous.path,
            previous.machine,
            new.identity().path,
            if missing.len() == 1 { "it" } else { "them" },
            missing.join(", ")
        )));
    }
    log::record_identity(&mut conn, new.identity(), clock.now().naive_utc())?;
    tracing::info!(post_log = %new.identity().path, previous = %previous.path,
        "the log channel's file is adopted");
    Ok(Adoption::Adopted {
        file: new.identity().clone(),
        previous,
    })
}
