//! `countersign check` (spec/checks.md "The check command"): one draft from `--text` or
//! stdin, or `--jsonl` lines `{"id", "text", "channel"?}` checked on every core, reports in
//! input order, each under its channel's length rule (`--channel`'s, else X's).

use crate::app::PolicyStore;
use crate::policy::{LengthRule, PolicySet};
use anyhow::Context as _;
use std::io::{BufRead, Read, Write};

pub fn run(
    policies: &std::path::Path,
    text: Option<String>,
    jsonl: bool,
    rule: LengthRule,
) -> anyhow::Result<bool> {
    let set = PolicyStore::load(policies)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .current();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if jsonl {
        let input = std::io::BufReader::with_capacity(1 << 16, std::io::stdin().lock());
        check_jsonl(&set, rule, input, &mut out)?;
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
        serde_json::to_writer_pretty(&mut out, &set.check_for(&text, rule))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(true)
}

/// Checks `{"id", "text"}` lines from `input`, writing one report a line to `out`, in input
/// order. Lines are read in chunks and each chunk is checked on every core; a line that is
/// not such an object stops the run after the reports before it, naming its number.
fn check_jsonl(
    set: &PolicySet,
    rule: LengthRule,
    mut input: impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct Line {
        #[serde(default)]
        id: Option<serde_json::Value>,
        text: String,
        #[serde(default)]
        channel: Option<String>,
    }
    // One line: its report as a JSON line, or the error that stops the run.
    let report_line = |n: usize, line: &str| -> anyhow::Result<Vec<u8>> {
        let parsed: Line = serde_json::from_str(line)
            .with_context(|| format!("stdin line {n}: not a JSON object with \"text\""))?;
        let line_rule = match &parsed.channel {
            None => rule,
            Some(c) => c
                .parse::<crate::domain::inbound::Channel>()
                .map(LengthRule::from)
                .map_err(|e| anyhow::anyhow!("stdin line {n}: {e}"))?,
        };
        let mut report = set.check_for(&parsed.text, line_rule);
        report.id = parsed.id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        });
        let mut buf = serde_json::to_vec(&report)?;
        buf.push(b'\n');
        Ok(buf)
    };
    const CHUNK: usize = 4096;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> PolicySet {
        PolicySet::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .expect("the shipped policies load")
    }

    #[test]
    fn reports_come_out_in_input_order_across_threads_and_chunks() {
        let set = shipped();
        let texts = [
            "Thanks!",
            "Your money back, guaranteed.",
            "Charged to 5105-1051-0510-5100.",
        ];
        let mut input = String::new();
        for i in 0..5000 {
            input.push_str(&serde_json::json!({"id": i, "text": texts[i % 3]}).to_string());
            input.push('\n');
            if i % 1000 == 0 {
                input.push('\n'); // blank lines are skipped
            }
        }
        let mut out = Vec::new();
        check_jsonl(&set, LengthRule::X, input.as_bytes(), &mut out).unwrap();
        let reports: Vec<serde_json::Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(reports.len(), 5000);
        for (i, r) in reports.iter().enumerate() {
            assert_eq!(r["id"], i.to_string());
            let want = ["pass", "escalate", "block"][i % 3];
            assert_eq!(r["verdict"], want, "line {i}");
        }
    }

    #[test]
    fn a_bad_line_stops_after_the_reports_before_it() {
        let set = shipped();
        let input =
            "{\"id\": \"a\", \"text\": \"Thanks!\"}\nnot json\n{\"id\": \"c\", \"text\": \"x\"}\n";
        let mut out = Vec::new();
        let err = check_jsonl(&set, LengthRule::X, input.as_bytes(), &mut out).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
    }

    #[test]
    fn each_line_is_checked_under_its_channels_length_rule() {
        let set = shipped();
        // 400 characters: over X's 280, within Mastodon's 500.
        let long = "Thanks for waiting. ".repeat(20);
        let mut input = String::new();
        for (id, channel) in [("x", Some("x")), ("m", Some("mastodon")), ("none", None)] {
            let mut line = serde_json::json!({"id": id, "text": long});
            if let Some(c) = channel {
                line["channel"] = c.into();
            }
            input.push_str(&line.to_string());
            input.push('\n');
        }
        let mut out = Vec::new();
        check_jsonl(&set, LengthRule::Mastodon, input.as_bytes(), &mut out).unwrap();
        let reports: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(reports[0]["length_rule"], "x");
        assert_eq!(reports[0]["verdict"], "block");
        assert_eq!(reports[0]["findings"][0]["rule"], "length.max");
        assert_eq!(reports[1]["length_rule"], "mastodon");
        assert_eq!(reports[1]["verdict"], "pass");
        assert_eq!(reports[1]["weighted_length"], 400);
        // No channel on the line: the command's (--channel mastodon here).
        assert_eq!(reports[2]["length_rule"], "mastodon");
        // Over 500 on Mastodon blocks under Mastodon's own rule.
        let longer = serde_json::json!({"id": "m2", "text": long.repeat(2), "channel": "mastodon"});
        let mut out = Vec::new();
        check_jsonl(
            &set,
            LengthRule::X,
            format!("{longer}\n").as_bytes(),
            &mut out,
        )
        .unwrap();
        let r: serde_json::Value = serde_json::from_slice(out.trim_ascii_end()).unwrap();
        assert_eq!(r["findings"][0]["rule"], "length.mastodon", "{r}");
        assert_eq!(r["findings"][0]["start"], 500);
    }
}
