//! Built-in, validated detectors: payment cards (Luhn), US social security numbers (SSA
//! rules), IBANs (country length and mod-97), e-mail addresses, phone numbers (libphonenumber's
//! rules and metadata through the `rlibphonenumber` crate) and links.
//!
//! Detectors run on the normalised text (see `normalize`), so full-width digits, zero-width
//! characters and dash variants are already gone; they return byte ranges of that text.

use regex::Regex;
use serde::Deserialize;

use super::org::{Organisation, PhoneLookup};

/// The detectors a `detector` rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// Payment card number: 13 to 19 digits passing the Luhn check.
    Card,
    /// US social security number valid by the SSA's rules.
    Ssn,
    /// IBAN with the right length for its country and a valid mod-97 checksum.
    Iban,
    /// E-mail address other than the organisation's.
    Email,
    /// Phone number other than the organisation's.
    Phone,
    /// Link outside the organisation's link prefixes.
    Link,
}

impl DetectorKind {
    pub fn name(self) -> &'static str {
        match self {
            DetectorKind::Card => "card",
            DetectorKind::Ssn => "ssn",
            DetectorKind::Iban => "iban",
            DetectorKind::Email => "email",
            DetectorKind::Phone => "phone",
            DetectorKind::Link => "link",
        }
    }
}

/// Regular expressions of the detectors, compiled once per policy set.
#[derive(Debug)]
pub(crate) struct DetectorRegexes {
    phone: Regex,
    iban: Regex,
    email: Regex,
    ssn_context: Regex,
}

impl DetectorRegexes {
    pub fn new() -> Result<Self, regex::Error> {
        Ok(DetectorRegexes {
            phone: Regex::new(r"(?:\+ ?)?\(?[0-9]+\)?(?:(?: ?[-.] ?| )?\(?[0-9]+\)?)*")?,
            iban: Regex::new(r"[a-z]{2}[0-9]{2}(?:[ -]?[a-z0-9]){10,30}")?,
            email: Regex::new(
                r"[\p{L}\p{N}._%+\-]+ ?(?:@|[\[({] ?at ?[\])}]) ?[\p{L}\p{N}\-]+(?:(?:\.| ?[\[({] ?dot ?[\])}] ?)[\p{L}\p{N}\-]+)+",
            )?,
            ssn_context: Regex::new(
                r"(?:ssn|social security(?: number| no\.?| #)?|ss#|ss no\.?|taxpayer id|tin)\W{0,5}$",
            )?,
        })
    }
}

/// A detector hit: byte range in the normalised text.
pub(crate) type Hit = (usize, usize);

/// The chains of digits with single separators (space, dash, dot, underscore, spaced
/// dash) that card and SSN numbers are looked for in: the matches, as `Regex::find_iter`
/// gives them, of `CHAIN_PATTERN`, found by hand (a regex search per chain costs far more).
pub(crate) fn digit_chains(text: &str) -> Vec<Hit> {
    let b = text.as_bytes();
    let n = b.len();
    let digit = |k: usize| k < n && b[k].is_ascii_digit();
    let sep = |k: usize| k < n && matches!(b[k], b'-' | b'.' | b'_');
    let space = |k: usize| k < n && b[k] == b' ';
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut e = i + 1;
        // One more `(?: ?[-._] ?| )?[0-9]` while one fits, its alternatives tried in the
        // regex's order of preference (greedy `?` first). Nothing follows the repetition,
        // so the first alternative that fits is the one the regex takes.
        loop {
            e = if space(e) && sep(e + 1) && space(e + 2) && digit(e + 3) {
                e + 4
            } else if (space(e) && sep(e + 1) || sep(e) && space(e + 1)) && digit(e + 2) {
                e + 3
            } else if (sep(e) || space(e)) && digit(e + 1) {
                e + 2
            } else if digit(e) {
                e + 1
            } else {
                break;
            };
        }
        out.push((start, e));
        i = e;
    }
    out
}

/// The regular expression `digit_chains` follows (a unit test holds it to it).
#[cfg(test)]
const CHAIN_PATTERN: &str = r"[0-9](?:(?: ?[-._] ?| )?[0-9])*";

