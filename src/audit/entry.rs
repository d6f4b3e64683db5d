//! Audit entries: the body is RFC 8785 (JSON Canonicalization Scheme) JSON of
//! `{seq, at, actor, action, subject, data}`, stored verbatim and hashed as an RFC 6962 leaf.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who did it: a user, or the service itself (workers, start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(crate::domain::ids::UserId),
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => id.fmt(f),
            Actor::System => f.write_str("system"),
        }
    }
}

/// The fields of an entry's body (spec/api.md "Audit log").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryBody {
    pub seq: i64,
    /// UTC, RFC 3339 with microseconds.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub data: serde_json::Value,
}

/// The canonical (RFC 8785) bytes of an entry's body, as stored and hashed.
///
/// Errors only if `data` holds a number JCS cannot represent (NaN or infinity can't occur
/// in a `serde_json::Value`, so in practice never).
pub fn entry_body(
    seq: i64,
    at: DateTime<Utc>,
    actor: &Actor,
    action: &str,
    subject: Option<&str>,
    data: &serde_json::Value,
) -> Result<String, serde_json::Error> {
    let body = EntryBody {
        seq,
        at: format_at(at),
        actor: actor.to_string(),
        action: action.to_string(),
        subject: subject.map(str::to_string),
        data: data.clone(),
    };
    serde_json_canonicalizer::to_string(&body)
}

/// An entry's canonical body around the two values only the database knows when it
/// appends (`at`, raised to the last entry's time, and `seq`): the body is
/// `head + at + middle + seq + tail`, byte for byte what [`entry_body`] gives. RFC 8785
/// orders the keys `action, actor, at, data, seq, subject`, and each value is canonical on
/// its own, so the parts can be joined around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyParts {
    /// `{"action":…,"actor":…,"at":"`
    pub head: String,
    /// `","data":…,"seq":`
    pub middle: String,
    /// `,"subject":…}`
    pub tail: String,
}

/// See [`BodyParts`]. Errors as [`entry_body`].
pub fn body_parts(
    actor: &Actor,
    action: &str,
    subject: Option<&str>,
    data: &serde_json::Value,
) -> Result<BodyParts, serde_json::Error> {
    use serde_json_canonicalizer::to_string as jcs;
    Ok(BodyParts {
        head: format!(
            "{{\"action\":{},\"actor\":{},\"at\":\"",
            jcs(&action)?,
            jcs(&actor.to_string())?
        ),
        middle: format!("\",\"data\":{},\"seq\":", jcs(data)?),
        tail: format!(",\"subject\":{}}}", jcs(&subject)?),
    })
}

/// The entry's time as it appears in the body: RFC 3339, UTC, microseconds, `Z`.
pub fn format_at(at: DateTime<Utc>) -> String {
    crate::domain::time::format_utc(at)
}

/// The inverse of [`format_at`], for its exact output only: `YYYY-MM-DDTHH:MM:SS.ffffffZ`
/// naming a real instant. `None` for anything else (another precision, an offset, a
/// 25th hour), so that `format_at` of the result always gives back the same text.
pub fn parse_canonical_at(text: &str) -> Option<chrono::NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() != 27 {
        return None;
    }
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?.and_hms_micro_opt(
        num(11, 13)?,
        num(14, 16)?,
        num(17, 19)?,
        num(20, 26)?,
    )
}

/// `SHA-256(0x00 || body)` (RFC 6962 section 2.1).
pub fn leaf_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(body);
    h.finalize().into()
}

/// The head fields of a body in the exact shape [`entry_body`] writes, borrowed from it:
/// what `audit verify` compares with a row's columns without a full JSON parse per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalHead<'a> {
    pub action: &'a str,
    pub actor: &'a str,
    pub at: &'a str,
    pub seq: i64,
    pub subject: Option<&'a str>,
}

