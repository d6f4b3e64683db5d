//! Text normalisation for matching, with an exact map back to the original text.
//!
//! Every rule matches on a normalised view of the draft: Unicode compatibility
//! decomposition (NFKD, so full-width letters and digits become ASCII), accents and other
//! combining marks dropped, case folded, zero-width and other invisible format characters
//! removed, Cyrillic and Greek look-alikes of Latin letters mapped to their Latin skeleton,
//! dashes and quotes unified and runs of white space collapsed to one space.
//!
//! The view keeps, for every byte it holds, the index (in Unicode scalar values) of the
//! original character it came from, so any match maps back to a span of the original text.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

use super::char_table::CharTable;

/// A normalised view of a text and its map back to the original.
#[derive(Debug, Clone)]
pub(crate) struct Normalized {
    /// The normalised text.
    pub text: String,
    /// For each byte of `text`, the index of the original character it came from.
    map: Vec<u32>,
    /// Number of characters of the original text.
    orig_chars: usize,
}

impl Normalized {
    /// Maps a byte range of the normalised text to a character range of the original.
    /// Returns `None` for an empty or out-of-range byte range.
    pub fn to_original(&self, start: usize, end: usize) -> Option<(usize, usize)> {
        if start >= end || end > self.map.len() {
            return None;
        }
        let s = *self.map.get(start)? as usize;
        let e = *self.map.get(end - 1)? as usize + 1;
        if s < e && e <= self.orig_chars {
            Some((s, e))
        } else {
            None
        }
    }

    /// Number of characters in the original text.
    #[allow(dead_code)]
    pub fn original_len(&self) -> usize {
        self.orig_chars
    }
}

/// Invisible characters removed before matching (zero-width, joiners, directional
/// formatting, soft hyphen, byte-order mark, invisible operators, tag characters).
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// Latin skeleton of common Cyrillic and Greek look-alikes (and a few Latin variants).
fn skeleton(c: char) -> char {
    match c {
        // Cyrillic capitals
        'А' => 'A',
        'В' => 'B',
        'С' => 'C',
        'Е' => 'E',
        'Н' => 'H',
        'І' => 'I',
        'Ј' => 'J',
        'К' => 'K',
        'М' => 'M',
        'О' => 'O',
        'Р' => 'P',
        'Ѕ' => 'S',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        'Ү' => 'Y',
        'Ԁ' => 'D',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        'Ӏ' => 'I',
        // Cyrillic small letters
        'а' => 'a',
        'в' => 'b',
        'с' => 'c',
        'е' => 'e',
        'ё' => 'e',
        'һ' => 'h',
        'н' => 'h',
        'і' => 'i',
        'ї' => 'i',
        'ј' => 'j',
        'к' => 'k',
        'м' => 'm',
        'о' => 'o',
        'р' => 'p',
        'ѕ' => 's',
        'т' => 't',
        'х' => 'x',
        'у' => 'y',
        'ү' => 'y',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ӏ' => 'l',
        'ɡ' => 'g',
        'п' => 'n',
        'г' => 'r',
        'ь' => 'b',
        // Greek capitals
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        // Greek small letters
        'α' => 'a',
        'β' => 'b',
        'γ' => 'y',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'ω' => 'w',
        'ς' => 's',
        'ϲ' => 'c',
        'ϳ' => 'j',
        // Latin variants
        'ı' => 'i',
        'ȷ' => 'j',
        'ſ' => 's',
        // dashes and minus signs
        '\u{2010}'..='\u{2015}'
        | '\u{2212}'
        | '\u{FE58}'
        | '\u{FE63}'
        | '\u{FF0D}'
        | '\u{2043}' => '-',
        // quotes
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{02BC}' | '`'
        | '\u{00B4}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => '"',
        other => other,
    }
}

struct Builder {
    text: String,
    map: Vec<u32>,
    fold_case: bool,
    last_space: bool,
}

impl Builder {
    #[inline]
    fn push(&mut self, c: char, orig: u32) {
        self.text.push(c);
        // one entry per byte of `c`, pushed one by one (no call to copy a tiny slice)
        for _ in 0..c.len_utf8() {
            self.map.push(orig);
        }
    }

    fn emit(&mut self, d: char, orig: u32) {
        if d.is_ascii() {
            if d.is_ascii_whitespace() || d == '\u{0B}' {
                if !self.last_space {
                    self.push(' ', orig);
                    self.last_space = true;
                }
                return;
            }
            self.last_space = false;
            let d = if d == '`' { '\'' } else { d };
            let d = if self.fold_case {
                d.to_ascii_lowercase()
            } else {
                d
            };
            self.text.push(d);
            self.map.push(orig);
            return;
        }
        if is_plain(d) {
            self.last_space = false;
            self.push(d, orig);
            return;
        }
        if is_combining_mark(d) || is_invisible(d) {
            return;
        }
        if d.is_whitespace() {
            if !self.last_space {
                self.push(' ', orig);
                self.last_space = true;
            }
            return;
        }
        self.last_space = false;
        let d = skeleton(d);
        if self.fold_case {
            if d == 'ß' || d == 'ẞ' {
                self.push('s', orig);
                self.push('s', orig);
                return;
            }
            if d.is_ascii() {
                self.push(d.to_ascii_lowercase(), orig);
                return;
            }
            for l in d.to_lowercase() {
                if is_combining_mark(l) {
                    continue;
                }
                let l = skeleton(l);
                self.push(l, orig);
            }
        } else {
            self.push(d, orig);
        }
    }
}

