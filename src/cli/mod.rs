//! The command line (spec/api.md "Running", spec/checks.md "The check command",
//! spec/audit.md "Verify and export").

mod check;

use crate::app;
use crate::audit::Actor;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::roles::Role;
use crate::policy::PolicySet;
use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "countersign",
    version,
    about = "Safe public replies to customers: checks, four eyes, exactly-once posting, a tamper-evident audit log"
)]
pub struct Cli {
    /// Settings file (TOML); COUNTERSIGN_* environment variables win over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (migrations first). Stops cleanly on SIGTERM or Ctrl-C.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Check drafts against the policies; prints the JSON report(s).
    Check {
        /// The policies folder.
        #[arg(long, default_value = "policies", value_name = "DIR")]
        policies: PathBuf,
        /// The draft's text (else read from stdin).
        #[arg(long, conflicts_with = "jsonl")]
        text: Option<String>,
        /// Read `{"id", "text"}` lines on stdin, print one report a line.
        #[arg(long)]
        jsonl: bool,
        /// The channel's length rule (`x`, the default, or `mastodon`); a `--jsonl` line's
        /// own `"channel"` wins.
        #[arg(long, value_name = "x|mastodon")]
        channel: Option<crate::policy::LengthRule>,
    },
    /// Work with the policy set.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Reviewer groups, which review routes (policies/routes.toml) name.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The `log` channel's file (COUNTERSIGN_POST_LOG).
    #[command(subcommand)]
    PostLog(PostLogCommand),
    /// Replay real customer posts and the replies really posted to them through a running
    /// server, over HTTP, as a client would (see docs/real-replay.md).
    Replay(crate::replay::ReplayArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin (a prompt without echo on a terminal).
    Add {
        name: String,
        /// agent, reviewer, auditor or admin; repeat for several.
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<Role>,
        #[arg(long)]
        email: Option<String>,
    },
    /// Rename a user, e.g. one whose name clashes with an earlier user's (`serve` names them).
    Rename {
        /// The user's current name, as stored.
        from: String,
        /// The new name.
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Make an empty group.
    Add { name: String },
    /// Make these users (by username; reviewers) the group's members, replacing the ones
    /// it had; no usernames empties it.
    Set {
        name: String,
        usernames: Vec<String>,
    },
    /// Print every group and its members.
    List,
}

#[derive(Debug, Subcommand)]
pub enum PostLogCommand {
    /// Make this COUNTERSIGN_POST_LOG the log channel's file, after the recorded one moved
    /// for good; refused while a reply may already be a line of the old file only.
    Adopt,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load the set and run every rule's examples; exit 0 only if all pass.
    Test {
        #[arg(long, default_value = "policies", value_name = "DIR")]
        policies: PathBuf,
    },
    /// What a proposed policy set would judge otherwise than the set in force
    /// (COUNTERSIGN_POLICIES), over the draft revisions of the database since --since.
    Preview {
        /// The proposed policies folder.
        #[arg(long, value_name = "NEW_DIR")]
        policies: PathBuf,
        /// How far back: 30d, 12h, 90m, or an RFC 3339 time.
        #[arg(long, default_value = "30d")]
        since: String,
        /// Print the preview as JSON (as POST /api/v1/policies/preview answers).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole log against its stored checkpoints; exit 0 only if it is intact.
    Verify {
        /// Also replay the log and compare the service's tables with it.
        #[arg(long)]
        state: bool,
        /// The published verifier key (or @FILE) to check the checkpoints with; default: the
        /// key file's, else the one the database records.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
    },
    /// Write an export bundle (JSON lines with the checkpoint and inclusion proofs).
    Export {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Entries at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Entries before this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only entries about this id.
        #[arg(long, value_name = "ID")]
        subject: Option<String>,
    },
    /// Write the evidence bundle of one reply.
    Evidence {
        draft_id: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Verify a bundle offline (no database, no server); exit 0 only if it holds.
    VerifyBundle {
        file: PathBuf,
        /// The log's verifier key, or @FILE holding it.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: String,
        /// Print {"ok", "steps": [...]} instead of the story.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a command; the process exit code is 0 on `Ok(true)`.
pub fn run(cli: Cli) -> anyhow::Result<bool> {
    let settings = || Settings::load(cli.config.as_deref()).context("the settings are invalid");
    match cli.command {
        Command::Serve => {
            crate::telemetry::init();
            serve(settings()?)?;
            Ok(true)
        }
        Command::Migrate => {
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            let applied = db.migrate()?;
            if applied.is_empty() {
                println!("the database is up to date");
            } else {
                for m in applied {
                    println!("applied {m}");
                }
            }
            let clashes = app::users::fill_username_keys(&mut *db.conn()?)?;
            for clash in &clashes {
                println!("rename before serving (countersign user rename OLD NEW): {clash}");
            }
            Ok(clashes.is_empty())
        }
        Command::User(UserCommand::Add { name, roles, email }) => {
            let s = settings()?;
            let password = read_password()?;
            let db = Db::connect(&s.database_url, 1)?;
            db.migrate()?;
            let mut conn = db.conn()?;
            let id = app::users::create_user(
                &mut conn,
                &Actor::System,
                &name,
                &password,
                &roles,
                email.as_deref(),
            )?;
            println!("created user {name} ({id})");
            Ok(true)
        }
        Command::User(UserCommand::Rename { from, to }) => {
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            db.migrate()?;
            let mut conn = db.conn()?;
            // Fill what can be filled, so the new name is checked against every user.
            app::users::fill_username_keys(&mut conn)?;
            let id = app::users::rename_user(&mut conn, &Actor::System, &from, &to)?;
            let left = app::users::fill_username_keys(&mut conn)?;
            println!("renamed {from} to {to} ({id})");
            for clash in &left {
                println!("still to rename: {clash}");
            }
            Ok(true)
        }
        Command::Group(cmd) => {
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            db.migrate()?;
            let mut conn = db.conn()?;
            let t = app::now().naive_utc();
            let shown = match cmd {
                GroupCommand::Add { name } => {
                    vec![app::groups::create_as(&mut conn, &Actor::System, &name, t)?]
                }
                GroupCommand::Set { name, usernames } => {
                    let mut ids = Vec::new();
                    for u in &usernames {
                        let row = crate::db::users::by_exact_name(&mut conn, u)?
                            .with_context(|| format!("no user is named {u}"))?;
                        ids.push(row.id);
                    }
                    vec![app::groups::set_members_as(
                        &mut conn,
                        &Actor::System,
                        &name,
                        &ids,
                        t,
                    )?]
                }
                GroupCommand::List => app::groups::all(&mut conn)?,
            };
            for g in shown {
                let names: Vec<&str> = g.members.iter().map(|m| m.username.as_str()).collect();
                println!(
                    "{}: {}",
                    g.name,
                    if names.is_empty() {
                        "(no members)".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
            Ok(true)
        }
        Command::PostLog(PostLogCommand::Adopt) => {
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            db.migrate()?;
            let clock = app::clock::Clock::system();
            match app::post_log::adopt(&s, &db, &clock)? {
                app::post_log::Adoption::AlreadyRecorded(file) => {
                    println!("{} is already the log channel's file", file.path)
                }
                app::post_log::Adoption::Adopted { file, previous } => println!(
                    "the log channel now posts to {} (machine {}), instead of {} (machine {})",
                    file.path, file.machine, previous.path, previous.machine
                ),
            }
            Ok(true)
        }
        Command::Check {
            policies,
            text,
            jsonl,
            channel,
        } => check::run(&policies, text, jsonl, channel.unwrap_or_default()),
        Command::Policy(PolicyCommand::Test { policies }) => {
            let set = load_policies(&policies)?;
            println!(
                "{}: {} rules in {} files, all examples pass (policy_version {})",
                policies.display(),
                set.rule_count(),
                set.files().len(),
                set.version()
            );
            Ok(true)
        }
        Command::Policy(PolicyCommand::Preview {
            policies,
            since,
            json,
        }) => {
            let s = settings()?;
            let current = load_policies(&s.policies)?;
            let proposed = load_policies(&policies)?;
            let db = Db::connect(&s.database_url, 1)?;
            let mut conn = db.conn()?;
            let since = app::policies::parse_since(&since, app::now().naive_utc())?;
            let started = std::time::Instant::now();
            let preview = app::policies::preview_of(&mut conn, &current, &proposed, since)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&preview)?);
            } else {
                print!("{}", describe_preview(&preview, started.elapsed()));
            }
            Ok(true)
        }
        Command::Audit(AuditCommand::Verify { state, key }) => {
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            let mut conn = db.conn()?;
            let show_progress = std::io::stderr().is_terminal();
            let verifier = match key {
                Some(k) => Some(parse_verifier_key(k)?),
                None => app::checkpoints::verifier_for_verify(&s)?,
            };
            if verifier.is_none() {
                eprintln!(
                    "note: no key file at {} and no --key: checkpoints are checked against the \
                     verifier key the database records",
                    s.key_file.display()
                );
            }
            let bar = show_progress.then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} verified {pos} entries ({per_sec}) {elapsed}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                );
                bar
            });
            let progress = |n| {
                if let Some(bar) = &bar {
                    bar.set_position(n);
                }
            };
            let result = if state {
                app::audit::verify_with_state(&mut conn, verifier.as_ref(), progress)?
            } else {
                app::audit::verify(&mut conn, verifier.as_ref(), progress)?
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            println!("{}", serde_json::to_string(&result)?);
            Ok(result.is_intact())
        }
        Command::Audit(AuditCommand::Export {
            out,
            since,
            until,
            subject,
        }) => {
            let time = |name: &str, v: Option<String>| {
                v.map(|t| {
                    crate::domain::time::ApiTime::parse(&t)
                        .map(crate::domain::time::ApiTime::utc)
                        .map_err(|e| anyhow::anyhow!("--{name}: {e}"))
                })
                .transpose()
            };
            let filter = app::bundles::ExportFilter {
                since: time("since", since)?,
                until: time("until", until)?,
                subject,
            };
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            db.migrate()?;
            let mut conn = db.conn()?;
            let log = app::checkpoints::LogSigner::open(&mut conn, &s)?;
            let n = write_atomically(&out, |w| app::bundles::export(&mut conn, &log, &filter, w))?;
            println!("wrote {n} entries to {}", out.display());
            Ok(true)
        }
        Command::Audit(AuditCommand::Evidence { draft_id, out }) => {
            let id: crate::domain::ids::DraftId = draft_id
                .parse()
                .map_err(|e| anyhow::anyhow!("{draft_id:?}: {e}"))?;
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            db.migrate()?;
            let mut conn = db.conn()?;
            let log = app::checkpoints::LogSigner::open(&mut conn, &s)?;
            let n = write_atomically(&out, |w| app::bundles::evidence(&mut conn, &log, id, w))?;
            println!(
                "wrote the evidence of draft {draft_id} ({n} entries) to {}",
                out.display()
            );
            Ok(true)
        }
        Command::Audit(AuditCommand::VerifyBundle { file, key, json }) => {
            let verifier = parse_verifier_key(key)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the bundle {}", file.display()))?;
            let report = crate::audit::bundle::verify_bundle(&text, &verifier);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(report.ok)
        }
        Command::Replay(args) => crate::replay::run(&args, cli.config.as_deref()),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = crate::startup::Application::build(settings)?;
    let addr = app.local_addr();
    let set = app.context().policies.current();
    let verifier_key = app.context().log.verifier_key();
    tracing::info!(
        policy_version = set.version(),
        rules = set.rule_count(),
        "policies loaded"
    );
    let runtime = actix_web::rt::System::new();
    runtime.block_on(app.run(move |_| {
        // One write, errors ignored: whoever reads the address may close the pipe after it.
        let mut out = std::io::stdout().lock();
        let _ = write!(
            out,
            "countersign listening on http://{addr}\naudit log verifier key: {verifier_key}\n"
        );
        let _ = out.flush();
    }))?;
    tracing::info!("stopped");
    Ok(())
}

/// A verifier key given as text or as `@FILE`.
fn parse_verifier_key(key: String) -> anyhow::Result<crate::audit::note::NoteVerifier> {
    let text = match key.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the verifier key file {path}"))?,
        None => key,
    };
    crate::audit::note::NoteVerifier::parse(&text).map_err(|e| anyhow::anyhow!("--key: {e}"))
}

/// Writes `path` through a temporary file beside it (mode 0600: bundles hold personal
/// data), synced and renamed into place once complete, so a half-written bundle never
/// carries the name; the temporary file is removed on failure.
fn write_atomically<T>(
    path: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> crate::error::Result<T>,
) -> anyhow::Result<T> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow::anyhow!("--out needs a file name, not {}", path.display()))?;
    let partial = path.with_file_name(format!("{name}.partial"));
    let attempt = || -> anyhow::Result<T> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let result = write(&mut out)?;
        out.into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?
            .sync_all()?;
        std::fs::rename(&partial, path)
            .with_context(|| format!("cannot move the bundle to {}", path.display()))?;
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(folder)?.sync_all()?;
        }
        Ok(result)
    };
    let result = attempt();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn load_policies(dir: &std::path::Path) -> anyhow::Result<PolicySet> {
    PolicySet::load(dir)
        .map_err(|e| anyhow::anyhow!("the policy set {} is invalid:\n{e}", dir.display()))
}