fn char_before(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn char_after(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

/// Letters and digits that glue to a number (CJK, kana and Hangul do not: those scripts
/// write numbers right next to words).
fn is_glue(c: char) -> bool {
    c.is_alphanumeric() && (c as u32) < 0x2E80
}

/// A number is free-standing when it is not glued to a word, a handle, a hashtag or a path.
fn free_standing(text: &str, s: usize, e: usize) -> bool {
    let before_ok = char_before(text, s)
        .is_none_or(|c| !(is_glue(c) || matches!(c, '@' | '#' | '/' | '_' | '\\' | '=' | '&')));
    let after_ok = char_after(text, e).is_none_or(|c| !(is_glue(c) || c == '@' || c == '_'));
    before_ok && after_ok
}

/// A number glued into a word of letters, or right after `#`, that is still a number: a
/// form that saved a name and a phone number as one word ("JaneDoe4155550123"), a
/// reference written "ref#4111…". The word around it (its letters and digits) holds no
/// other digit, so hashes, tracking codes and ids stay out, and it is not part of a handle,
/// an address, a path or a query (`@`, `/`, `_`, `\`, `=`, `&` next to the word).
fn glued_in_word(text: &str, s: usize, e: usize) -> bool {
    let mut ws = s;
    while let Some(c) = char_before(text, ws).filter(|c| is_glue(*c)) {
        if c.is_ascii_digit() {
            return false;
        }
        ws -= c.len_utf8();
    }
    let mut we = e;
    while let Some(c) = char_after(text, we).filter(|c| is_glue(*c)) {
        if c.is_ascii_digit() {
            return false;
        }
        we += c.len_utf8();
    }
    let hash_before = ws == s && char_before(text, s) == Some('#');
    if ws == s && we == e && !hash_before {
        // Not glued to a word: `free_standing` decides.
        return false;
    }
    let outer = if hash_before { s - 1 } else { ws };
    let before_ok = char_before(text, outer)
        .is_none_or(|c| !matches!(c, '@' | '/' | '_' | '\\' | '=' | '&' | '#' | '.'));
    let after_ok = char_after(text, we).is_none_or(|c| !matches!(c, '@' | '_' | '/'));
    before_ok && after_ok
}

/// Groups of digits of a chain, with their byte ranges.
fn digit_groups(text: &str, s: usize, e: usize) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = s;
    while i < e {
        if bytes[i].is_ascii_digit() {
            let gs = i;
            while i < e && bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push((gs, i));
        } else {
            i += 1;
        }
    }
    out
}

fn digits_of(text: &str, s: usize, e: usize) -> Vec<u8> {
    text.as_bytes()[s..e]
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

fn group_value(text: &str, g: (usize, usize)) -> u32 {
    text[g.0..g.1].parse::<u32>().unwrap_or(u32::MAX)
}

/// True when the digit groups read as one or more dates (2017-10-31, 31.10.2017, 10-31-2017)
/// or a year range (2019-2020): such chains are not card, SSN or phone numbers.
fn looks_like_dates(text: &str, groups: &[(usize, usize)]) -> bool {
    let len = |g: (usize, usize)| g.1 - g.0;
    let is_year = |g: (usize, usize)| len(g) == 4 && (1900..=2099).contains(&group_value(text, g));
    let is_md =
        |g: (usize, usize)| (1..=2).contains(&len(g)) && (1..=31).contains(&group_value(text, g));
    let mut i = 0;
    let mut any = false;
    while i < groups.len() {
        if i + 2 < groups.len()
            && ((is_year(groups[i]) && is_md(groups[i + 1]) && is_md(groups[i + 2]))
                || (is_md(groups[i]) && is_md(groups[i + 1]) && is_year(groups[i + 2])))
        {
            i += 3;
            any = true;
        } else if is_year(groups[i]) {
            i += 1;
            any = true;
        } else if any && len(groups[i]) <= 2 && i + 1 == groups.len() {
            // a trailing hour after a date: 2017-10-31 14
            i += 1;
        } else {
            return false;
        }
    }
    any
}

fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The first digits of a number issued by a payment network: 2 (Mastercard 22-27, Mir), 3
/// (Amex, Diners, JCB), 4 (Visa), 5 (Mastercard, Maestro), 6 (Discover, UnionPay, Maestro),
/// or 1 for a 15-digit UATP card. Rules out epoch timestamps and most ids.
fn issuer_prefix_ok(digits: &[u8]) -> bool {
    match digits[0] {
        1 => digits.len() == 15,
        2 => (2..=7).contains(&digits[1]),
        3..=6 => true,
        _ => false,
    }
}

fn is_card_number(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len())
        && issuer_prefix_ok(digits)
        && !digits.iter().all(|&d| d == digits[0])
        && luhn_ok(digits)
}

/// Payment card numbers.
pub(crate) fn cards(chains: &[Hit], text: &str) -> Vec<Hit> {
    let mut out = Vec::new();
    for &(s, e) in chains {
        if !free_standing(text, s, e) && !glued_in_word(text, s, e) {
            continue;
        }
        let groups = digit_groups(text, s, e);
        let total: usize = groups.iter().map(|g| g.1 - g.0).sum();
        if total < 13 || looks_like_dates(text, &groups) {
            continue;
        }
        if total <= 19 {
            if is_card_number(&digits_of(text, s, e)) {
                out.push((s, e));
            }
            continue;
        }
        // A longer chain: look for cards on group boundaries (two cards in a row).
        if groups.len() < 2 {
            continue;
        }
        let mut gi = 0;
        while gi < groups.len() {
            let mut found = None;
            let mut count = 0;
            for gj in gi..groups.len() {
                count += groups[gj].1 - groups[gj].0;
                if count > 19 {
                    break;
                }
                if count >= 13 && is_card_number(&digits_of(text, groups[gi].0, groups[gj].1)) {
                    found = Some(gj);
                }
            }
            match found {
                Some(gj) => {
                    out.push((groups[gi].0, groups[gj].1));
                    gi = gj + 1;
                }
                None => gi += 1,
            }
        }
    }
    out
}

fn ssn_valid(area: u32, group: u32, serial: u32) -> bool {
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !(area == 78 && group == 5 && serial == 1120)
        && !(area == 219 && group == 9 && serial == 9999)
}

/// US social security numbers: 3-2-4 digits with separators, or 9 digits right after
/// "SSN" / "social security number".
pub(crate) fn ssns(re: &DetectorRegexes, chains: &[Hit], text: &str) -> Vec<Hit> {
    let mut out = Vec::new();
    for &(s, e) in chains {
        if !free_standing(text, s, e) && !glued_in_word(text, s, e) {
            continue;
        }
        let groups = digit_groups(text, s, e);
        let lens: Vec<usize> = groups.iter().map(|g| g.1 - g.0).collect();
        let (area, group, serial) = if lens == [3, 2, 4] {
            // both separators must be real separators (not a decimal point)
            let sep1 = &text[groups[0].1..groups[1].0];
            let sep2 = &text[groups[1].1..groups[2].0];
            if sep1.contains('.') || sep2.contains('.') || sep1.contains('_') || sep2.contains('_')
            {
                continue;
            }
            (
                group_value(text, groups[0]),
                group_value(text, groups[1]),
                group_value(text, groups[2]),
            )
        } else if lens == [9] {
            let ctx_start = text[..s].char_indices().rev().nth(29).map_or(0, |(i, _)| i);
            if !re.ssn_context.is_match(&text[ctx_start..s]) {
                continue;
            }
            let d = &text[s..e];
            (
                d[0..3].parse().unwrap_or(0),
                d[3..5].parse().unwrap_or(0),
                d[5..9].parse().unwrap_or(0),
            )
        } else {
            continue;
        };
        if ssn_valid(area, group, serial) {
            out.push((s, e));
        }
    }
    out
}

/// Expected IBAN length per country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" | "SD" | "FK" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" | "MN" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "TL" | "OM" | "SO" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "LY" | "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" | "BI" | "DJ" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" | "SV" | "NI" | "HN" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" | "YE" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        "RU" => 33,
        _ => return None,
    })
}

