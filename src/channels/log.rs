//! The `log` channel: replies to `log` messages, and to every message when no network
//! account is configured (the quick start). It appends each reply as one JSON line,
//! `{"post_id", "draft_id", "in_reply_to", "text", "at"}`, to the file of
//! `COUNTERSIGN_POST_LOG` (spec/api.md "Running"), and syncs it to disk before answering.
//!
//! Idempotency: on a retry it first looks for the draft's line in the file and returns that
//! post. This holds across instances only if they all append to the same file, so the
//! file's identity (machine, device, inode) is recorded in the database at its first use;
//! an instance whose file is another one does not post on this channel (its worker leaves
//! those jobs to an instance that has the file) and says so. Every instance reads the
//! recorded identity again before it looks for work and before each post, so moving the
//! log to another file (`countersign post-log adopt`, [`crate::app::post_log`]) takes effect
//! on running instances without a restart.

use super::{Channel, ChannelError, Network, OutgoingReply, PostReceipt};
use crate::app::clock::Clock;
use crate::db::Db;
use crate::domain::ids::DraftId;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Where the file's identity is kept in `channel_state`.
const STATE_KEY: &str = "file";

pub struct LogChannel {
    path: PathBuf,
    /// One writer at a time within this process, so lines never interleave.
    lock: Mutex<()>,
    /// This instance's file.
    mine: FileIdentity,
    /// Where the channel's file is recorded; `None`: not checked (tools and tests).
    db: Option<Db>,
    /// Whether `path` was the recorded file when last looked at, so that a change is logged
    /// once rather than at every look.
    recorded: AtomicBool,
    clock: Clock,
}

/// One line of the post log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedPost {
    pub post_id: String,
    pub draft_id: String,
    pub in_reply_to: String,
    pub text: String,
    pub at: String,
}

/// What identifies the post log across instances.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileIdentity {
    pub machine: String,
    device: u64,
    inode: u64,
    /// For messages only: the same file may be reached by other paths.
    pub path: String,
}

impl FileIdentity {
    fn same_file(&self, other: &FileIdentity) -> bool {
        (&self.machine, self.device, self.inode) == (&other.machine, other.device, other.inode)
    }
}

/// The identity of the file the database records as the log channel's, if any.
///
/// Errors: the database cannot be read; the stored value is not an identity.
pub fn recorded_identity(conn: &mut crate::db::DbConn) -> Result<Option<FileIdentity>> {
    crate::db::channels::get(conn, Network::Log.as_str(), STATE_KEY)?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Error::Internal(format!("the recorded post log identity: {e}")))
        })
        .transpose()
}

/// Records `identity` as the log channel's file, replacing the one recorded.
pub fn record_identity(
    conn: &mut crate::db::DbConn,
    identity: &FileIdentity,
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let text = serde_json::to_string(identity)?;
    crate::db::channels::put(conn, Network::Log.as_str(), STATE_KEY, &text, now)
}

const NOT_RECORDED: &str = "this instance's post log is not the file this database's log \
    channel posts to: it will not post replies on the log channel (an instance with that file \
    will). Point COUNTERSIGN_POST_LOG at the recorded file, on a disk every instance shares, \
    or, if the file has moved for good, run `countersign post-log adopt` with the new one";

/// This machine's id (systemd's machine-id, else the host name).
fn machine_id() -> String {
    [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
    ]
    .iter()
    .find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .unwrap_or_else(|| "unknown".into())
}

/// Creates the file (and its folder) if missing, and reads its identity.
///
/// Errors: [`Error::Unavailable`] when the file cannot be created or read.
fn identify(path: &Path) -> Result<FileIdentity> {
    identify_io(path)
        .map_err(|e| Error::Unavailable(format!("the post log {}: {e}", path.display())))
}

fn identify_io(path: &Path) -> std::io::Result<FileIdentity> {
    use std::os::unix::fs::MetadataExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    file.sync_all()?;
    let meta = file.metadata()?;
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(FileIdentity {
        machine: machine_id(),
        device: meta.dev(),
        inode: meta.ino(),
        path: shown.display().to_string(),
    })
}

impl LogChannel {
    /// Opens the post log at `path`, recording it in the database as the log channel's file
    /// if none is recorded yet.
    ///
    /// Errors: the file cannot be created or read; the database cannot be reached.
    pub fn open(path: PathBuf, db: &Db, clock: &Clock) -> Result<LogChannel> {
        let mine = identify(&path)?;
        let text = serde_json::to_string(&mine)?;
        let now = clock.now().naive_utc();
        let stored = crate::db::channels::insert_if_absent(
            &mut *db.conn()?,
            Network::Log.as_str(),
            STATE_KEY,
            &text,
            now,
        )?;
        let recorded: FileIdentity = serde_json::from_str(&stored)
            .map_err(|e| Error::Internal(format!("the recorded post log identity: {e}")))?;
        let same = recorded.same_file(&mine);
        if !same {
            tracing::error!(post_log = %mine.path, recorded = %recorded.path,
                recorded_machine = %recorded.machine, "{NOT_RECORDED}");
        }
        Ok(LogChannel {
            path,
            lock: Mutex::new(()),
            mine,
            db: Some(db.clone()),
            recorded: AtomicBool::new(same),
            clock: clock.clone(),
        })
    }

    /// A log channel on `path` that is not checked against a database (tools and tests).
    ///
    /// Errors: the file cannot be created or read.
    pub fn unrecorded(path: PathBuf) -> Result<LogChannel> {
        Ok(LogChannel {
            mine: identify(&path)?,
            path,
            lock: Mutex::new(()),
            db: None,
            recorded: AtomicBool::new(true),
            clock: Clock::system(),
        })
    }

