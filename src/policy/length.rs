//! X's weighted length (twitter-text configuration v3) and the URL extraction it needs.
//!
//! The text is NFC-normalised first. Each URL counts 23; each emoji sequence counts 2;
//! every other code point counts 1 if it lies in 0-4351, 8192-8205, 8208-8223 or
//! 8242-8247, else 2.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::char_table::CharTable;

use unicode_normalization::UnicodeNormalization;

/// Weight of a URL, whatever its length.
const URL_WEIGHT: usize = 23;
/// Weight of one emoji sequence.
const EMOJI_WEIGHT: usize = 2;
/// Longest URL twitter-text accepts.
const MAX_URL_LENGTH: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TldKind {
    Country,
    Generic,
}

fn tlds() -> &'static HashMap<String, TldKind> {
    static TLDS: OnceLock<HashMap<String, TldKind>> = OnceLock::new();
    TLDS.get_or_init(|| {
        let mut m = HashMap::new();
        for line in include_str!("tlds.txt").lines() {
            let line = line.trim();
            if let Some(t) = line.strip_prefix("c ") {
                m.insert(t.to_string(), TldKind::Country);
            } else if let Some(t) = line.strip_prefix("g ") {
                m.insert(t.to_string(), TldKind::Generic);
            }
        }
        m
    })
}

fn tld_kind(label: &[char]) -> Option<TldKind> {
    // The common case, an ASCII label, is lower-cased on the stack.
    if label.len() <= 63 && label.iter().all(char::is_ascii) {
        let mut buf = [0u8; 63];
        for (b, c) in buf.iter_mut().zip(label) {
            *b = c.to_ascii_lowercase() as u8;
        }
        let s = std::str::from_utf8(&buf[..label.len()]).ok()?;
        if s.starts_with("xn--")
            && s.len() > 4
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Some(TldKind::Generic);
        }
        return tlds().get(s).copied();
    }
    let s: String = label.iter().flat_map(|c| c.to_lowercase()).collect();
    if s.starts_with("xn--")
        && s.len() > 4
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Some(TldKind::Generic);
    }
    tlds().get(&s).copied()
}

/// The weighted length of `text` as X counts it (twitter-text v3).
pub fn weighted_length(text: &str) -> usize {
    measure(text).weighted
}

/// One pass of the length machinery over a draft: its weighted length, and its characters
/// and URLs (char ranges) as written, for link rules and for locating a length overflow.
pub(crate) struct Measured {
    pub weighted: usize,
    pub chars: Vec<char>,
    pub urls: Vec<(usize, usize)>,
}

impl Measured {
    /// The URL `s..e` as a string.
    pub fn url(&self, s: usize, e: usize) -> String {
        self.chars[s..e].iter().collect()
    }
}

/// Measures `text` (see `Measured`). A text already in NFC (nearly every draft) is scanned
/// for URLs once; otherwise the NFC form is counted and the original scanned for links.
pub(crate) fn measure(text: &str) -> Measured {
    let mut chars: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        // never reallocates: a text has no more characters than bytes
        chars.push(c);
    }
    let is_nfc = text.is_ascii() || is_nfc_quick_yes(&chars);
    let urls = extract_urls(&chars);
    let weighted = if text.is_ascii() {
        // No emoji in ASCII (a keycap needs U+20E3), every character weighs 1.
        let in_urls: usize = urls.iter().map(|&(s, e)| e - s).sum();
        chars.len() - in_urls + URL_WEIGHT * urls.len()
    } else if is_nfc {
        weighted_length_chars(&chars, &urls)
    } else {
        let nfc: Vec<char> = text.nfc().collect();
        let nfc_urls = extract_urls(&nfc);
        weighted_length_chars(&nfc, &nfc_urls)
    };
    Measured {
        weighted,
        chars,
        urls,
    }
}

/// Characters below this bound are looked up in the table of `nfc_starter_table`.
const NFC_TABLE_LIMIT: u32 = 0x20000;