/// Reads the head of a body written as [`entry_body`] writes it: one object with exactly
/// the keys `action`, `actor`, `at`, `data`, `seq`, `subject` in that (RFC 8785) order, no
/// whitespace, the four head strings free of escapes, `seq` a plain integer, `subject` a
/// string or null, and `data` any well-formed JSON value (checked, not built).
///
/// `None` means only "not in that shape": the body may still be a valid entry, and the
/// caller must then parse it in full. Whatever this returns is what a full parse reads, so
/// a `Some` can stand in for one; it accepts a subset of what serde_json accepts (no
/// exponents, no nesting deeper than [`MAX_DEPTH`]), never more.
pub fn canonical_head(body: &str) -> Option<CanonicalHead<'_>> {
    let mut r = Scan { text: body, at: 0 };
    r.expect(b"{\"action\":")?;
    let action = r.plain_string()?;
    r.expect(b",\"actor\":")?;
    let actor = r.plain_string()?;
    r.expect(b",\"at\":")?;
    let at = r.plain_string()?;
    r.expect(b",\"data\":")?;
    r.value(0)?;
    r.expect(b",\"seq\":")?;
    let seq = r.integer()?;
    r.expect(b",\"subject\":")?;
    let subject = if r.peek() == Some(b'n') {
        r.expect(b"null")?;
        None
    } else {
        Some(r.plain_string()?)
    };
    r.expect(b"}")?;
    (r.at == body.len()).then_some(CanonicalHead {
        action,
        actor,
        at,
        seq,
        subject,
    })
}

/// Nesting deeper than this is left to the full parse (serde_json stops at 128).
pub const MAX_DEPTH: usize = 100;

/// A cursor over a body for [`canonical_head`]; every method returns `None` on anything
/// outside the shape it accepts.
struct Scan<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn expect(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.at + lit.len();
        (self.text.as_bytes().get(self.at..end)? == lit).then(|| self.at = end)
    }

    /// A string without escapes, returned as it stands between its quotes.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.expect(b"\"")?;
        let start = self.at;
        let len = self.string_body(false)?;
        let s = self.text.get(start..start + len)?;
        self.at += 1; // the closing quote
        Some(s)
    }

    /// Moves over a string's contents up to (not past) its closing quote and returns their
    /// length. Escapes are taken (and checked) only if `escapes`; a raw control character
    /// is never valid JSON.
    fn string_body(&mut self, escapes: bool) -> Option<usize> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        loop {
            // Eight bytes at a time while none of them is a quote, a backslash or a
            // control character: bodies are mostly long strings.
            while let Some(chunk) = bytes.get(self.at..self.at + 8) {
                let word = u64::from_le_bytes(chunk.try_into().ok()?);
                if has_special_byte(word) {
                    break;
                }
                self.at += 8;
            }
            match *bytes.get(self.at)? {
                b'"' => return Some(self.at - start),
                b'\\' if escapes => {
                    self.at += 1;
                    match *bytes.get(self.at)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                        b'u' => {
                            let hex = bytes.get(self.at + 1..self.at + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            self.at += 5;
                        }
                        _ => return None,
                    }
                }
                c if c < 0x20 || c == b'\\' => return None,
                _ => self.at += 1,
            }
        }
    }

    /// `0|[1-9][0-9]*` that fits an i64. (No sign: serde_json reads `-0` as a float, and a
    /// negative seq is never an entry's.)
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let n = self.at - start;
        if n == 0 || (n > 1 && self.text.as_bytes()[start] == b'0') {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.text.get(start..self.at)?.parse().ok()
    }

    /// A JSON number without exponent: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        let n = self.at - int;
        if n == 0 || (n > 1 && self.text.as_bytes()[int] == b'0') {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            let frac = self.at;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.at += 1;
            }
            if self.at == frac {
                return None;
            }
        }
        (!matches!(self.peek(), Some(b'e' | b'E'))).then_some(())
    }

    /// Any JSON value without whitespace, checked and skipped.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                self.at += 1;
                self.string_body(true)?;
                self.at += 1;
            }
            b'{' => {
                self.at += 1;
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.expect(b"\"")?;
                    self.string_body(true)?;
                    self.at += 1;
                    self.expect(b":")?;
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b'}' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.at += 1,
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.expect(b"true")?,
            b'f' => self.expect(b"false")?,
            b'n' => self.expect(b"null")?,
            _ => self.number()?,
        }
        Some(())
    }
}

