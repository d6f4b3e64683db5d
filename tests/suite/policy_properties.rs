//! Property tests: for any Unicode input, checking never panics and every span is in bounds,
//! non-empty and slices the original text.

use std::path::Path;
use std::sync::OnceLock;

use countersign::policy::{weighted_length, PolicySet, Verdict};
use proptest::prelude::*;

fn shipped() -> &'static PolicySet {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicySet::load(&dir).unwrap_or_else(|e| panic!("shipped policies must load:\n{e}"))
    })
}

fn check_invariants(text: &str) -> Result<(), TestCaseError> {
    let set = shipped();
    let r = set.check(text);
    let n = text.chars().count();
    let mut last_start = 0;
    for f in &r.findings {
        prop_assert!(f.start < f.end, "empty span {f:?}");
        prop_assert!(f.end <= n, "span {f:?} past the end ({n} chars)");
        prop_assert!(f.start >= last_start, "findings not sorted by start");
        last_start = f.start;
        let slice: String = text.chars().skip(f.start).take(f.end - f.start).collect();
        prop_assert_eq!(slice.chars().count(), f.end - f.start);
    }
    let worst = r
        .findings
        .iter()
        .map(|f| f.severity.verdict())
        .max()
        .unwrap_or(Verdict::Pass);
    prop_assert_eq!(r.verdict, worst);
    prop_assert_eq!(r.weighted_length, weighted_length(text));
    prop_assert_eq!(r.policy_version.as_str(), set.version());
    Ok(())
}

/// Text built from pieces that exercise the detectors and the normaliser.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("4012 8888 8888 1881".to_string()),
        Just("\u{200B}".to_string()),
        Just("４".to_string()),
        Just(" - ".to_string()),
        Just("guаranteed".to_string()),
        Just("@".to_string()),
        Just("https://t.co/x".to_string()),
        Just("example.com".to_string()),
        Just("ﬃ".to_string()),
        Just("e\u{301}".to_string()),
        Just("😷👨‍👩‍👧‍👦".to_string()),
        Just("ß".to_string()),
        Just("İ".to_string()),
        Just("(0)20 7946 0321".to_string()),
        Just("FR14 2004".to_string()),
        Just("3.9% APR".to_string()),
        "[0-9 .()+-]{1,12}",
        "\\PC{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_unicode_text_gives_sane_spans(text in "\\PC{0,300}") {
        check_invariants(&text)?;
    }

    #[test]
    fn any_chars_at_all_give_sane_spans(text in any::<String>()) {
        check_invariants(&text)?;
    }

    #[test]
    fn tricky_text_gives_sane_spans(text in tricky_text()) {
        check_invariants(&text)?;
    }
}

#[test]
fn long_random_text_completes() {
    // up to 100 KB of mixed pieces
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(3));
    let strategy = prop::collection::vec(tricky_text(), 200..400).prop_map(|v| v.concat());
    runner
        .run(&strategy, |text| check_invariants(&text))
        .expect("invariants hold on long texts");
}