/// True when `c` is a starter (canonical combining class 0) whose NFC quick-check property
/// is Yes: a text made only of such characters is in NFC.
fn nfc_starter_by_definition(c: char) -> bool {
    unicode_normalization::char::canonical_combining_class(c) == 0
        && unicode_normalization::is_nfc_quick(std::iter::once(c))
            == unicode_normalization::IsNormalized::Yes
}

/// `nfc_starter_by_definition` for every character, computed once.
fn nfc_starter_table() -> &'static CharTable {
    static TABLE: OnceLock<CharTable> = OnceLock::new();
    TABLE.get_or_init(|| CharTable::build(NFC_TABLE_LIMIT, nfc_starter_by_definition))
}

/// Builds the lookup tables ahead of the first check.
pub(crate) fn warm_up() {
    let _ = nfc_starter_table();
}

/// `unicode_normalization::is_nfc_quick(chars) == Yes`, with a table lookup per character
/// for the common case of a text made only of starters that are always in NFC (CJK, kana,
/// Hangul syllables, emoji...). Anything else takes the library's own check.
fn is_nfc_quick_yes(chars: &[char]) -> bool {
    let table = nfc_starter_table();
    chars.iter().all(|&c| table.contains(c))
        || unicode_normalization::is_nfc_quick(chars.iter().copied())
            == unicode_normalization::IsNormalized::Yes
}

fn weighted_length_chars(chars: &[char], urls: &[(usize, usize)]) -> usize {
    let mut total = 0usize;
    let mut i = 0usize;
    let mut next_url = urls.iter().peekable();
    while i < chars.len() {
        if let Some(&&(s, e)) = next_url.peek() {
            if s == i {
                total += URL_WEIGHT;
                i = e;
                next_url.next();
                continue;
            }
        }
        if let Some(len) = emoji_len(chars, i) {
            total += EMOJI_WEIGHT;
            i += len;
            continue;
        }
        total += char_weight(chars[i]);
        i += 1;
    }
    total
}

/// For a text over `max`, the character index (into the original text) of the first
/// character that takes the weighted length past `max`. `None` when the text fits.
pub(crate) fn overflow_start(m: &Measured, max: usize) -> Option<usize> {
    if m.weighted <= max {
        return None;
    }
    // Locate the overflow on the original characters (NFC only merges combining marks,
    // so this is the same point, give or take a mark).
    let chars = &m.chars[..];
    let mut next_url = m.urls.iter().peekable();
    let mut total = 0usize;
    let mut i = 0usize;
    while i < chars.len() {
        let (w, len) = match next_url.peek() {
            Some(&&(s, e)) if s == i => {
                next_url.next();
                (URL_WEIGHT, e - s)
            }
            _ => match emoji_len(chars, i) {
                Some(len) => (EMOJI_WEIGHT, len),
                None => (char_weight(chars[i]), 1),
            },
        };
        total += w;
        if total > max {
            return Some(i);
        }
        i += len;
    }
    Some(chars.len().saturating_sub(1))
}

#[inline]
fn char_weight(c: char) -> usize {
    let cp = c as u32;
    if cp <= 4351
        || (8192..=8205).contains(&cp)
        || (8208..=8223).contains(&cp)
        || (8242..=8247).contains(&cp)
    {
        1
    } else {
        2
    }
}

// ---------------------------------------------------------------- emoji

