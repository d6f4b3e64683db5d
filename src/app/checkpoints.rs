//! The log's identity and its signed checkpoints (spec/audit.md "Checkpoints").
//!
//! At start the service settles who signs the log: the origin (setting, else the one the
//! database recorded, else `countersign/<host name>`), the key file (created at first start
//! with mode 0600), and the pair recorded in the database at first start. Any later start
//! with another origin or another key is refused, so no two instances can sign two different
//! checkpoints for one size. Checkpoints are made at start, every N entries and every T
//! minutes when the log grew; the checkpoint table's key (the tree size) keeps one per size.

use crate::audit::note::{Checkpoint, NoteSigner, NoteVerifier};
use crate::config::Settings;
use crate::db::audit::{LogIdentity, StoredCheckpoint};
use crate::db::{self, DbConn};
use crate::error::{Error, Result};
use base64::Engine;
use std::path::Path;
use std::sync::Arc;

/// The signer of this log's checkpoints. Cheap to clone; `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct LogSigner {
    signer: Arc<NoteSigner>,
    /// The service's clock, for the checkpoints' times and when one is due.
    clock: super::clock::Clock,
}

impl LogSigner {
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The verifier key, as published: `<origin>+<key id>+<base64 key>`.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_string()
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// Settles the log's identity against the database (see the module documentation) and
    /// returns the signer. Errors name the file or setting to fix.
    pub fn open(conn: &mut DbConn, settings: &Settings) -> Result<LogSigner> {
        let key_file = &settings.key_file;
        let signer =
            db::write_tx(conn, |conn| {
                let recorded = db::audit::log_identity(conn)?;
                let existing_key = read_key_file(key_file)?;
                let origin = settings
                    .log_origin
                    .clone()
                    .or_else(|| recorded.as_ref().map(|r| r.origin.clone()))
                    .or_else(|| existing_key.as_ref().map(|k| k.name().to_string()))
                    .unwrap_or_else(default_origin);
                if let Some(r) = &recorded {
                    if r.origin != origin {
                        return Err(Error::Conflict(format!(
                            "COUNTERSIGN_LOG_ORIGIN is {origin:?} but this log's checkpoints are \
                         signed as {:?} since its first start; the origin cannot change",
                            r.origin
                        )));
                    }
                }
                let signer =
                    match existing_key {
                        Some(key) => key,
                        None if recorded.is_some() => {
                            return Err(Error::Conflict(format!(
                        "the key file {} is missing, and this log's checkpoints are signed \
                         by {}; restore that key file (a new key would sign a second history)",
                        key_file.display(),
                        recorded.as_ref().map(|r| r.verifier_key.as_str()).unwrap_or("")
                    )))
                        }
                        None => create_key_file(key_file, &origin)?,
                    };
                if signer.name() != origin {
                    return Err(Error::Conflict(format!(
                        "the key file {} is the key of {:?}, not of this log's origin {origin:?}",
                        key_file.display(),
                        signer.name()
                    )));
                }
                let verifier = signer.verifier().to_string();
                let retention = settings.retention_years as i32;
                match recorded {
                    None => db::audit::record_log_identity(
                        conn,
                        &LogIdentity {
                            origin: origin.clone(),
                            verifier_key: verifier,
                            retention_years: retention,
                        },
                    )?,
                    Some(r) => {
                        if r.verifier_key != verifier {
                            return Err(Error::Conflict(format!(
                                "the key file {} holds the key {verifier}, but this log's \
                             checkpoints are signed by {}; use the log's own key file",
                                key_file.display(),
                                r.verifier_key
                            )));
                        }
                        if retention < r.retention_years {
                            return Err(Error::Conflict(format!(
                                "COUNTERSIGN_RETENTION_YEARS is {retention} but this log keeps \
                             entries for {} years; retention is never lowered",
                                r.retention_years
                            )));
                        }
                        if retention > r.retention_years {
                            db::audit::set_retention_years(conn, retention)?;
                        }
                    }
                }
                Ok(signer)
            })?;
        Ok(LogSigner {
            signer: Arc::new(signer),
            clock: super::clock::Clock::system(),
        })
    }