fn iban_checksum_ok(compact: &str) -> bool {
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBANs.
pub(crate) fn ibans(re: &DetectorRegexes, text: &str) -> Vec<Hit> {
    let mut out = Vec::new();
    for m in re.iban.find_iter(text) {
        let s = m.start();
        if char_before(text, s).is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        let country = text[s..s + 2].to_ascii_uppercase();
        let Some(want) = iban_length(&country) else {
            continue;
        };
        // Gather characters group by group until exactly `want` are there.
        let mut compact = String::new();
        let mut end = None;
        for (i, c) in text[s..m.end()].char_indices() {
            if c.is_ascii_alphanumeric() {
                compact.push(c.to_ascii_uppercase());
                let at_boundary = text[s + i + 1..m.end()]
                    .chars()
                    .next()
                    .is_none_or(|n| !n.is_ascii_alphanumeric());
                if compact.len() == want && at_boundary {
                    end = Some(s + i + 1);
                    break;
                }
                if compact.len() >= want && at_boundary {
                    break;
                }
            }
        }
        let Some(e) = end else {
            continue;
        };
        if !iban_checksum_ok(&compact) {
            continue;
        }
        if char_after(text, e).is_some_and(|c| c.is_alphanumeric()) {
            continue;
        }
        out.push((s, e));
    }
    out
}

/// Canonical form of a matched e-mail address: `[at]`/`(dot)` spelled out, spaces removed.
pub(crate) fn canonical_email(raw: &str) -> String {
    if !raw.contains(|c: char| c.is_whitespace() || matches!(c, '[' | '(' | '{')) {
        // nothing spelled out, no space: only the dots at either end go
        return raw.trim_matches('.').to_string();
    }
    let mut s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    for (from, to) in [
        ("[at]", "@"),
        ("(at)", "@"),
        ("{at}", "@"),
        ("[dot]", "."),
        ("(dot)", "."),
        ("{dot}", "."),
    ] {
        s = s.replace(from, to);
    }
    s.trim_matches('.').to_string()
}

/// E-mail addresses other than the organisation's.
pub(crate) fn emails(re: &DetectorRegexes, text: &str, org: Option<&Organisation>) -> Vec<Hit> {
    let mut out = Vec::new();
    for m in re.email.find_iter(text) {
        let (mut s, mut e) = (m.start(), m.end());
        // trim dots at either end ("m.rossi@example.org." at the end of a sentence)
        while text[s..e].starts_with(['.', '-', '+']) {
            s += 1;
        }
        while text[s..e].ends_with(['.', '-']) {
            e -= 1;
        }
        let addr = canonical_email(&text[s..e]);
        let Some((local, domain)) = addr.rsplit_once('@') else {
            continue;
        };
        let tld = domain.rsplit('.').next().unwrap_or("");
        if local.is_empty() || tld.chars().count() < 2 || !tld.chars().all(|c| c.is_alphabetic()) {
            continue;
        }
        if org.is_some_and(|o| o.email_allowed(&addr)) {
            continue;
        }
        out.push((s, e));
    }
    out
}

/// Phone numbers other than the organisation's. At most `budget` parses (see
/// `Organisation::phone_parse_budget`); a candidate reached when it has run out is reported
/// unvalidated (fail closed).
pub(crate) fn phones(
    re: &DetectorRegexes,
    text: &str,
    org: &Organisation,
    use_org: bool,
    mut budget: usize,
) -> Vec<Hit> {
    let mut out = Vec::new();
    for m in re.phone.find_iter(text) {
        let (mut s, mut e) = (m.start(), m.end());
        // an unmatched closing parenthesis at the end, an unmatched opening one at the start
        while text[s..e].ends_with(')')
            && text[s..e].matches('(').count() < text[s..e].matches(')').count()
        {
            e -= 1;
        }
        while text[s..e].starts_with('(')
            && text[s..e].matches('(').count() > text[s..e].matches(')').count()
        {
            s += 1;
        }
        let glued = !free_standing(text, s, e);
        if glued && !glued_in_word(text, s, e) {
            continue;
        }
        // not a decimal, a price, a percentage, a time or a fraction
        if let Some(c) = char_before(text, s) {
            let digit_before =
                char_before(text, s - c.len_utf8()).is_some_and(|d| d.is_ascii_digit());
            if matches!(c, '$' | '£' | '€' | '¥' | '-' | '^')
                || (matches!(c, ':' | '.' | ',') && digit_before)
            {
                continue;
            }
        }
        if let Some(c) = char_after(text, e) {
            if matches!(c, '%' | ':' | '/')
                || (c == '.' && char_after(text, e + 1).is_some_and(|d| d.is_ascii_digit()))
            {
                continue;
            }
        }
        let groups = digit_groups(text, s, e);
        if looks_like_dates(text, &groups) {
            continue;
        }
        // Glued to a word, only a full number (with its area code) is taken for a phone.
        if glued && groups.iter().map(|g| g.1 - g.0).sum::<usize>() < 10 {
            continue;
        }
        // Try the whole candidate, then without trailing groups.
        let mut cumulative = Vec::with_capacity(groups.len());
        let mut total = 0;
        for g in &groups {
            total += g.1 - g.0;
            cumulative.push(total);
        }
        let close_paren = |end: usize| {
            let open = text[s..end].matches('(').count();
            let close = text[s..end].matches(')').count();
            if open > close && text[end..].starts_with(')') {
                end + 1
            } else {
                end
            }
        };
        for last in (0..groups.len()).rev() {
            let cand_end = groups[last].1;
            let cand = &text[s..cand_end];
            let ndigits = cumulative[last];
            if ndigits < 7 {
                break;
            }
            if ndigits > 15 {
                continue;
            }
            match org.look_up_phone(cand, &mut budget) {
                PhoneLookup::Valid(key) => {
                    if !(use_org && org.phone_key_allowed(key)) {
                        out.push((s, close_paren(cand_end)));
                    }
                    break;
                }
                PhoneLookup::Invalid => {}
                PhoneLookup::Unchecked => {
                    out.push((s, close_paren(cand_end)));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re() -> DetectorRegexes {
        DetectorRegexes::new().expect("detector regexes compile")
    }

    fn cards(_: &DetectorRegexes, text: &str) -> Vec<Hit> {
        super::cards(&digit_chains(text), text)
    }

    fn ssns(r: &DetectorRegexes, text: &str) -> Vec<Hit> {
        super::ssns(r, &digit_chains(text), text)
    }

    proptest::proptest! {
        #[test]
        fn digit_chains_are_the_regex_matches(text in "[0-9 ._\\-a\u{e9}\u{ff10}]{0,60}") {
            let chain = Regex::new(CHAIN_PATTERN).expect("compiles");
            let want: Vec<Hit> = chain.find_iter(&text).map(|m| (m.start(), m.end())).collect();
            proptest::prop_assert_eq!(digit_chains(&text), want);
        }
    }

    #[test]
    fn digit_chains_examples() {
        let chain = Regex::new(CHAIN_PATTERN).expect("compiles");
        for t in [
            "1 - 2",
            "1 -2",
            "1- 2",
            "1 - - 2",
            "1  2",
            "1 -  2",
            "1._2",
            "12 .3",
            "4012 8888 8888 1881",
            "5105 - 1051 - 0510 - 5100",
            "1-",
            "-1",
            " 1 ",
            "1 -",
            "a1b2 3.",
            "1.2.3.4.5",
        ] {
            let want: Vec<Hit> = chain.find_iter(t).map(|m| (m.start(), m.end())).collect();
            assert_eq!(digit_chains(t), want, "{t:?}");
        }
    }

    /// The organisation of the shipped `policies/` (19 phone regions).
    fn shipped_organisation() -> Organisation {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let set = crate::policy::PolicySet::load(&dir).expect("the shipped policies load");
        set.engine.organisation().clone()
    }

    /// The densest phone work a draft X accepts can ask for, links aside: eleven chains of
    /// seven digits and eight one-digit groups (nine tries each), then one of seven and four
    /// (five tries), 279 characters, all zeros so that no try is valid in any region and each
    /// goes through all of them: 104 parses a region.
    #[test]
    fn a_postable_text_never_exhausts_the_phone_budget() {
        let r = re();
        let org = shipped_organisation();
        assert_eq!(org.regions.len(), 19);
        let mut chains = vec!["0000000 0 0 0 0 0 0 0 0"; 11];
        chains.push("0000000 0 0 0 0");
        let text = chains.join(";");
        assert!(text.chars().count() <= 280);
        let unlimited = phones(&r, &text, &org, true, usize::MAX);
        assert!(unlimited.is_empty(), "{unlimited:?}");
        let worst = 104 * org.regions.len();
        assert_eq!(phones(&r, &text, &org, true, worst), unlimited);
        assert!(org.phone_parse_budget() >= worst);
        // one parse fewer, and the last chain's last try goes unvalidated: 104 is really needed
        let short = phones(&r, &text, &org, true, worst - 1);
        let spans: Vec<&str> = short.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(spans, ["0000000"]);
        assert!(text.ends_with(";0000000 0 0 0 0"));
        assert_eq!(short[0].0, text.len() - "0000000 0 0 0 0".len());
    }

    #[test]
    fn past_the_budget_candidates_are_reported_unvalidated() {
        let r = re();
        let org = shipped_organisation();
        let text = "call 0 0 0 0 0 0 0 0, or 415-555-2671, or (999) 999-9999";
        let checked = phones(&r, text, &org, true, usize::MAX);
        let spans: Vec<&str> = checked.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(spans, ["415-555-2671"]);
        let starved = phones(&r, text, &org, true, 0);
        let spans: Vec<&str> = starved.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(spans, ["0 0 0 0 0 0 0 0", "415-555-2671", "(999) 999-9999"]);
    }

    #[test]
    fn luhn() {
        assert!(luhn_ok(&digits_of("4012888888881881", 0, 16)));
        assert!(!luhn_ok(&digits_of("4012888888881882", 0, 16)));
    }

    #[test]
    fn card_chains() {
        let r = re();
        assert_eq!(cards(&r, "from 4012 8888 8888 1881 failed").len(), 1);
        assert_eq!(cards(&r, "to 5105-1051-0510-5100 y").len(), 1);
        assert_eq!(cards(&r, "to 5105 - 1051 - 0510 - 5100 y").len(), 1);
        assert!(cards(&r, "no 4012 8888 8888 1882 here").is_empty());
        assert!(cards(&r, "2017-10-31 - 2017-11-02").is_empty());
        assert_eq!(
            cards(&r, "4012 8888 8888 1881 5105 1051 0510 5100").len(),
            2
        );
    }

    #[test]
    fn ssn_rules() {
        let r = re();
        assert_eq!(ssns(&r, "ssn 372-41-5286 ok").len(), 1);
        assert!(ssns(&r, "case 000-45-6789").is_empty());
        assert!(ssns(&r, "x 666-45-6789").is_empty());
        assert!(ssns(&r, "x 901-45-6789").is_empty());
        assert!(ssns(&r, "x 123-00-6789").is_empty());
        assert!(ssns(&r, "x 123-45-0000").is_empty());
        assert_eq!(ssns(&r, "my ssn: 372415286").len(), 1);
        assert!(ssns(&r, "order 372415286").is_empty());
    }

    #[test]
    fn iban_rules() {
        let r = re();
        assert_eq!(
            ibans(&r, "paid into fr14 2004 1010 0505 0001 3m02 606 today").len(),
            1
        );
        assert!(ibans(&r, "paid into fr14 2004 1010 0505 0001 3m02 607 today").is_empty());
        assert_eq!(ibans(&r, "gb82west12345698765432").len(), 1);
        assert_eq!(ibans(&r, "de89 3704 0044 0532 0130 00.").len(), 1);
    }

    #[test]
    fn dates() {
        let t = "2017-10-31";
        assert!(looks_like_dates(t, &digit_groups(t, 0, t.len())));
        let t = "2019-2020";
        assert!(looks_like_dates(t, &digit_groups(t, 0, t.len())));
        let t = "4012-8888";
        assert!(!looks_like_dates(t, &digit_groups(t, 0, t.len())));
    }
}