    /// Whether this instance's file is, now, the one the database records. Reads the
    /// database; fails closed (`false`) when it cannot. Logs a change once.
    fn is_recorded_file(&self) -> bool {
        let Some(db) = &self.db else { return true };
        let now = match db.conn().and_then(|mut c| recorded_identity(&mut c)) {
            Ok(Some(recorded)) => recorded.same_file(&self.mine),
            // Never recorded (the row was removed by hand): ours, unless another instance
            // recorded its own first, as at a first start.
            Ok(None) => db
                .conn()
                .and_then(|mut c| {
                    let text = serde_json::to_string(&self.mine)?;
                    let stored = crate::db::channels::insert_if_absent(
                        &mut c,
                        Network::Log.as_str(),
                        STATE_KEY,
                        &text,
                        self.clock.now().naive_utc(),
                    )?;
                    Ok(serde_json::from_str::<FileIdentity>(&stored)
                        .is_ok_and(|r| r.same_file(&self.mine)))
                })
                .unwrap_or(false),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the log channel's recorded file");
                return false;
            }
        };
        let before = self.recorded.swap(now, Ordering::Relaxed);
        match (before, now) {
            (true, false) => tracing::error!(post_log = %self.mine.path, "{NOT_RECORDED}"),
            (false, true) => tracing::info!(post_log = %self.mine.path,
                "this instance's post log is now the log channel's file: it posts log replies"),
            _ => {}
        }
        now
    }

    /// The post already logged for this draft in this instance's file, if any.
    ///
    /// Errors: the file cannot be read.
    pub fn holds(
        &self,
        draft_id: DraftId,
    ) -> std::result::Result<Option<LoggedPost>, ChannelError> {
        self.find(&draft_id.to_string())
    }

    /// This instance's file.
    pub fn identity(&self) -> &FileIdentity {
        &self.mine
    }

    /// The post already logged for this draft, if any (read on retries only).
    fn find(&self, draft_id: &str) -> std::result::Result<Option<LoggedPost>, ChannelError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(ChannelError::Temporary(format!(
                    "reading {}: {e}",
                    self.path.display()
                )))
            }
        };
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| ChannelError::Temporary(e.to_string()))?;
            // A torn last line (power cut mid-write) is not a post.
            if let Ok(post) = serde_json::from_str::<LoggedPost>(&line) {
                if post.draft_id == draft_id {
                    return Ok(Some(post));
                }
            }
        }
        Ok(None)
    }
}

impl Channel for LogChannel {
    fn network(&self) -> Network {
        Network::Log
    }

    fn available(&self) -> bool {
        self.is_recorded_file()
    }

    fn post(&self, reply: &OutgoingReply) -> std::result::Result<PostReceipt, ChannelError> {
        // Read again right before writing: the file may have been moved since the claim.
        if !self.is_recorded_file() {
            // The worker does not lease these jobs; this is the guard behind that.
            return Err(ChannelError::Temporary(format!(
                "{} is not the post log this database records",
                self.path.display()
            )));
        }
        let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let draft_id = reply.draft_id.to_string();
        if reply.is_retry {
            if let Some(done) = self.find(&draft_id)? {
                // The line may still be on its way to the disk (its post syncs outside the
                // lock): it is a receipt only once it is durable.
                drop(guard);
                OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| {
                        ChannelError::Temporary(format!("syncing {}: {e}", self.path.display()))
                    })?;
                return Ok(PostReceipt {
                    post_id: done.post_id,
                    url: None,
                });
            }
        }
        let post = LoggedPost {
            post_id: uuid::Uuid::now_v7().to_string(),
            draft_id,
            in_reply_to: reply.in_reply_to.clone(),
            text: reply.text.clone(),
            at: crate::audit::entry::format_at(self.clock.now()),
        };
        let mut line =
            serde_json::to_string(&post).map_err(|e| ChannelError::Refused(e.to_string()))?;
        line.push('\n');
        let io = |e: std::io::Error| {
            ChannelError::Temporary(format!("writing {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        // One write of the whole line: appends from several processes do not interleave.
        file.write_all(line.as_bytes()).map_err(io)?;
        // The next post may look for its line (the page cache has this one): only the sync
        // is left, and posts running side by side share it. The receipt waits for it.
        drop(guard);
        file.sync_all().map_err(io)?;
        Ok(PostReceipt {
            post_id: post.post_id,
            url: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::JobId;

    fn reply(draft: DraftId, retry: bool) -> OutgoingReply {
        OutgoingReply {
            job_id: JobId::new(),
            draft_id: draft,
            in_reply_to: "1234".into(),
            text: "Thanks!".into(),
            visibility: None,
            is_retry: retry,
            since: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_retry_returns_the_post_already_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/posted.jsonl");
        let ch = LogChannel::unrecorded(path.clone()).unwrap();
        let (d1, d2) = (DraftId::new(), DraftId::new());
        let first = ch.post(&reply(d1, false)).unwrap();
        let again = ch.post(&reply(d1, true)).unwrap();
        assert_eq!(first, again);
        ch.post(&reply(d2, true)).unwrap();
        let lines: Vec<LoggedPost> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].in_reply_to, "1234");
    }

    #[test]
    fn a_file_is_known_by_its_inode_not_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let a = identify(&dir.path().join("a.jsonl")).unwrap();
        std::fs::hard_link(dir.path().join("a.jsonl"), dir.path().join("b.jsonl")).unwrap();
        let b = identify(&dir.path().join("b.jsonl")).unwrap();
        let c = identify(&dir.path().join("c.jsonl")).unwrap();
        assert!(a.same_file(&b), "two names of one file");
        assert!(!a.same_file(&c), "two files");
    }
}