fn is_pictographic(c: char) -> bool {
    let cp = c as u32;
    matches!(cp,
        0x00A9 | 0x00AE | 0x203C | 0x2049 | 0x2122 | 0x2139
        | 0x2194..=0x2199 | 0x21A9..=0x21AA | 0x231A..=0x231B | 0x2328 | 0x2388 | 0x23CF
        | 0x23E9..=0x23F3 | 0x23F8..=0x23FA | 0x24C2 | 0x25AA..=0x25AB | 0x25B6 | 0x25C0
        | 0x25FB..=0x25FE | 0x2600..=0x27BF | 0x2934..=0x2935 | 0x2B05..=0x2B07
        | 0x2B1B..=0x2B1C | 0x2B50 | 0x2B55 | 0x3030 | 0x303D | 0x3297 | 0x3299
        | 0x1F000..=0x1F1E5 | 0x1F200..=0x1FAFF | 0x1FC00..=0x1FFFD)
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_modifier(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

fn element_end(chars: &[char], i: usize) -> usize {
    let mut j = i + 1;
    if matches!(chars.get(j), Some('\u{FE0F}') | Some('\u{FE0E}')) {
        j += 1;
    }
    if chars.get(j).copied().is_some_and(is_modifier) {
        j += 1;
    }
    while chars
        .get(j)
        .is_some_and(|c| ('\u{E0020}'..='\u{E007F}').contains(c))
    {
        j += 1;
    }
    j
}

/// Ranges without pictographs or regional indicators (most non-Latin scripts, CJK, Hangul),
/// and non-ASCII below U+A9: no emoji can start there (keycaps start with ASCII).
#[inline]
fn no_emoji_here(c: char) -> bool {
    matches!(c as u32, 0x80..=0xA8 | 0xAA..=0xAD | 0xAF..=0x203B | 0x2B56..=0x302F
        | 0x303E..=0x3296 | 0x329A..=0x1EFFF)
}

/// Length in chars of the emoji sequence starting at `i`, if one starts there.
#[inline]
fn emoji_len(chars: &[char], i: usize) -> Option<usize> {
    let c = *chars.get(i)?;
    // Between U+3299 and U+1F000 there is neither a pictograph nor a regional indicator;
    // below U+A9 only keycaps (handled next).
    if no_emoji_here(c) {
        return None;
    }
    if c.is_ascii() && !(c.is_ascii_digit() || c == '#' || c == '*') {
        return None;
    }
    emoji_len_slow(chars, i, c)
}

/// `emoji_len` for a character that may start an emoji sequence.
#[inline(never)]
fn emoji_len_slow(chars: &[char], i: usize, c: char) -> Option<usize> {
    if c.is_ascii_digit() || c == '#' || c == '*' {
        let mut j = i + 1;
        if chars.get(j) == Some(&'\u{FE0F}') {
            j += 1;
        }
        return (chars.get(j) == Some(&'\u{20E3}')).then_some(j + 1 - i);
    }
    if is_regional_indicator(c) {
        return Some(
            if chars.get(i + 1).copied().is_some_and(is_regional_indicator) {
                2
            } else {
                1
            },
        );
    }
    if !is_pictographic(c) {
        return None;
    }
    if (c == '\u{A9}'
        || c == '\u{AE}'
        || c == '\u{203C}'
        || c == '\u{2049}'
        || c == '\u{2122}'
        || c == '\u{2139}')
        && chars.get(i + 1) != Some(&'\u{FE0F}')
    {
        return None;
    }
    let mut j = element_end(chars, i);
    while chars.get(j) == Some(&'\u{200D}')
        && chars.get(j + 1).copied().is_some_and(is_pictographic)
    {
        j = element_end(chars, j + 1);
    }
    Some(j - i)
}

// ---------------------------------------------------------------- URLs

fn is_invalid_char(c: char) -> bool {
    matches!(c, '\u{FFFE}' | '\u{FEFF}' | '\u{FFFF}')
}

fn is_directional(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn valid_preceding(c: char) -> bool {
    if is_directional(c) {
        return true;
    }
    !(c.is_ascii_alphanumeric() || matches!(c, '@' | '＠' | '$' | '#' | '＃') || is_invalid_char(c))
}

fn is_domain_char(c: char, unicode: bool) -> bool {
    if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
        return true;
    }
    unicode
        && !c.is_ascii()
        && (c.is_alphanumeric() || unicode_normalization::char::is_combining_mark(c))
        && !is_directional(c)
}

fn is_path_char(c: char) -> bool {
    if c.is_ascii_alphanumeric() {
        return true;
    }
    let cp = c as u32;
    if c.is_alphabetic()
        && (cp < 0x0250 || (0x0400..=0x04FF).contains(&cp) || (0x1E00..=0x1EFF).contains(&cp))
    {
        return true;
    }
    matches!(
        c,
        '!' | '*'
            | '\''
            | ';'
            | ':'
            | '='
            | '+'
            | ','
            | '.'
            | '$'
            | '/'
            | '%'
            | '#'
            | '['
            | ']'
            | '-'
            | '\u{2013}'
            | '_'
            | '~'
            | '|'
            | '&'
            | '@'
            | '('
            | ')'
            | '?'
    )
}

/// Trims characters that cannot end a URL (closing punctuation of the sentence).
fn trim_url_end(chars: &[char], start: usize, mut end: usize) -> usize {
    while end > start {
        let c = chars[end - 1];
        let ok = if c == ')' {
            let opens = chars[start..end].iter().filter(|&&x| x == '(').count();
            let closes = chars[start..end].iter().filter(|&&x| x == ')').count();
            opens >= closes
        } else {
            c.is_alphanumeric() || matches!(c, '=' | '_' | '#' | '/' | '-' | '+' | '&')
        };
        if ok {
            break;
        }
        end -= 1;
    }
    end
}

fn starts_with_ci(chars: &[char], i: usize, pat: &str) -> bool {
    let mut j = i;
    for p in pat.chars() {
        match chars.get(j) {
            Some(c) if c.to_ascii_lowercase() == p => j += 1,
            _ => return false,
        }
    }
    true
}

/// Splits `chars[s..e]` at dots into label ranges.
fn labels(chars: &[char], s: usize, e: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut ls = s;
    for (k, &c) in chars.iter().enumerate().take(e).skip(s) {
        if c == '.' {
            out.push((ls, k));
            ls = k + 1;
        }
    }
    out.push((ls, e));
    out
}

/// Finds the longest domain at the start of `chars[s..e]`: returns its end and the kind of
/// its TLD.
fn find_domain(chars: &[char], s: usize, e: usize) -> Option<(usize, TldKind, usize)> {
    let labs = labels(chars, s, e);
    // Labels after the first empty one can never be part of the domain.
    let usable = labs.iter().position(|&(a, b)| a == b).unwrap_or(labs.len());
    for k in (2..=usable).rev() {
        let parts = &labs[..k];
        // A TLD is at most 63 characters long: skip hopeless candidates cheaply.
        if parts[k - 1].1 - parts[k - 1].0 > 63 {
            continue;
        }
        let (ts, te) = parts[k - 1];
        let Some(kind) = tld_kind(&chars[ts..te]) else {
            continue;
        };
        // The TLD may not run on into a letter, digit or '@'.
        if let Some(&next) = chars.get(te) {
            if next == '@' || (next != '.' && next.is_alphanumeric()) {
                continue;
            }
        }
        // Domain-name label (the one before the TLD) may not start or end with '-' or '_'.
        let (ds, de) = parts[k - 2];
        let bad_edge = |c: char| c == '-' || c == '_';
        if bad_edge(chars[ds]) || bad_edge(chars[de - 1]) || chars[ds..de].contains(&'_') {
            continue;
        }
        return Some((te, kind, k));
    }
    None
}

/// Length of a host label in its ASCII (punycode) form.
fn ace_label_len(label: &[char]) -> usize {
    if label.iter().all(|c| c.is_ascii()) {
        return label.len();
    }
    let lower: Vec<u32> = label
        .iter()
        .flat_map(|c| c.to_lowercase())
        .map(|c| c as u32)
        .collect();
    4 + punycode_len(&lower)
}

/// Length of the RFC 3492 punycode encoding of `input`.
fn punycode_len(input: &[u32]) -> usize {
    const BASE: u64 = 36;
    const TMIN: u64 = 1;
    const TMAX: u64 = 26;
    const SKEW: u64 = 38;
    const DAMP: u64 = 700;
    fn adapt(mut delta: u64, numpoints: u64, first: bool) -> u64 {
        delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / numpoints;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + SKEW)
    }
    let basic = input.iter().filter(|&&c| c < 0x80).count();
    let mut out = basic + usize::from(basic > 0);
    let mut n: u64 = 128;
    let mut delta: u64 = 0;
    let mut bias: u64 = 72;
    let mut h = basic as u64;
    let b = basic as u64;
    let total = input.len() as u64;
    while h < total {
        let Some(m) = input.iter().map(|&c| c as u64).filter(|&c| c >= n).min() else {
            break;
        };
        delta = delta.saturating_add((m - n).saturating_mul(h + 1));
        n = m;
        for &c in input {
            let c = c as u64;
            if c < n {
                delta += 1;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out += 1;
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out += 1;
                bias = adapt(delta, h + 1, h == b);
                delta = 0;
                h += 1;
            }
        }
        delta += 1;
        n += 1;
    }
    out
}

fn host_ok(chars: &[char], s: usize, e: usize, url_len: usize, has_protocol: bool) -> bool {
    let mut ace_total = 0usize;
    for (a, b) in labels(chars, s, e) {
        let l = ace_label_len(&chars[a..b]);
        if l == 0 || l > 63 {
            return false;
        }
        ace_total += l;
    }
    ace_total += labels(chars, s, e).len().saturating_sub(1);
    let url_len = url_len + ace_total - (e - s) + if has_protocol { 0 } else { "https://".len() };
    url_len <= MAX_URL_LENGTH
}

/// Consumes an optional port, path and query after a domain ending at `d`.
fn url_tail(chars: &[char], d: usize, tco: bool) -> usize {
    let mut j = d;
    if chars.get(j) == Some(&':') && chars.get(j + 1).is_some_and(|c| c.is_ascii_digit()) {
        j += 1;
        while chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
    }
    if tco {
        if chars.get(j) == Some(&'/') {
            let mut k = j + 1;
            while chars.get(k).is_some_and(|c| c.is_ascii_alphanumeric()) {
                k += 1;
            }
            j = k;
        }
        return j;
    }
    if matches!(chars.get(j), Some('/') | Some('?')) {
        let mut k = j;
        while chars.get(k).copied().is_some_and(is_path_char) {
            k += 1;
        }
        j = trim_url_end(chars, j, k);
    }
    j
}

/// Finds the URLs in `chars` the way twitter-text does (closely enough for counting):
/// char ranges, sorted, not overlapping.
pub(crate) fn extract_urls(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // Every URL has a domain of at least two labels.
    if !chars.contains(&'.') {
        return out;
    }
    // A URL lies inside one run of non-white-space characters holding a dot, and the scan
    // below never jumps past the white space that ends a run (no URL, domain, protocol or
    // path character is white space), so runs without a dot are skipped whole.
    let n = chars.len();
    let mut run_start = 0usize;
    while run_start < n {
        if chars[run_start].is_whitespace() {
            run_start += 1;
            continue;
        }
        let mut run_end = run_start;
        let mut dotted = false;
        while run_end < n && !chars[run_end].is_whitespace() {
            dotted |= chars[run_end] == '.';
            run_end += 1;
        }
        if dotted {
            scan_urls(chars, run_start, run_end, &mut out);
        }
        run_start = run_end;
    }
    out
}

/// The URL scan of `extract_urls` from `from`, until it reaches `to`.
fn scan_urls(chars: &[char], from: usize, to: usize, out: &mut Vec<(usize, usize)>) {
    let n = chars.len();
    let mut i = from;
    while i < to {
        let preceding_ok = i == 0 || valid_preceding(chars[i - 1]);
        // With a protocol.
        let proto = if !matches!(chars[i], 'h' | 'H') {
            0
        } else if starts_with_ci(chars, i, "https://") {
            8
        } else if starts_with_ci(chars, i, "http://") {
            7
        } else {
            0
        };
        if proto > 0 && preceding_ok {
            let p = i + proto;
            let mut q = p;
            while q < n && is_domain_char(chars[q], true) {
                q += 1;
            }
            if let Some((d, _, _)) = find_domain(chars, p, q) {
                let host: String = chars[p..d].iter().flat_map(|c| c.to_lowercase()).collect();
                let end = url_tail(chars, d, host == "t.co");
                if host_ok(chars, p, d, end - i, true) {
                    out.push((i, end));
                }
                i = end.max(i + 1);
                continue;
            }
            i += proto;
            continue;
        }
        // Without a protocol: ASCII domains only.
        if chars[i].is_ascii_alphanumeric()
            && (i == 0 || (preceding_ok && !matches!(chars[i - 1], '-' | '_' | '.' | '/')))
        {
            let mut q = i;
            let mut dotted = false;
            while q < n && is_domain_char(chars[q], false) {
                dotted |= chars[q] == '.';
                q += 1;
            }
            if !dotted {
                i = q.max(i + 1);
                continue;
            }
            if let Some((d, kind, nlabels)) = find_domain(chars, i, q) {
                let has_path = chars.get(d) == Some(&'/');
                let short_cc = kind == TldKind::Country && nlabels == 2;
                if !short_cc || has_path {
                    let end = url_tail(chars, d, false);
                    if host_ok(chars, i, d, end - i, false) {
                        out.push((i, end));
                    }
                    i = end.max(i + 1);
                    continue;
                }
            }
            i = q.max(i + 1);
            continue;
        }
        i += 1;
    }
}

/// The length of a draft as Mastodon counts it (its `StatusLengthValidator`), as units of
/// `(first character, weight)`: a URL weighs 23, a mention `@user@domain` as `@user`, and
/// every other grapheme cluster 1.
pub(crate) fn mastodon_units(m: &Measured) -> Vec<(usize, usize)> {
    use unicode_segmentation::UnicodeSegmentation;
    let chars = &m.chars[..];
    let text: String = chars.iter().collect();
    // Which characters begin a grapheme cluster.
    let mut starts = vec![false; chars.len() + 1];
    let mut byte_to_char = 0usize;
    let mut bytes_seen = 0usize;
    for (b, g) in text.grapheme_indices(true) {
        while bytes_seen < b {
            bytes_seen += chars[byte_to_char].len_utf8();
            byte_to_char += 1;
        }
        starts[byte_to_char] = true;
        let _ = g;
    }
    starts[chars.len()] = true;
    let mut units = Vec::new();
    let mut urls = m.urls.iter().peekable();
    let mut i = 0usize;
    while i < chars.len() {
        if let Some(&&(s, e)) = urls.peek() {
            if s == i {
                urls.next();
                // Mastodon weighs only links with a scheme as 23; a bare `example.com/…`
                // counts its characters.
                let head = chars[s..e.min(s + 8)]
                    .iter()
                    .collect::<String>()
                    .to_ascii_lowercase();
                if head.starts_with("http://") || head.starts_with("https://") {
                    units.push((i, URL_WEIGHT));
                    i = e;
                    continue;
                }
            }
        }
        if let Some((len, user)) = mention_at(chars, i) {
            units.push((i, 1 + user));
            i += len;
            continue;
        }
        let mut next = i + 1;
        while !starts[next] {
            next += 1;
        }
        units.push((i, 1));
        i = next;
    }
    units
}

/// A Mastodon mention at `i`: its length in characters and its user part's.
fn mention_at(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if chars[i] != '@' || (i > 0 && (word(chars[i - 1]) || matches!(chars[i - 1], '/' | '='))) {
        return None;
    }
    let user_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let mut j = i + 1;
    while j < chars.len() && user_char(chars[j]) {
        j += 1;
    }
    // The user part starts and ends with a letter, digit or `_`.
    while j > i + 1 && matches!(chars[j - 1], '.' | '-') {
        j -= 1;
    }
    let user = j - (i + 1);
    if user == 0 || matches!(chars[i + 1], '.' | '-') {
        return None;
    }
    let mut end = j;
    if j < chars.len() && chars[j] == '@' {
        let mut k = j + 1;
        while k < chars.len() && (word(chars[k]) || matches!(chars[k], '.' | '-')) {
            k += 1;
        }
        while k > j + 1 && !word(chars[k - 1]) {
            k -= 1;
        }
        // Mastodon's domain part has at least two characters.
        if k > j + 2 {
            end = k;
        }
    }
    Some((end - i, user))
}

/// For units over `max` in total, the character where the count first passes `max`.
pub(crate) fn overflow_in(units: &[(usize, usize)], max: usize) -> Option<usize> {
    let mut total = 0usize;
    for &(start, weight) in units {
        total += weight;
        if total > max {
            return Some(start);
        }
    }
    None
}

/// URLs of `text` as char ranges of `text` itself (no NFC), for link rules.
#[cfg(test)]
pub(crate) fn url_spans(text: &str) -> Vec<(usize, usize, String)> {
    let m = measure(text);
    m.urls.iter().map(|&(s, e)| (s, e, m.url(s, e))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(t: &str) -> Vec<String> {
        url_spans(t).into_iter().map(|(_, _, u)| u).collect()
    }

    #[test]
    fn basic_weights() {
        assert_eq!(weighted_length("Hi http://test.co"), 26);
        assert_eq!(weighted_length("한국어"), 6);
        assert_eq!(weighted_length("1\u{20E3}"), 2);
        assert_eq!(weighted_length("H🐱☺👨‍👩‍👧‍👦"), 7);
    }

    #[test]
    fn extracts_urls() {
        assert_eq!(
            urls("see https://t.co/hApLpMlfHN ^AG"),
            vec!["https://t.co/hApLpMlfHN"]
        );
        assert_eq!(
            urls("here:https://t.co/MlOxxuNX7N. You'll"),
            vec!["https://t.co/MlOxxuNX7N"]
        );
        assert_eq!(urls("visit example.com/help."), vec!["example.com/help"]);
        assert_eq!(urls("visit www.example.com!"), vec!["www.example.com"]);
        assert!(urls("mail support@example.com now").is_empty());
        assert!(urls("Amazon.de Geschenkkarten").is_empty());
        assert!(urls("(.com .es)").is_empty());
        assert_eq!(
            urls("https://example.com/terms?x=1)."),
            vec!["https://example.com/terms?x=1"]
        );
    }

    #[test]
    fn emoji_fast_path_skips_no_emoji() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if no_emoji_here(c) {
                assert!(!is_pictographic(c) && !is_regional_indicator(c) && !c.is_ascii());
            }
        }
    }

    proptest::proptest! {
        /// The table fast path of the NFC check agrees with the library.
        #[test]
        fn nfc_fast_path_agrees(text in "\\PC{0,40}") {
            let chars: Vec<char> = text.chars().collect();
            let lib = unicode_normalization::is_nfc_quick(chars.iter().copied())
                == unicode_normalization::IsNormalized::Yes;
            proptest::prop_assert_eq!(is_nfc_quick_yes(&chars), lib);
        }
    }

    fn mastodon(text: &str) -> usize {
        mastodon_units(&measure(text)).iter().map(|u| u.1).sum()
    }

    #[test]
    fn mastodon_counts_graphemes_urls_and_mentions_as_it_does() {
        assert_eq!(mastodon("hello"), 5);
        // A URL is 23 whatever its length; a remote mention counts its user part.
        assert_eq!(
            mastodon("see https://example.com/a/very/long/path/indeed ok"),
            4 + 23 + 3
        );
        assert_eq!(mastodon("@jane@social.example hi"), 5 + 3);
        assert_eq!(
            mastodon("mail a@b.example"),
            5 + 11,
            "an address is not a mention"
        );
        assert_eq!(
            mastodon("see example.com/a/very/long/path"),
            4 + 28,
            "a link without a scheme counts its characters"
        );
        // One grapheme each: a family emoji (7 code points), e + combining acute.
        assert_eq!(mastodon("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}"), 1);
        assert_eq!(mastodon("e\u{301}"), 1);
        let units = mastodon_units(&measure(&"a".repeat(501)));
        assert_eq!(overflow_in(&units, 500), Some(500));
        assert_eq!(overflow_in(&units, 501), None);
    }

    #[test]
    fn punycode_lengths() {
        // "bücher" -> "bcher-kva"
        let v: Vec<u32> = "bücher".chars().map(|c| c as u32).collect();
        assert_eq!(punycode_len(&v), "bcher-kva".len());
        let v: Vec<u32> = "münchen".chars().map(|c| c as u32).collect();
        assert_eq!(punycode_len(&v), "mnchen-3ya".len());
    }
}
