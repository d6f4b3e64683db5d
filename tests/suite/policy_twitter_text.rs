//! twitter-text conformance: every case of the sections of validate.yml named by
//! shared/conformance/twitter-text/ORIGIN.md must give the same weightedLength.

use countersign::policy::weighted_length;
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    #[serde(rename = "weightedLength")]
    weighted_length: usize,
}

#[derive(Deserialize)]
struct Case {
    description: String,
    text: String,
    expected: Expected,
}

fn section(name: &str) -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/twitter-text/validate.yml"
    );
    let data = std::fs::read_to_string(path).expect("validate.yml is readable");
    let doc: serde_norway::Value = serde_norway::from_str(&data).expect("validate.yml parses");
    let cases = doc["tests"][name].clone();
    serde_norway::from_value(cases).expect("section has the expected shape")
}

fn run(name: &str, min_cases: usize) {
    let cases = section(name);
    assert!(
        cases.len() >= min_cases,
        "{name}: only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for c in &cases {
        let got = weighted_length(&c.text);
        if got != c.expected.weighted_length {
            failures.push(format!(
                "{}: got {got}, want {}",
                c.description, c.expected.weighted_length
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{name}: {} of {} cases right", cases.len(), cases.len());
}

#[test]
fn weighted_tweets_with_discounted_emoji() {
    run("WeightedTweetsWithDiscountedEmojiCounterTest", 15);
}

#[test]
fn unicode_directional_markers() {
    run("UnicodeDirectionalMarkerCounterTest", 2);
}