/// The new user's password: a prompt without echo on a terminal, else the first line of
/// stdin.
fn read_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_string()
    };
    if password.is_empty() {
        bail!("no password given on stdin");
    }
    Ok(password)
}

/// A preview for people: counts, what moves where, which rules, and a few examples.
fn describe_preview(p: &crate::policy::preview::Preview, took: std::time::Duration) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} revisions of {} drafts checked under {} (in force) and {} (proposed) in {:.1} s",
        p.revisions,
        p.drafts,
        &p.from_version[..12.min(p.from_version.len())],
        &p.to_version[..12.min(p.to_version.len())],
        took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "{} of them would be judged otherwise (another verdict, or other rules reporting)",
        p.changed
    );
    for t in &p.transitions {
        let _ = writeln!(
            out,
            "  {} -> {}: {} revisions ({} drafts)",
            t.from.as_str(),
            t.to.as_str(),
            t.revisions,
            t.drafts
        );
    }
    if !p.rules.is_empty() {
        let _ = writeln!(
            out,
            "rules whose findings change (+ revisions it now reports, - revisions it no longer does):"
        );
        for r in &p.rules {
            let _ = writeln!(
                out,
                "  {}: +{} / -{}",
                r.rule, r.now_reported, r.no_longer_reported
            );
        }
    }
    for e in &p.examples {
        let _ = writeln!(
            out,
            "example: draft {} revision {}: {} -> {}{}{}: {:?}",
            e.draft_id,
            e.revision,
            e.from.as_str(),
            e.to.as_str(),
            if e.added.is_empty() {
                String::new()
            } else {
                format!(", now reported by {}", e.added.join(", "))
            },
            if e.removed.is_empty() {
                String::new()
            } else {
                format!(", no longer by {}", e.removed.join(", "))
            },
            e.text.chars().take(120).collect::<String>()
        );
    }
    out
}
