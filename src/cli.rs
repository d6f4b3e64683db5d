//! The command line (spec/api.md "Running", spec/checks.md "The check command",
//! spec/audit.md "Verify and export").

use crate::app::{self, PolicyStore};
use crate::audit::Actor;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::roles::Role;
use crate::policy::PolicySet;
use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use std::io::{BufRead, IsTerminal, Read, Write};
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
    },
    /// Work with the policy set.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
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
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load the set and run every rule's examples; exit 0 only if all pass.
    Test {
        #[arg(long, default_value = "policies", value_name = "DIR")]
        policies: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every leaf hash and the tree root; exit 0 only if the log is intact.
    Verify,
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
            Ok(true)
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
        Command::Check {
            policies,
            text,
            jsonl,
        } => check(&policies, text, jsonl),
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
        Command::Audit(AuditCommand::Verify) => {
            let s = settings()?;
            let db = Db::connect(&s.database_url, 1)?;
            let mut conn = db.conn()?;
            let show_progress = std::io::stderr().is_terminal();
            let result = app::audit::verify(&mut conn, |n| {
                if show_progress {
                    eprint!("\rverified {n} entries");
                }
            })?;
            if show_progress {
                eprintln!();
            }
            println!("{}", serde_json::to_string(&result)?);
            Ok(result.is_intact())
        }
        Command::Replay(args) => crate::replay::run(&args, cli.config.as_deref()),
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = crate::startup::Application::build(settings)?;
    let addr = app.local_addr();
    let set = app.context().policies.current();
    tracing::info!(
        policy_version = set.version(),
        rules = set.rule_count(),
        "policies loaded"
    );
    let runtime = actix_web::rt::System::new();
    runtime.block_on(app.run(move |_| {
        println!("countersign listening on http://{addr}");
        let _ = std::io::stdout().flush();
    }))?;
    tracing::info!("stopped");
    Ok(())
}

fn load_policies(dir: &std::path::Path) -> anyhow::Result<PolicySet> {
    PolicySet::load(dir)
        .map_err(|e| anyhow::anyhow!("the policy set {} is invalid:\n{e}", dir.display()))
}

fn check(policies: &std::path::Path, text: Option<String>, jsonl: bool) -> anyhow::Result<bool> {
    let set = PolicyStore::load(policies)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .current();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if jsonl {
        #[derive(serde::Deserialize)]
        struct Line {
            #[serde(default)]
            id: Option<serde_json::Value>,
            text: String,
        }
        // One line: its report as a JSON line, or the error that stops the run.
        let report_line = |n: usize, line: &str| -> anyhow::Result<Vec<u8>> {
            let parsed: Line = serde_json::from_str(line)
                .with_context(|| format!("stdin line {n}: not a JSON object with \"text\""))?;
            let mut report = set.check(&parsed.text);
            report.id = parsed.id.map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
            let mut buf = serde_json::to_vec(&report)?;
            buf.push(b'\n');
            Ok(buf)
        };
        // Lines are read in chunks and each chunk is checked on every core; the reports are
        // written in input order, and a bad line stops the run after the reports before it,
        // exactly as one line at a time would.
        const CHUNK: usize = 4096;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
        let mut number = 0usize;
        let mut chunk: Vec<(usize, String)> = Vec::with_capacity(CHUNK);
        let mut read_error = None;
        loop {
            chunk.clear();
            while chunk.len() < CHUNK {
                let mut line = String::new();
                match input.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        read_error = Some(anyhow::Error::new(e).context("cannot read stdin"));
                        break;
                    }
                }
                number += 1;
                if line.ends_with('\n') {
                    line.pop();
                    if line.ends_with('\r') {
                        line.pop();
                    }
                }
                if !line.trim().is_empty() {
                    chunk.push((number, line));
                }
            }
            let done = chunk.len() < CHUNK;
            let per_worker = chunk.len().div_ceil(workers).max(1);
            let results: Vec<anyhow::Result<Vec<u8>>> = if workers < 2 || chunk.len() < 64 {
                chunk.iter().map(|(n, l)| report_line(*n, l)).collect()
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .chunks(per_worker)
                        .map(|part| {
                            scope.spawn(|| {
                                part.iter()
                                    .map(|(n, l)| report_line(*n, l))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .flat_map(|h| match h.join() {
                            Ok(r) => r,
                            Err(_) => vec![Err(anyhow::anyhow!("a checking thread failed"))],
                        })
                        .collect()
                })
            };
            for r in results {
                out.write_all(&r?)?;
            }
            if let Some(e) = read_error {
                return Err(e);
            }
            if done {
                break;
            }
        }
    } else {
        let text = match text {
            Some(t) => t,
            None => {
                let mut buf = String::new();
                std::io::stdin()
                    .read_to_string(&mut buf)
                    .context("cannot read stdin")?;
                buf.strip_suffix('\n')
                    .map(|s| s.strip_suffix('\r').unwrap_or(s).to_string())
                    .unwrap_or(buf)
            }
        };
        serde_json::to_writer_pretty(&mut out, &set.check(&text))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(true)
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
