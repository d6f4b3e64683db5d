//! The 331 replies a professional care team really posted (shared/corpus/real/pairs.jsonl,
//! CC BY-NC-SA 4.0, see its ORIGIN.md), checked with the real-replay policies that configure
//! the brand as the organisation: none may be blocked, and few escalated.

use std::collections::BTreeMap;
use std::path::Path;

use countersign::policy::{PolicySet, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
struct Pair {
    id: String,
    reply_text: String,
}

/// Replies that rightly get a finding, with why. (None is blocked.)
const EXPECTED_ESCALATIONS: &[(&str, &str)] = &[];

fn replay_set() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/real-replay/policies");
    match PolicySet::load(&dir) {
        Ok(p) => p,
        Err(e) => panic!("real-replay policies must load:\n{e}"),
    }
}

#[test]
fn no_real_reply_is_blocked_and_few_escalate() {
    let set = replay_set();
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/real/pairs.jsonl"
    ))
    .expect("pairs.jsonl is readable");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut blocked = Vec::new();
    let mut escalated = Vec::new();
    let mut warned = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let pair: Pair = serde_json::from_str(line).expect("valid pairs line");
        let r = set.check(&pair.reply_text);
        if !r.findings.is_empty() && r.verdict == Verdict::Pass {
            warned += 1;
        }
        match r.verdict {
            Verdict::Pass => *counts.entry("pass").or_default() += 1,
            Verdict::Escalate => {
                *counts.entry("escalate").or_default() += 1;
                escalated.push((pair.id.clone(), pair.reply_text.clone(), r.findings.clone()));
            }
            Verdict::Block => {
                *counts.entry("block").or_default() += 1;
                blocked.push(format!(
                    "{}: {:?} -> {:?}",
                    pair.id, pair.reply_text, r.findings
                ));
            }
        }
    }
    let total: usize = counts.values().sum();
    eprintln!("real replies: {total} checked, {counts:?}, {warned} passed with warnings only");
    for (id, text, f) in &escalated {
        eprintln!("escalated {id}: {text:?} -> {f:?}");
    }
    assert_eq!(total, 331, "every reply of the corpus is checked");
    assert!(
        blocked.is_empty(),
        "real replies blocked:\n{}",
        blocked.join("\n")
    );
    let unexpected: Vec<_> = escalated
        .iter()
        .filter(|(id, _, _)| !EXPECTED_ESCALATIONS.iter().any(|(e, _)| e == id))
        .map(|(id, text, f)| format!("{id}: {text:?} -> {f:?}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected escalations:\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn replay_rules_are_the_shipped_rules() {
    // Only organisation.toml may differ between policies/ and the real replay's copy.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = PolicySet::load(&root.join("policies")).expect("shipped policies load");
    let replay = replay_set();
    assert_eq!(shipped.files(), replay.files());
    for f in shipped.files() {
        if f == "organisation.toml" {
            continue;
        }
        let a = std::fs::read(root.join("policies").join(f)).expect("read shipped file");
        let b = std::fs::read(root.join("examples/real-replay/policies").join(f))
            .expect("read replay file");
        assert!(
            a == b,
            "{f} differs between policies/ and examples/real-replay/policies/"
        );
    }
    assert_ne!(shipped.version(), replay.version());
}

#[test]
fn brand_contact_points_are_allowed_in_the_replay_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = PolicySet::load(&root.join("policies")).expect("shipped policies load");
    let replay = replay_set();
    for text in [
        "Please give us a call: 1-866-216-1072.",
        "Please reach out to us by calling 866-216-1072",
        "フリーダイヤル：0120-999-373へ直接ご連絡ください。",
    ] {
        assert!(
            !replay.check(text).has_category("pii.phone"),
            "replay: {text}"
        );
        assert!(
            shipped.check(text).has_category("pii.phone"),
            "shipped: {text}"
        );
    }
}