/// Characters below this bound are looked up in the table of `plain_table`.
const PLAIN_LIMIT: u32 = 0x20000;

/// True when normalisation keeps `c` exactly as it is whatever the case folding: not
/// invisible, not a mark, not white space, its own look-alike skeleton, its own
/// compatibility decomposition and its own lower case (CJK ideographs, kana without voicing
/// marks, Hangul jamo, emoji, most symbols...). Computed from the very functions the general
/// path uses.
fn plain_by_definition(c: char) -> bool {
    if c.is_ascii() || c == 'ß' || c == 'ẞ' {
        return false;
    }
    if is_invisible(c) || is_combining_mark(c) || c.is_whitespace() || skeleton(c) != c {
        return false;
    }
    let mut same = true;
    let mut n = 0;
    decompose_compatible(c, |d| {
        n += 1;
        same &= d == c;
    });
    if !(same && n == 1) {
        return false;
    }
    let mut lower = c.to_lowercase();
    lower.next() == Some(c) && lower.next().is_none()
}

/// `plain_by_definition` for every character, computed once.
fn plain_table() -> &'static CharTable {
    static TABLE: std::sync::OnceLock<CharTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| CharTable::build(PLAIN_LIMIT, plain_by_definition))
}

/// Builds the lookup table ahead of the first check (a few milliseconds).
pub(crate) fn warm_up() {
    let _ = plain_table();
}

/// See `plain_by_definition`.
fn is_plain(c: char) -> bool {
    plain_table().contains(c)
}

/// The normalised view of an all-ASCII text: lower-cased (or not), the back-quote read as an
/// apostrophe, runs of white space collapsed to one space. Every other ASCII character is
/// kept, so bytes map one-to-one except where white space collapses.
fn normalize_ascii(input: &str, fold_case: bool) -> Normalized {
    let bytes = input.as_bytes();
    let is_space = |c: u8| matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ');
    if !bytes.windows(2).any(|w| is_space(w[0]) && is_space(w[1])) {
        // Nothing collapses: byte for byte, in two simple loops.
        let text: Vec<u8> = bytes
            .iter()
            .map(|&c| match c {
                c if is_space(c) => b' ',
                b'`' => b'\'',
                c if fold_case => c.to_ascii_lowercase(),
                c => c,
            })
            .collect();
        return Normalized {
            text: String::from_utf8(text).unwrap_or_default(),
            map: (0..bytes.len() as u32).collect(),
            orig_chars: bytes.len(),
        };
    }
    let mut text = Vec::with_capacity(bytes.len());
    let mut map = Vec::with_capacity(bytes.len());
    let mut last_space = false;
    for (i, &c) in bytes.iter().enumerate() {
        // char::is_whitespace for ASCII: tab, line feed, vertical tab, form feed, CR, space
        if matches!(c, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ') {
            if !last_space {
                text.push(b' ');
                map.push(i as u32);
                last_space = true;
            }
            continue;
        }
        last_space = false;
        let c = match c {
            b'`' => b'\'',
            c if fold_case => c.to_ascii_lowercase(),
            c => c,
        };
        text.push(c);
        map.push(i as u32);
    }
    Normalized {
        // Only ASCII bytes were pushed.
        text: String::from_utf8(text).unwrap_or_default(),
        map,
        orig_chars: bytes.len(),
    }
}

