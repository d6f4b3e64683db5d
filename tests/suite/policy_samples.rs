//! Every case of shared/corpus/sample.jsonl through the shipped policies.

use std::path::Path;

use countersign::policy::{PolicySet, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    id: String,
    text: String,
    verdict: Verdict,
    must: Vec<String>,
    must_not: Vec<String>,
}

fn shipped() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    match PolicySet::load(&dir) {
        Ok(p) => p,
        Err(e) => panic!("shipped policies must load:\n{e}"),
    }
}

#[test]
fn every_sample_case_gets_its_verdict_and_categories() {
    let set = shipped();
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/corpus/sample.jsonl"
    ))
    .expect("sample.jsonl is readable");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let case: Case = serde_json::from_str(line).expect("valid sample line");
        count += 1;
        let report = set.check(&case.text);
        let mut problems = Vec::new();
        if report.verdict != case.verdict {
            problems.push(format!(
                "verdict {:?}, want {:?}",
                report.verdict, case.verdict
            ));
        }
        for c in &case.must {
            if !report.has_category(c) {
                problems.push(format!("missing category {c}"));
            }
        }
        for c in &case.must_not {
            if report.has_category(c) {
                problems.push(format!("unwanted category {c}"));
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {} -- {:?}",
                case.id,
                problems.join("; "),
                report.findings
            ));
        }
    }
    assert!(count >= 28, "sample.jsonl has its cases");
    assert!(
        failures.is_empty(),
        "{} of {count} sample cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{count} of {count} sample cases right");
}

#[test]
fn report_json_has_the_contract_shape() {
    let set = shipped();
    let report = set.check("The payment from 4012 8888 8888 1881 failed.");
    let v = serde_json::to_value(&report).expect("report serialises");
    assert!(v.get("id").is_none(), "no id when checking one draft");
    assert_eq!(v["verdict"], "block");
    assert_eq!(v["weighted_length"], 44);
    assert_eq!(v["policy_version"].as_str().map(str::len), Some(64));
    let f = &v["findings"][0];
    assert_eq!(f["rule"], "pii.card.luhn");
    assert_eq!(f["category"], "pii.card");
    assert_eq!(f["severity"], "block");
    assert_eq!(f["start"], 17);
    assert_eq!(f["end"], 36);
    assert!(f["message"].is_string());
    // and it reads back
    let back: countersign::policy::CheckReport =
        serde_json::from_value(v).expect("report deserialises");
    assert_eq!(back, report);
}

#[test]
fn every_category_of_the_contract_is_covered_with_its_default_severity() {
    use countersign::policy::Severity;
    let set = shipped();
    let probes = [
        ("pii.card", Severity::Block, "card 4012 8888 8888 1881"),
        ("pii.ssn", Severity::Block, "SSN 372-41-5286"),
        (
            "pii.iban",
            Severity::Block,
            "FR14 2004 1010 0505 0001 3M02 606",
        ),
        ("pii.email", Severity::Block, "mail jo@example.net"),
        ("pii.phone", Severity::Block, "call 020 7946 0321"),
        (
            "credentials",
            Severity::Block,
            "Please send us your password",
        ),
        ("profanity", Severity::Block, "this is shit"),
        ("length", Severity::Block, &"a".repeat(281)),
        ("promise", Severity::Escalate, "guaranteed"),
        ("liability", Severity::Escalate, "It was our fault."),
        (
            "financial_advice",
            Severity::Escalate,
            "You should invest your savings in our fund.",
        ),
        ("health", Severity::Escalate, "Your test results are in."),
        ("disclosure", Severity::Escalate, "Loans at 7.9% APR"),
    ];
    for (cat, sev, text) in probes {
        let r = set.check(text);
        let f = r.findings.iter().find(|f| f.category == cat);
        match f {
            Some(f) => assert_eq!(f.severity, sev, "{cat}"),
            None => panic!("no {cat} finding for {text:?}: {:?}", r.findings),
        }
    }
}