    /// The same signer, reading the time from `clock` (the service's).
    pub fn with_clock(self, clock: super::clock::Clock) -> LogSigner {
        LogSigner { clock, ..self }
    }

    /// The checkpoint of the log at its head, made and stored if none exists for that size
    /// (another instance may have made it: the stored one is returned then).
    pub fn checkpoint_head(&self, conn: &mut DbConn) -> Result<StoredCheckpoint> {
        let t = self.clock.now().naive_utc();
        db::write_tx(conn, |conn| checkpoint_in_tx(conn, &self.signer, t))
    }
}

/// Makes (or finds) the checkpoint at the head inside the caller's write transaction. A
/// stored one is returned only if it is this log's: signed by this key, over the root the
/// stored tree gives at its size. Anything else fails closed rather than being handed out.
fn checkpoint_in_tx(
    conn: &mut DbConn,
    signer: &NoteSigner,
    t: chrono::NaiveDateTime,
) -> Result<StoredCheckpoint> {
    let size = db::audit::head_size(conn)?;
    let root = db::audit::root_at(conn, size as u64)?;
    if let Some(existing) = db::audit::checkpoint_at(conn, size)? {
        let ours = Checkpoint::open(&existing.note, &signer.verifier())
            .is_ok_and(|c| c.size == size as u64 && c.root == root);
        if !ours {
            return Err(Error::Internal(format!(
                "the stored checkpoint of size {size} is not this log's; run `countersign audit verify`"
            )));
        }
        return Ok(existing);
    }
    let checkpoint = Checkpoint {
        origin: signer.name().to_string(),
        size: size as u64,
        root,
    };
    let note = signer
        .sign(&checkpoint.text())
        .map_err(|e| Error::Internal(format!("cannot sign a checkpoint: {e}")))?;
    db::audit::store_checkpoint(
        conn,
        size,
        &base64::engine::general_purpose::STANDARD.encode(root),
        &note,
        t,
    )
}

/// The key `audit verify` checks checkpoints with: the key file's, when it can be read
/// (so a database whose recorded key was swapped is caught), else the database's record.
pub fn verifier_for_verify(settings: &Settings) -> Result<Option<NoteVerifier>> {
    Ok(read_key_file(&settings.key_file)?.map(|k| k.verifier()))
}

/// `countersign/<host name>`, the default origin at a log's first start.
fn default_origin() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '+')
        .collect();
    format!(
        "countersign/{}",
        if host.is_empty() { "localhost" } else { &host }
    )
}

/// Reads the key file if it exists. Refused: a file readable or writable by others (mode
/// must be 0600 or stricter), or one that does not hold a signer key.
fn read_key_file(path: &Path) -> Result<Option<NoteSigner>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Unavailable(format!(
                "cannot read the key file {}: {e}",
                path.display()
            )))
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::Unavailable(format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Conflict(format!(
                "the key file {} can be read by others (mode {:04o}); it must be readable by \
                 the service alone: chmod 600 {}",
                path.display(),
                mode & 0o7777,
                path.display()
            )));
        }
    }
    NoteSigner::parse(text.trim_end()).map(Some).map_err(|e| {
        Error::Conflict(format!(
            "the key file {} is not a Countersign signing key ({e})",
            path.display()
        ))
    })
}

/// Creates the key file with a new key, mode 0600. Crash-safe: the key is written and
/// synced under a temporary name, then linked into place (which fails if the file appeared
/// meanwhile: that key is read instead) and the folder synced, so the file exists durably
/// before the database records its verifier key.
fn create_key_file(path: &Path, origin: &str) -> Result<NoteSigner> {
    use std::io::Write;
    let signer = NoteSigner::generate(origin)
        .map_err(|e| Error::Conflict(format!("{origin:?} cannot be the log's origin: {e}")))?;
    let cannot = |e: std::io::Error| {
        Error::Unavailable(format!(
            "cannot create the key file {}: {e}",
            path.display()
        ))
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "countersign.key".into());
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = (|| {
        let mut file = options.open(&temp)?;
        file.write_all(format!("{}\n", signer.to_private_text()).as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temp, path)
    })();
    let _ = std::fs::remove_file(&temp);
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another instance created it first: use that key.
            return read_key_file(path)?.ok_or_else(|| cannot(e));
        }
        Err(e) => return Err(cannot(e)),
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(cannot)?;
    tracing::info!(key_file = %path.display(), "created the audit signing key");
    Ok(signer)
}