/// Builds the normalised view of `input`. With `fold_case` false, letters keep their case
/// (used by case-sensitive rules); everything else is the same.
pub(crate) fn normalize(input: &str, fold_case: bool) -> Normalized {
    if input.is_ascii() && u32::try_from(input.len()).is_ok() {
        return normalize_ascii(input, fold_case);
    }
    // Hangul syllables decompose into two or three jamo of the same size each: room for a
    // text that grows by half without reallocating.
    let cap = input.len() + input.len() / 2;
    let mut b = Builder {
        text: String::with_capacity(cap),
        map: Vec::with_capacity(cap),
        fold_case,
        last_space: false,
    };
    let table = plain_table();
    let mut count: u32 = 0;
    let mut pos = 0;
    while let Some(c) = input[pos..].chars().next() {
        if !c.is_ascii() && table.contains(c) {
            // A run of characters kept as they are (CJK, kana, Hangul jamo, emoji...):
            // copied in one go, each of its bytes mapped to its character.
            let start = pos;
            pos += c.len_utf8();
            while let Some(c) = input[pos..].chars().next() {
                if c.is_ascii() || !table.contains(c) {
                    break;
                }
                pos += c.len_utf8();
            }
            b.last_space = false;
            b.text.push_str(&input[start..pos]);
            let old = b.map.len();
            b.map.resize(old + (pos - start), 0);
            let bytes = &input.as_bytes()[start..pos];
            for (slot, &byte) in b.map[old..].iter_mut().zip(bytes) {
                // a byte that starts a character (not a continuation byte 0b10xx_xxxx)
                count = count.wrapping_add(u32::from((byte as i8) >= -0x40));
                *slot = count.wrapping_sub(1);
            }
            continue;
        }
        pos += c.len_utf8();
        let orig = count;
        count = count.saturating_add(1);
        if c.is_ascii() {
            b.emit(c, orig);
            continue;
        }
        if is_invisible(c) {
            continue;
        }
        // Map look-alikes first (keeps Cyrillic й from becoming и + mark, etc. harmlessly).
        let c = skeleton(c);
        decompose_compatible(c, |d| b.emit(d, orig));
    }
    Normalized {
        text: b.text,
        map: b.map,
        orig_chars: count as usize,
    }
}

/// The normalised form of a term or literal written in a policy file.
pub(crate) fn normalize_term(s: &str) -> String {
    normalize(s, true).text.trim().to_string()
}

/// Normalises the literal non-ASCII letters inside a regular expression written in a
/// policy file, so that a pattern such as `garantía` matches the normalised text
/// `garantia`. ASCII (all regex syntax) is left untouched.
pub(crate) fn normalize_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if c.is_ascii() || !(c.is_alphabetic() || is_combining_mark(c) || is_invisible(c)) {
            out.push(c);
            continue;
        }
        let n = normalize(&c.to_string(), true).text;
        for d in n.chars() {
            if d.is_ascii() && !d.is_ascii_alphanumeric() {
                out.push_str(&regex::escape(&d.to_string()));
            } else {
                out.push(d);
            }
        }
    }
    out
}