/// Whether any of the eight bytes is `"`, `\\` or below 0x20 (the classic "has a zero
/// byte" test, exact for the word as a whole).
fn has_special_byte(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    // Below 0x20: the byte minus 0x20 borrows; bytes of 0x80 and above (UTF-8) are
    // excluded by `!word`.
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    zero(word ^ (ONES * b'"' as u64)) || zero(word ^ (ONES * b'\\' as u64)) || below_space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_parts_join_to_the_canonical_body() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 123_456_000).unwrap();
        let cases = [
            (
                Actor::System,
                "policy.activated",
                None,
                serde_json::json!({"files": []}),
            ),
            (
                Actor::User(crate::domain::ids::UserId::new()),
                "draft.created",
                Some("01900000-0000-7000-8000-00000000beef"),
                serde_json::json!({"text": "caf\u{e9} \"quoted\" \\ \u{1f600}\n", "n": 1.5, "z": null, "a": [3, {"b": 1, "a": 2}]}),
            ),
        ];
        for (actor, action, subject, data) in cases {
            let parts = body_parts(&actor, action, subject, &data).unwrap();
            // (JCS writes numbers as doubles: a seq at or past 2^53 would not print exactly.)
            for seq in [1, 42, 4_294_967_296, 9_007_199_254_740_991] {
                let joined = format!(
                    "{}{}{}{}{}",
                    parts.head,
                    format_at(at),
                    parts.middle,
                    seq,
                    parts.tail
                );
                assert_eq!(
                    joined,
                    entry_body(seq, at, &actor, action, subject, &data).unwrap()
                );
            }
        }
    }
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn body_is_canonical_json_with_sorted_keys() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap();
        let body = entry_body(
            7,
            at,
            &Actor::System,
            "post.succeeded",
            Some("abc"),
            &json!({"z": 1, "a": "é"}),
        )
        .unwrap();
        assert_eq!(
            body,
            r#"{"action":"post.succeeded","actor":"system","at":"2026-11-29T15:00:00.000000Z","data":{"a":"é","z":1},"seq":7,"subject":"abc"}"#
        );
        let parsed: EntryBody = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed.seq, 7);
    }

    fn sample_body() -> String {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 15, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        let data = json!({
            "z": [1, -2.5, true, false, null, {"q": "\"\\\n\u{e9}"}],
            "a": "é",
            "e": {}
        });
        entry_body(7, at, &Actor::System, "post.succeeded", Some("abc"), &data).unwrap()
    }

    #[test]
    fn canonical_head_reads_what_entry_body_writes() {
        let body = sample_body();
        let head = canonical_head(&body).expect("canonical");
        assert_eq!(
            head,
            CanonicalHead {
                action: "post.succeeded",
                actor: "system",
                at: "2026-11-29T15:00:00.123456Z",
                seq: 7,
                subject: Some("abc"),
            }
        );
        let no_subject = body.replace(r#""subject":"abc""#, r#""subject":null"#);
        assert_eq!(canonical_head(&no_subject).unwrap().subject, None);
    }

    /// Every body that is not exactly in `entry_body`'s shape is left to the full parse,
    /// whether or not serde_json would read it.
    #[test]
    fn canonical_head_refuses_every_other_shape() {
        let body = sample_body();
        let swaps: &[(&str, &str)] = &[
            (r#"{"action""#, r#"{ "action""#),
            (r#","actor":"#, r#", "actor":"#),
            (r#""subject":"abc"}"#, r#""subject":"abc"} "#),
            (r#""subject":"abc"}"#, r#""subject":"abc"}x"#),
            (r#""subject":"abc"}"#, r#""subject":"abc","x":1}"#),
            (r#","subject":"abc""#, ""),
            (r#""seq":7"#, r#""seq":07"#),
            (r#""seq":7"#, r#""seq":7.0"#),
            (r#""seq":7"#, r#""seq":7e0"#),
            (r#""seq":7"#, r#""seq":-7"#),
            (r#""seq":7"#, r#""seq":"7""#),
            (r#""seq":7"#, r#""seq":99999999999999999999"#),
            (r#""actor":"system""#, r#""actor":"sys\u0074em""#),
            (r#""actor":"system""#, "\"actor\":\"sys\ttem\""),
            (
                r#""action":"post.succeeded","actor":"system""#,
                r#""actor":"system","action":"post.succeeded""#,
            ),
            (r#""a":"é""#, r#""a":"é"#),
            (r#""a":"é""#, r#""a":"\x""#),
            (r#""a":"é""#, r#""a":"\u00g1""#),
            (r#""a":"é""#, "\"a\":\"\u{1}\""),
            (r#""a":"é""#, r#""a":01"#),
            (r#""a":"é""#, r#""a":1."#),
            (r#""a":"é""#, r#""a":1e5"#),
            (r#""a":"é""#, r#""a":tru"#),
            (r#""a":"é""#, r#""a":[1,]"#),
            (r#""a":"é""#, r#""a":{"k"}"#),
            (r#""a":"é""#, r#""a":[1 ]"#),
            (r#""subject":"abc""#, r#""subject":nul"#),
            (r#""subject":"abc""#, r#""subject":5"#),
        ];
        for (from, to) in swaps {
            assert!(body.contains(from), "{from}");
            let changed = body.replacen(from, to, 1);
            assert_eq!(canonical_head(&changed), None, "{changed}");
        }
        let nested = |depth: usize| {
            format!(
                r#"{{"action":"a","actor":"b","at":"c","data":{}1{},"seq":1,"subject":null}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
        };
        assert_eq!(canonical_head(&nested(MAX_DEPTH + 1)), None);
        assert!(canonical_head(&nested(MAX_DEPTH)).is_some());
        for cut in 0..body.len() {
            if let Some(prefix) = body.get(..cut) {
                assert_eq!(canonical_head(prefix), None, "{prefix}");
            }
        }
    }

    /// Whatever `canonical_head` reads, serde_json reads the same, as `audit verify`'s full
    /// check does (the head fields only; `data` skipped, which serde_json does laxly).
    #[test]
    fn canonical_head_agrees_with_serde_json_whenever_it_reads() {
        #[derive(Deserialize)]
        struct Head {
            seq: i64,
            at: String,
            actor: String,
            action: String,
            subject: Option<String>,
        }
        let body = sample_body();
        let variants = [
            body.clone(),
            body.replace("post.succeeded", r#"po\"st"#),
            body.replace(r#""actor":"system""#, r#""actor":"ü""#),
            body.replace(r#""a":"é""#, r#""a":"\ud800""#),
            body.replace(r#""a":"é""#, r#""a":-0"#),
            body.replace(r#""a":"é""#, r#""a":"\/\b\f\r\t""#),
        ];
        let mut read = 0;
        for v in &variants {
            let Some(head) = canonical_head(v) else {
                continue;
            };
            read += 1;
            let parsed: Head = serde_json::from_str(v).expect(v);
            assert_eq!(parsed.action, head.action);
            assert_eq!(parsed.actor, head.actor);
            assert_eq!(parsed.at, head.at);
            assert_eq!(parsed.seq, head.seq);
            assert_eq!(parsed.subject.as_deref(), head.subject);
        }
        assert_eq!(read, 5, "all but the escaped action are in the plain shape");
    }

    #[test]
    fn has_special_byte_finds_quotes_backslashes_and_control_chars_anywhere() {
        for pos in 0..8 {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                let mut word = *b"abcdefgh";
                word[pos] = special;
                assert!(has_special_byte(u64::from_le_bytes(word)), "{word:?}");
            }
        }
        let plain: [[u8; 8]; 3] = [
            *b"abcdefgh",
            *b" !#[]~\x7f ",
            [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xff, 0x80, 0x21],
        ];
        for word in plain {
            assert!(!has_special_byte(u64::from_le_bytes(word)), "{word:?}");
        }
    }

    #[test]
    fn parse_canonical_at_is_the_inverse_of_format_at() {
        let t = Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 59).unwrap()
            + chrono::Duration::microseconds(999_999);
        let text = format_at(t);
        assert_eq!(parse_canonical_at(&text), Some(t.naive_utc()));
        for bad in [
            "2026-02-29T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "2026-01-01T24:00:00.000000Z",
            "2026-01-01T00:60:00.000000Z",
            "2026-01-01T00:00:60.000000Z",
            "2026-01-01T00:00:00.00000Z",
            "2026-01-01T00:00:00.0000000Z",
            "2026-01-01T00:00:00.000000+00:00",
            "2026-01-01 00:00:00.000000Z",
            "2026-01-01T00:00:00,000000Z",
            "2026-01-0aT00:00:00.000000Z",
            "+026-01-01T00:00:00.000000Z",
        ] {
            assert_eq!(parse_canonical_at(bad), None, "{bad}");
        }
    }

    #[test]
    fn leaf_hash_prefixes_zero_byte() {
        // SHA-256 of the single byte 0x00: the leaf hash of an empty body.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
