//! Evasions people really use against filters are caught; innocent text is not reported.

use std::path::Path;

use countersign::policy::{PolicySet, Verdict};

fn shipped() -> PolicySet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    PolicySet::load(&dir).unwrap_or_else(|e| panic!("shipped policies must load:\n{e}"))
}

fn chars(s: &str, start: usize, end: usize) -> String {
    s.chars().skip(start).take(end - start).collect()
}

#[track_caller]
fn assert_caught(set: &PolicySet, text: &str, category: &str) {
    let r = set.check(text);
    assert!(
        r.has_category(category),
        "{category} not caught in {text:?}: {:?}",
        r.findings
    );
}

#[track_caller]
fn assert_innocent(set: &PolicySet, text: &str, category: &str) {
    let r = set.check(text);
    assert!(
        !r.has_category(category),
        "{category} wrongly reported in {text:?}: {:?}",
        r.findings
    );
}

#[test]
fn card_numbers_cannot_hide() {
    let set = shipped();
    for text in [
        "card 4012888888881881",
        "card 4012 8888 8888 1881",
        "card 4012-8888-8888-1881",
        "card 4012 - 8888 - 8888 - 1881",
        "card 4012 – 8888 – 8888 – 1881",
        "card 4012.8888.8888.1881",
        "card ４０１２ ８８８８ ８８８８ １８８１",
        "card 4\u{200B}0\u{200B}1\u{200B}2888888881881",
        "card 4012\u{2060}8888\u{FEFF}8888\u{200D}1881",
        "Amex 378282246310005",
        "Visa 4222222222222",
    ] {
        assert_caught(&set, text, "pii.card");
    }
}

#[test]
fn card_span_points_into_the_original_text() {
    let set = shipped();
    let text = "Card ４０１２\u{200B}８８８８ ８８８８ １８８１ declined";
    let r = set.check(text);
    let f = r
        .findings
        .iter()
        .find(|f| f.category == "pii.card")
        .expect("card found");
    assert_eq!(
        chars(text, f.start, f.end),
        "４０１２\u{200B}８８８８ ８８８８ １８８１"
    );
}

#[test]
fn lookalike_and_zero_width_words_are_caught() {
    let set = shipped();
    assert_caught(&set, "Your refund is guаranteed", "promise"); // Cyrillic а
    assert_caught(&set, "Your refund is GUΑRANTEED", "promise"); // Greek Α
    assert_caught(&set, "Your refund is ｇｕａｒａｎｔｅｅｄ", "promise"); // full width
    assert_caught(&set, "What a sh\u{200B}itty day", "profanity");
    assert_caught(&set, "what the f\u{200C}uck", "profanity");
    assert_caught(&set, "this is bullѕhit", "profanity"); // Cyrillic ѕ
    assert_caught(&set, "Mail m.rossi@\u{200B}example.org", "pii.email");
    assert_caught(&set, "Mail m.rossi\u{200B}@example.org", "pii.email");
    assert_caught(&set, "Mail m.rossi＠example.org", "pii.email");
    assert_caught(&set, "Please DM your pаsswоrd", "credentials");
    let text = "It's guаranteed!";
    let r = set.check(text);
    let f = &r.findings[0];
    assert_eq!(chars(text, f.start, f.end), "guаranteed");
}

#[test]
fn spaced_phone_numbers_are_caught() {
    let set = shipped();
    for text in [
        "Call 020 7946 0321",
        "Call 020-7946-0321",
        "Call +44 20 7946 0958",
        "Call +44 (0)20 7946 0958",
        "Call (212) 555-0123",
        "Call 212.555.0123",
        "Call ０２０ ７９４６ ０３２１",
        "Call 415 - 555 - 2671",
    ] {
        assert_caught(&set, text, "pii.phone");
    }
}

/// Validity follows libphonenumber's current numbering plans: an area code opened recently
/// is a number; digits that no plan allows (an Irish 068 number with two digits too many,
/// an 099 number with one) are not.
#[test]
fn phone_numbers_follow_the_numbering_plans() {
    let set = shipped();
    for text in [
        "Call me on 472-528-3110",
        "Call me on (274) 800-1477",
        "Ring +353 1 277 3787",
        "Ring +39 06 6982 1234",
    ] {
        assert_caught(&set, text, "pii.phone");
    }
    for text in ["Ring +353 687729906", "Ring +353 99715767"] {
        assert_innocent(&set, text, "pii.phone");
    }
}

#[test]
fn innocent_text_is_not_reported() {
    let set = shipped();
    for (text, cat) in [
        ("The Scunthorpe store is open.", "profanity"),
        ("The Penistone branch reopens on Monday.", "profanity"),
        ("Please pass the class assessment.", "profanity"),
        (
            "Our chat team is available 9am-5pm GMT on weekdays.",
            "pii.phone",
        ),
        ("Open 9:00-17:00, Monday to Friday.", "pii.phone"),
        ("Posted 2017-10-31 14:22:05 UTC.", "pii.phone"),
        ("Posted 2017-10-31 14:22:05 UTC.", "pii.card"),
        ("Offer runs 2017-10-31 - 2017-11-30.", "pii.card"),
        ("Offer runs 2017-10-31 - 2017-11-30.", "pii.phone"),
        ("Valid 01/11/2017-30/11/2017.", "pii.phone"),
        ("Season 2019-2020 tickets", "pii.phone"),
        ("Timestamp 1509462000000", "pii.card"),
        (
            "Tracking number 4012 8888 8888 1882 is on its way.",
            "pii.card",
        ),
        ("Your order 112-5432109-8765432 has shipped.", "pii.card"),
        ("Your order 112-5432109-8765432 has shipped.", "pii.phone"),
        ("Order #4155552671 has shipped.", "pii.phone"),
        (
            "Refunds take 5-7 business days; we're here 24/7.",
            "pii.phone",
        ),
        ("@115820 Thanks for your patience. ^KM", "pii.phone"),
        ("Case 000-45-6789 is closed.", "pii.ssn"),
        (
            "Reminder: our staff will never ask you for your PIN.",
            "credentials",
        ),
        (
            "Never share your password or one-time code with anyone.",
            "credentials",
        ),
        (
            "I'm sorry you've had to invest so much time in this!",
            "financial_advice",
        ),
        (
            "Email us at support@example.com and we'll take a look.",
            "pii.email",
        ),
        ("Ring us free on (800) 555-0100.", "pii.phone"),
        ("Prices from $4.99 at example.com", "pii.phone"),
    ] {
        assert_innocent(&set, text, cat);
    }
}