/// True for characters that are part of a word for whole-word matching.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when the match `start..end` of `text` (byte offsets) is bounded by non-word
/// characters on both sides (`check_end` false skips the right-hand side).
pub(crate) fn is_whole_word(text: &str, start: usize, end: usize, check_end: bool) -> bool {
    let before_ok = text[..start]
        .chars()
        .next_back()
        .is_none_or(|c| !is_word_char(c));
    let first_is_word = text[start..].chars().next().is_some_and(is_word_char);
    let last_is_word = text[..end].chars().next_back().is_some_and(is_word_char);
    let after_ok = !check_end || text[end..].chars().next().is_none_or(|c| !is_word_char(c));
    (before_ok || !first_is_word) && (after_ok || !last_is_word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(n: &Normalized, needle: &str) -> Option<(usize, usize)> {
        let s = n.text.find(needle)?;
        n.to_original(s, s + needle.len())
    }

    #[test]
    fn folds_case_and_lookalikes() {
        let n = normalize("Guаrantee", true); // Cyrillic а
        assert_eq!(n.text, "guarantee");
        assert_eq!(span(&n, "guarantee"), Some((0, 9)));
    }

    #[test]
    fn removes_zero_width_and_maps_back() {
        let text = "sh\u{200B}it happens";
        let n = normalize(text, true);
        assert_eq!(n.text, "shit happens");
        assert_eq!(span(&n, "shit"), Some((0, 5)));
        assert_eq!(span(&n, "happens"), Some((6, 13)));
    }

    #[test]
    fn full_width_digits_and_ligatures() {
        let n = normalize("４０１２ ﬃ", true);
        assert_eq!(n.text, "4012 ffi");
        assert_eq!(span(&n, "ffi"), Some((5, 6)));
        assert_eq!(span(&n, "f"), Some((5, 6)));
    }

    #[test]
    fn accents_and_sharp_s() {
        assert_eq!(normalize("Schöne Straße", true).text, "schone strasse");
        assert_eq!(normalize_term("GARANTÍA"), "garantia");
        assert_eq!(normalize_pattern("garant[ií]a"), "garant[ii]a");
    }

    #[test]
    fn whitespace_collapses() {
        let n = normalize("a \u{00A0}\n b", true);
        assert_eq!(n.text, "a b");
        assert_eq!(span(&n, "b"), Some((5, 6)));
    }

    proptest::proptest! {
        #[test]
        fn every_normalised_byte_maps_into_the_original(text in "\\PC{0,200}") {
            let n = normalize(&text, true);
            let len = text.chars().count();
            for (i, _) in n.text.char_indices() {
                let end = i + n.text[i..].chars().next().map_or(1, char::len_utf8);
                let (s, e) = n.to_original(i, end).expect("maps");
                proptest::prop_assert!(s < e && e <= len);
            }
            if !n.text.is_empty() {
                let (s, e) = n.to_original(0, n.text.len()).expect("whole text maps");
                proptest::prop_assert!(s < e && e <= len);
            }
        }
    }

    /// The fast paths give exactly what the general path gives.
    #[test]
    fn fast_paths_agree_with_the_general_path() {
        for c in (0..PLAIN_LIMIT).filter_map(char::from_u32) {
            assert_eq!(is_plain(c), plain_by_definition(c), "{c:?}");
            if is_plain(c) {
                // the general path would give the same character, mapped the same way
                let s = c.to_string();
                let mut b = Builder {
                    text: String::new(),
                    map: Vec::new(),
                    fold_case: true,
                    last_space: false,
                };
                decompose_compatible(skeleton(c), |d| {
                    if is_combining_mark(d) || is_invisible(d) || d.is_whitespace() {
                        b.text.push('!');
                        return;
                    }
                    for l in skeleton(d).to_lowercase() {
                        b.push(skeleton(l), 0);
                    }
                });
                assert_eq!(b.text, s, "{c:?}");
            }
            if c.is_ascii() {
                assert!(!is_invisible(c) && !is_combining_mark(c));
                assert_eq!(c.is_whitespace(), c.is_ascii_whitespace() || c == '\u{0B}');
                let s = skeleton(c);
                assert!(s == c || (c == '`' && s == '\''), "{c:?}");
            }
        }
        for s in [
            "a  b\t\n c`D",
            " \x0B x",
            "ABC  ",
            "",
            "\r\n",
            "Hi\tthere`X.\x0B",
        ] {
            let fast = normalize_ascii(s, true);
            let mut with_marker = s.to_string();
            with_marker.push('\u{00E9}');
            let general = normalize(&with_marker, true);
            assert_eq!(general.text, format!("{}e", fast.text));
            assert_eq!(&general.map[..fast.map.len()], &fast.map[..]);
        }
    }

    #[test]
    fn whole_word() {
        let t = "scunthorpe is nice";
        assert!(!is_whole_word(t, 1, 5, true));
        assert!(is_whole_word(t, 11, 13, true));
        assert!(is_whole_word("a 3.9% b", 2, 6, true));
    }
}