/// Makes a checkpoint when the log has grown by `every` entries since the last one, or
/// when it grew at all and the last one is older than `interval`. Reads only, when nothing
/// is due. Returns the checkpoint made, if any.
pub fn checkpoint_if_due(
    conn: &mut DbConn,
    signer: &LogSigner,
    every: u64,
    interval: std::time::Duration,
) -> Result<Option<StoredCheckpoint>> {
    let head = db::audit::head_size(conn)?;
    let last = db::audit::latest_checkpoint(conn)?;
    let due = match &last {
        None => true,
        Some(cp) if cp.tree_size >= head => false,
        Some(cp) => {
            let age = signer.clock.now().naive_utc() - cp.created_at;
            (head - cp.tree_size) as u64 >= every
                || age.to_std().map(|a| a >= interval).unwrap_or(false)
        }
    };
    if due {
        signer.checkpoint_head(conn).map(Some)
    } else {
        Ok(None)
    }
}

/// Mails the latest checkpoint to the auditors (spec/mail.md) when the last such mail is
/// at least `COUNTERSIGN_CHECKPOINT_MAIL_MINUTES` old and was of an older checkpoint. Reads
/// only, when nothing is due or nobody is to be told. Instances share the decision through
/// the job queue: the mails of one checkpoint have one key per address, so two instances
/// that decide at once still send each mail once. Returns how many mails were enqueued.
pub fn mail_checkpoint_if_due(ctx: &super::Context, conn: &mut DbConn) -> Result<usize> {
    use super::jobs::Job;
    let Some(cp) = db::audit::latest_checkpoint(conn)? else {
        return Ok(0);
    };
    let t = ctx.clock.now().naive_utc();
    if let Some(last) = db::jobs::latest_of_kind(conn, super::mail::CheckpointMail::KIND)? {
        let mailed_size = last
            .unique_key
            .as_deref()
            .and_then(|k| k.strip_prefix(CHECKPOINT_MAIL_KEY))
            .and_then(|k| k.split(':').next())
            .and_then(|n| n.parse::<i64>().ok());
        let recent = (t - last.created_at)
            .to_std()
            .map(|age| age < ctx.settings.checkpoint_mail_interval)
            .unwrap_or(true);
        if recent || mailed_size >= Some(cp.tree_size) {
            return Ok(0);
        }
    }
    let to = super::notify::checkpoint_recipients(ctx, conn)?;
    if to.is_empty() {
        return Ok(0);
    }
    let key = format!("{CHECKPOINT_MAIL_KEY}{}:", cp.tree_size);
    let sent = db::write_tx(conn, |conn| {
        super::notify::checkpoint(ctx, conn, to, &cp.note, cp.tree_size, &key, t)
    })?;
    ctx.wake_workers();
    Ok(sent)
}

/// The key prefix of the checkpoint mails' jobs: `checkpoint-mail:SIZE:ADDRESS`.
const CHECKPOINT_MAIL_KEY: &str = "checkpoint-mail:";

/// The checkpointing task of `serve` (the one at start is made by `startup`): a look every
/// second, which only reads unless a checkpoint (or its mail to the auditors) is due.
pub async fn run(ctx: super::Context) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (every, interval) = (
        ctx.settings.checkpoint_every,
        ctx.settings.checkpoint_interval,
    );
    loop {
        tick.tick().await;
        let c = ctx.clone();
        let made = ctx
            .db
            .run(move |conn| {
                let made = checkpoint_if_due(conn, &c.log, every, interval)?;
                let mailed = mail_checkpoint_if_due(&c, conn)?;
                Ok((made, mailed))
            })
            .await;
        match made {
            Ok((made, mailed)) => {
                if let Some(cp) = made {
                    tracing::info!(tree_size = cp.tree_size, "checkpoint signed");
                }
                if mailed > 0 {
                    tracing::info!(mails = mailed, "checkpoint mailed to the auditors");
                }
            }
            Err(e) => tracing::warn!(error = %e, "making or mailing a checkpoint failed"),
        }
    }
}
