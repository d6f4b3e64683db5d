//! The `log` channel: used when no X account is configured. It appends each reply as one
//! JSON line, `{"post_id", "draft_id", "in_reply_to", "text", "at"}`, to the file of
//! `COUNTERSIGN_POST_LOG` (spec/api.md "Running"), and syncs it to disk before answering.

use super::{Channel, ChannelError, OutgoingReply, PostReceipt};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Mutex;

pub struct LogChannel {
    path: PathBuf,
    /// One writer at a time within this process, so lines never interleave.
    lock: Mutex<()>,
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

impl LogChannel {
    pub fn new(path: PathBuf) -> Self {
        LogChannel {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The post already logged for this draft, if any (read on retries only).
    fn find(&self, draft_id: &str) -> Result<Option<LoggedPost>, ChannelError> {
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
    fn name(&self) -> &'static str {
        "log"
    }

    fn post(&self, reply: &OutgoingReply) -> Result<PostReceipt, ChannelError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if reply.is_retry {
            if let Some(done) = self.find(&reply.draft_id)? {
                return Ok(PostReceipt {
                    post_id: done.post_id,
                });
            }
        }
        let post = LoggedPost {
            post_id: uuid::Uuid::now_v7().to_string(),
            draft_id: reply.draft_id.clone(),
            in_reply_to: reply.in_reply_to.clone(),
            text: reply.text.clone(),
            at: crate::audit::entry::format_at(chrono::Utc::now()),
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
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(PostReceipt {
            post_id: post.post_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(draft: &str, retry: bool) -> OutgoingReply {
        OutgoingReply {
            idempotency_key: format!("job-{draft}"),
            draft_id: draft.into(),
            in_reply_to: "1234".into(),
            text: "Thanks!".into(),
            is_retry: retry,
        }
    }

    #[test]
    fn a_retry_returns_the_post_already_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/posted.jsonl");
        let ch = LogChannel::new(path.clone());
        let first = ch.post(&reply("d1", false)).unwrap();
        let again = ch.post(&reply("d1", true)).unwrap();
        assert_eq!(first, again);
        ch.post(&reply("d2", true)).unwrap();
        let lines: Vec<LoggedPost> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].in_reply_to, "1234");
    }
}