#[test]
fn clean_replies_pass() {
    let set = shipped();
    for text in [
        "Sorry about the wait, Priya. We've passed this to our delivery team and will update you here.",
        "Hi Hollis!\n\nDeliveries will run up until 21:00.  Let us know what happens.\n\nChuck H",
        "Olá Georgiano. Sinto muito em saber disso. ^JJ",
        "Wir haben zu danken. Schönen Abend noch. ^JS",
        "アマゾンです。こちらからお問い合わせください。",
    ] {
        let r = set.check(text);
        assert_eq!(r.verdict, Verdict::Pass, "{text:?}: {:?}", r.findings);
    }
}

#[test]
fn adversarial_100kb_text_completes() {
    let set = shipped();
    let mut text = String::new();
    let pieces = [
        "4012 8888 ",
        "@@@@",
        "a.a.a.",
        "http://",
        "((((",
        "0-0-0-",
        "guaranteed ",
        "\u{200B}",
        "ş",
        "😷",
        "1-",
        "fuck",
        "x@y.",
        "FR14 ",
        "https://t.co/",
        "%APR ",
        "aaaaaaaaaa",
        " - ",
    ];
    let mut i = 0;
    while text.len() < 100_000 {
        text.push_str(pieces[i % pieces.len()]);
        i = (i * 7 + 3) % 1_000_003;
    }
    let started = std::time::Instant::now();
    let r = set.check(&text);
    let n = text.chars().count();
    for f in &r.findings {
        assert!(f.start < f.end && f.end <= n);
    }
    eprintln!(
        "100 KB adversarial text: {} findings in {:?} (debug build)",
        r.findings.len(),
        started.elapsed()
    );
    let digits = "1 ".repeat(50_000);
    let r = set.check(&digits);
    assert!(r.weighted_length > 280);
}

/// The checks' second round: numbers glued to words or punctuation are still numbers, while
/// ids, hashes, handles and paths are not.
#[test]
fn numbers_glued_to_words_or_punctuation_are_found() {
    let set = shipped();
    for (text, category) in [
        ("Saved as JaneDoe4155552671 by the form", "pii.phone"),
        ("Janedoe415-555-2671 called", "pii.phone"),
        ("call me at+1 415 555 2671", "pii.phone"),
        ("x4155552671y", "pii.phone"),
        ("Account:4012888888881881 is on file", "pii.card"),
        ("ref#4012888888881881", "pii.card"),
        ("NameSurname4012888888881881", "pii.card"),
        ("SSN:372-41-5286", "pii.ssn"),
        ("JaneDoe372-41-5286", "pii.ssn"),
        ("IBAN:DE89370400440532013000 thanks", "pii.iban"),
    ] {
        assert_caught(&set, text, category);
    }
    for (text, category) in [
        ("Commit 3fa9c4155552671 is live", "pii.phone"),
        ("@abc4155552671 thanks", "pii.phone"),
        ("see https://example.com/abc4155552671", "pii.phone"),
        ("Build a1b24012888888881881 failed", "pii.card"),
        ("Flight BA2490 lands at 9", "pii.phone"),
        ("model XPS4155 is out", "pii.phone"),
        ("Order #4155552671 has shipped", "pii.phone"),
    ] {
        assert_innocent(&set, text, category);
    }
}

/// A negated or hedged promise is not a promise; a real one in a longer sentence still is.
#[test]
fn negated_promises_are_not_promises() {
    let set = shipped();
    for text in [
        "We can't promise it will arrive tomorrow.",
        "There's no guarantee it will arrive today.",
        "I wouldn't promise that, sorry.",
        "We cannot guarantee a refund.",
        "I can't guarantee anything, but we'll try.",
        "Delivery times are not guaranteed during the holidays.",
        "Nobody can promise that; no one can promise the weather.",
    ] {
        assert_innocent(&set, text, "promise");
    }
    for text in [
        "We checked with the courier, and I promise you it will arrive on Friday.",
        "There's no guarantee it ships today, but I promise you it arrives by Friday.",
        "We can't refund the fee, but we guarantee delivery by Friday.",
        "Sorry for the wait - this will never happen again.",
    ] {
        assert_caught(&set, text, "promise");
    }
}

/// Admissions of fault or negligence escalate under liability; denials do not.
#[test]
fn admissions_of_fault_escalate() {
    let set = shipped();
    for text in [
        "That was our fault.",
        "We were negligent with your parcel.",
        "Our mistake caused the delay, sorry.",
        "Our error led to the double charge.",
        "That's on us, sorry!",
        "Honestly we were careless with the packing.",
    ] {
        assert_caught(&set, text, "liability");
        assert_eq!(set.check(text).verdict, Verdict::Escalate, "{text}");
    }
    for text in [
        "This is not our fault, but we'll help.",
        "It wasn't our mistake, but we'll fix it anyway.",
        "The next round is on us!",
        "I'm sorry we let you down!",
    ] {
        assert_innocent(&set, text, "liability");
    }
}
