//! Compiling a policy set once, and checking a draft against it.
//!
//! All regular expressions of `pattern` rules go into one `RegexSet` (one pass finds the
//! rules that can match; only those are then run for their spans); all terms of all `terms`
//! rules, and the organisation's accepted words, go into one Aho-Corasick automaton.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use rlibphonenumber::enums::Region;

use super::config::{FileDef, RuleKind, SourceFile};
use super::detectors::{self, DetectorKind, DetectorRegexes};
use super::length;
use super::normalize::{is_whole_word, is_word_char, normalize, normalize_pattern, normalize_term};
use super::org::Organisation;
use super::report::{Finding, LengthRule, PolicyFileError, Severity};

/// Size limit of one compiled regular expression (guards against patterns that explode).
const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

#[derive(Debug)]
pub(crate) enum CompiledKind {
    Pattern {
        regexes: Vec<Regex>,
        whole_word: bool,
    },
    Terms,
    Detector(DetectorKind),
    Require {
        when: Vec<Regex>,
        needs: Vec<Regex>,
    },
    Length {
        max: usize,
        /// The checks it applies to.
        rule: LengthRule,
    },
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub category: String,
    pub severity: Severity,
    pub message: String,
    pub suggestion: Option<String>,
    pub kind: CompiledKind,
    pub exceptions: Vec<Regex>,
    pub allow_org: bool,
}

#[derive(Debug)]
struct TermEntry {
    /// `None` for an accepted word of the organisation.
    rule: Option<usize>,
    /// The term ended in `*`: the word may go on.
    prefix: bool,
}

/// What a pattern of the folded `RegexSet` belongs to.
#[derive(Debug, Clone, Copy)]
enum SetOwner {
    /// Pattern `k` of the pattern rule.
    Pattern(usize, usize),
    /// Pattern `k` of the `when` list of the require rule.
    When(usize, usize),
}

/// A compiled policy set.
#[derive(Debug)]
pub(crate) struct Engine {
    pub rules: Vec<Rule>,
    folded_set: RegexSet,
    /// All patterns of `folded_set` in one regex: it matches exactly when one of them does,
    /// and a plain "is there a match" search costs much less than the set's search for
    /// every pattern that matches. Most drafts match none.
    folded_any: Option<Regex>,
    folded_owner: Vec<SetOwner>,
    cs_set: RegexSet,
    cs_owner: Vec<(usize, usize)>,
    terms: Option<AhoCorasick>,
    term_owner: Vec<TermEntry>,
    /// The bytes that occur in some term or accepted word. The automaton is back in its
    /// start state after any other byte, so long runs of them need not be searched.
    term_bytes: [bool; 256],
    detectors: DetectorRegexes,
    org: Organisation,
}

/// The non-empty matches of a pattern rule's regex in `text` (byte ranges), whole words
/// only when the rule says so.
fn pattern_matches<'t>(
    re: &'t Regex,
    whole_word: bool,
    text: &'t str,
) -> impl Iterator<Item = (usize, usize)> + 't {
    re.find_iter(text)
        .filter(move |m| {
            !m.is_empty() && (!whole_word || is_whole_word(text, m.start(), m.end(), true))
        })
        .map(|m| (m.start(), m.end()))
}

/// An example to verify once the set is compiled.
pub(crate) struct Example {
    /// The rule, or `None` for an example of the organisation (no detector may report it).
    pub rule: Option<usize>,
    pub file: usize,
    pub byte: usize,
    pub text: String,
    pub should_match: bool,
    /// The length rule the example is checked under (its rule's channel, else X's).
    pub length_rule: LengthRule,
}

/// Word boundaries of policy patterns are ASCII boundaries: the normalised text is ASCII for
/// Latin script (accents are folded), and ASCII boundaries keep the fast DFA engines usable
/// (Unicode boundaries make the regex engine fall back to a much slower one on non-ASCII
/// text). Characters of other scripts count as non-word characters.
pub(crate) fn ascii_word_boundaries(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push_str("(?-u:\\b)"),
            Some('B') => out.push_str("(?-u:\\B)"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn prepare_pattern(src: &str) -> String {
    ascii_word_boundaries(&normalize_pattern(src))
}

fn build_regex(src: &str, case_sensitive: bool) -> Result<Regex, String> {
    let pattern = prepare_pattern(src);
    RegexBuilder::new(&pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(s) => {
                let last = s.lines().last().unwrap_or("").trim().to_string();
                format!("invalid regular expression `{src}`: {last}")
            }
            other => format!("invalid regular expression `{src}`: {other}"),
        })
}

impl Engine {
    /// Compiles the parsed files. Returns the engine and the examples to verify, or every
    /// error found.
    pub fn compile(
        sources: &[SourceFile],
        defs: Vec<(usize, FileDef)>,
    ) -> Result<(Engine, Vec<Example>), Vec<PolicyFileError>> {
        let mut errors = Vec::new();
        super::normalize::warm_up();
        length::warm_up();
        let detectors = match DetectorRegexes::new() {
            Ok(d) => d,
            Err(e) => {
                errors.push(PolicyFileError {
                    file: String::new(),
                    line: None,
                    rule: None,
                    message: format!("internal detector patterns failed to compile: {e}"),
                });
                return Err(errors);
            }
        };

        // The organisation: one file of the set.
        let mut org = Organisation::default();
        let mut org_examples = Vec::new();
        let mut org_file: Option<usize> = None;
        for (fi, def) in &defs {
            let Some(o) = &def.organisation else { continue };
            let src = &sources[*fi];
            if let Some(prev) = org_file {
                errors.push(src.error(
                    Some(o.span().start),
                    None,
                    format!(
                        "a second [organisation] table; the organisation is set once, in {}",
                        sources[prev].rel
                    ),
                ));
                continue;
            }
            org_file = Some(*fi);
            let o = o.get_ref();
            if !o.phone_regions.is_empty() {
                org.regions.clear();
                for r in &o.phone_regions {
                    match Organisation::parse_region(r.get_ref()) {
                        Some(id) => org.regions.push(id),
                        None => errors.push(src.error(
                            Some(r.span().start),
                            None,
                            format!("unknown phone region `{}` (use the two-letter code of a country with a numbering plan, such as US or GB)", r.get_ref()),
                        )),
                    }
                }
                if org.regions.is_empty() {
                    org.regions.push(Region::US);
                }
            }
            org.emails = o
                .emails
                .iter()
                .map(|e| detectors::canonical_email(&normalize_term(e)))
                .collect();
            org.email_domains = o
                .email_domains
                .iter()
                .map(|d| normalize_term(d).trim_start_matches('@').to_string())
                .collect();
            for p in &o.phones {
                match org.phone_key_of(p.get_ref()) {
                    Some(key) => org.phones.push(key),
                    None => errors.push(src.error(
                        Some(p.span().start),
                        None,
                        format!(
                            "`{}` is not a valid phone number in the phone regions",
                            p.get_ref()
                        ),
                    )),
                }
            }
            org.handles = o.handles.iter().map(|h| normalize_term(h)).collect();
            org.links = o
                .links
                .iter()
                .map(|l| Organisation::link_prefix(l))
                .collect();
            org.accept = o.accept.clone();
            for e in &o.examples {
                org_examples.push(Example {
                    rule: None,
                    file: *fi,
                    byte: e.span().start,
                    text: e.get_ref().clone(),
                    should_match: false,
                    length_rule: LengthRule::X,
                });
            }
        }

        let mut rules: Vec<Rule> = Vec::new();
        let mut examples = org_examples;
        let mut folded_patterns: Vec<String> = Vec::new();
        let mut folded_owner = Vec::new();
        let mut cs_patterns: Vec<String> = Vec::new();
        let mut cs_owner = Vec::new();
        let mut term_patterns: Vec<String> = Vec::new();
        let mut term_owner: Vec<TermEntry> = Vec::new();
        let mut seen_ids: std::collections::HashMap<String, (usize, usize)> = Default::default();

        for (fi, def) in defs {
            let src = &sources[fi];
            for spanned in def.rule {
                let r = spanned.into_inner();
                let id = r.id.get_ref().trim().to_string();
                let id_byte = r.id.span().start;
                let line_byte = src
                    .content
                    .get(..id_byte)
                    .and_then(|c| c.rfind("[[rule]]"))
                    .unwrap_or(id_byte);
                let mut rule_errors: Vec<PolicyFileError> = Vec::new();
                let mut err = |byte: usize, msg: String| {
                    rule_errors.push(src.error(Some(byte), Some(id.clone()), msg));
                };
                if id.is_empty() || id.chars().any(|c| c.is_whitespace()) {
                    err(
                        id_byte,
                        "a rule id must be a non-empty word such as `pii.card.luhn`".into(),
                    );
                }
                if let Some((pf, pl)) = seen_ids.get(&id) {
                    err(
                        line_byte,
                        format!(
                            "duplicate rule id (first defined in {}:{})",
                            sources[*pf].rel, pl
                        ),
                    );
                } else {
                    seen_ids.insert(id.clone(), (fi, src.rule_line(id_byte)));
                }
                let category = r.category.get_ref().trim().to_string();
                if category.is_empty() {
                    err(
                        r.category.span().start,
                        "the category may not be empty".into(),
                    );
                }
                let severity = match r.severity.or_else(|| Severity::default_for(&category)) {
                    Some(s) => s,
                    None => {
                        err(
                            r.category.span().start,
                            format!(
                                "category `{category}` has no default severity: set `severity`"
                            ),
                        );
                        Severity::Block
                    }
                };
                let kind = *r.kind.get_ref();
                let kind_byte = r.kind.span().start;
                // Fields that do not belong to the kind are errors, not silently ignored.
                let mut misplaced = Vec::new();
                if kind != RuleKind::Pattern {
                    if !r.patterns.is_empty() {
                        misplaced.push("patterns");
                    }
                    if r.whole_word.is_some() {
                        misplaced.push("whole_word");
                    }
                    if r.case_sensitive.is_some() {
                        misplaced.push("case_sensitive");
                    }
                }
                if kind != RuleKind::Terms && !r.terms.is_empty() {
                    misplaced.push("terms");
                }
                if kind != RuleKind::Detector {
                    if r.detector.is_some() {
                        misplaced.push("detector");
                    }
                    if r.allow_organisation.is_some() {
                        misplaced.push("allow_organisation");
                    }
                }
                if kind != RuleKind::Require && (!r.when.is_empty() || !r.needs.is_empty()) {
                    misplaced.push("when/needs");
                }
                if kind != RuleKind::Length && r.max.is_some() {
                    misplaced.push("max");
                }
                if kind != RuleKind::Length && r.channel.is_some() {
                    misplaced.push("channel");
                }
                let length_rule = match &r.channel {
                    None => LengthRule::X,
                    Some(c) => c.get_ref().parse().unwrap_or_else(|m: String| {
                        err(c.span().start, m);
                        LengthRule::X
                    }),
                };
                for m in misplaced {
                    err(
                        kind_byte,
                        format!("field `{m}` does not apply to a `{}` rule", kind.name()),
                    );
                }

                let case_sensitive = r.case_sensitive.unwrap_or(false);
                let compile_list =
                    |list: &[toml::Spanned<String>],
                     cs: bool,
                     what: &str,
                     err: &mut dyn FnMut(usize, String)| {
                        let mut out = Vec::new();
                        for p in list {
                            match build_regex(p.get_ref(), cs) {
                                Ok(re) => out.push(re),
                                Err(m) => err(p.span().start, format!("{what}: {m}")),
                            }
                        }
                        out
                    };
                let exceptions = compile_list(&r.exceptions, false, "exception", &mut err);
                let rule_index = rules.len();
                let compiled = match kind {
                    RuleKind::Pattern => {
                        if r.patterns.is_empty() {
                            err(kind_byte, "a pattern rule needs `patterns`".into());
                        }
                        let regexes =
                            compile_list(&r.patterns, case_sensitive, "pattern", &mut err);
                        for (k, p) in r.patterns.iter().enumerate().take(regexes.len()) {
                            let src_pat = prepare_pattern(p.get_ref());
                            if case_sensitive {
                                cs_patterns.push(src_pat);
                                cs_owner.push((rule_index, k));
                            } else {
                                folded_patterns.push(src_pat);
                                folded_owner.push(SetOwner::Pattern(rule_index, k));
                            }
                        }
                        CompiledKind::Pattern {
                            regexes,
                            whole_word: r.whole_word.unwrap_or(false),
                        }
                    }
                    RuleKind::Terms => {
                        if r.terms.is_empty() {
                            err(kind_byte, "a terms rule needs `terms`".into());
                        }
                        for t in &r.terms {
                            let raw = t.get_ref().trim();
                            let (body, prefix) = match raw.strip_suffix('*') {
                                Some(b) => (b, true),
                                None => (raw, false),
                            };
                            let n = normalize_term(body);
                            if n.is_empty() {
                                err(t.span().start, "empty term".into());
                                continue;
                            }
                            term_patterns.push(n);
                            term_owner.push(TermEntry {
                                rule: Some(rule_index),
                                prefix,
                            });
                        }
                        CompiledKind::Terms
                    }
                    RuleKind::Detector => match &r.detector {
                        Some(d) => CompiledKind::Detector(*d.get_ref()),
                        None => {
                            err(kind_byte, "a detector rule needs `detector` (card, ssn, iban, email, phone or link)".into());
                            CompiledKind::Terms
                        }
                    },
                    RuleKind::Require => {
                        if r.when.is_empty() || r.needs.is_empty() {
                            err(
                                kind_byte,
                                "a require rule needs both `when` and `needs`".into(),
                            );
                        }
                        let when = compile_list(&r.when, false, "when", &mut err);
                        let needs = compile_list(&r.needs, false, "needs", &mut err);
                        // `when` patterns join the one pass of the folded set: the rule
                        // costs nothing on a draft none of them matches.
                        for (k, p) in r.when.iter().enumerate().take(when.len()) {
                            folded_patterns.push(prepare_pattern(p.get_ref()));
                            folded_owner.push(SetOwner::When(rule_index, k));
                        }
                        CompiledKind::Require { when, needs }
                    }
                    RuleKind::Length => CompiledKind::Length {
                        max: r.max.unwrap_or(match length_rule {
                            LengthRule::X => 280,
                            LengthRule::Mastodon => 500,
                        }),
                        rule: length_rule,
                    },
                };
                if let Some(ex) = &r.examples {
                    for (list, should_match) in [(&ex.matching, true), (&ex.no_match, false)] {
                        for e in list {
                            examples.push(Example {
                                rule: Some(rule_index),
                                file: fi,
                                byte: e.span().start,
                                text: e.get_ref().clone(),
                                should_match,
                                length_rule,
                            });
                        }
                    }
                }
                rules.push(Rule {
                    id: id.clone(),
                    category,
                    severity,
                    message: r.message.trim().to_string(),
                    suggestion: r
                        .suggestion
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty()),
                    kind: compiled,
                    exceptions,
                    allow_org: r.allow_organisation.unwrap_or(true),
                });
                errors.extend(rule_errors);
            }
        }

        for a in org.accept_terms() {
            if !a.is_empty() {
                term_patterns.push(a);
                term_owner.push(TermEntry {
                    rule: None,
                    prefix: false,
                });
            }
        }

        let mut term_bytes = [false; 256];
        for p in &term_patterns {
            for &b in p.as_bytes() {
                term_bytes[usize::from(b)] = true;
            }
        }

        let set = |pats: &[String], cs: bool| {
            RegexSetBuilder::new(pats)
                .case_insensitive(!cs)
                .size_limit(REGEX_SIZE_LIMIT * 8)
                .build()
        };
        let folded_set = set(&folded_patterns, false);
        // Only a help: a set too large for one regex goes without it.
        let folded_any = RegexBuilder::new(
            &folded_patterns
                .iter()
                .map(|p| format!("(?:{p})"))
                .collect::<Vec<_>>()
                .join("|"),
        )
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT * 8)
        .build()
        .ok()
        .filter(|_| !folded_patterns.is_empty());
        let cs_set = set(&cs_patterns, true);
        let terms = if term_patterns.is_empty() {
            Ok(None)
        } else {
            // A DFA is the fastest for overlapping search; a huge vocabulary falls back to
            // whatever the builder picks.
            let build = |kind| {
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .kind(kind)
                    .build(&term_patterns)
            };
            build(Some(AhoCorasickKind::DFA))
                .or_else(|_| build(None))
                .map(Some)
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let (folded_set, cs_set, terms) = match (folded_set, cs_set, terms) {
            (Ok(a), Ok(b), Ok(c)) => (a, b, c),
            (a, b, c) => {
                let msg = match (a.err(), b.err(), c.err()) {
                    (Some(e), _, _) | (_, Some(e), _) => e.to_string(),
                    (_, _, Some(e)) => e.to_string(),
                    _ => "unknown error".into(),
                };
                return Err(vec![PolicyFileError {
                    file: sources.first().map(|s| s.rel.clone()).unwrap_or_default(),
                    line: None,
                    rule: None,
                    message: format!("the rules together are too large to compile: {msg}"),
                }]);
            }
        };
        Ok((
            Engine {
                rules,
                folded_set,
                folded_any,
                folded_owner,
                cs_set,
                cs_owner,
                terms,
                term_owner,
                term_bytes,
                detectors,
                org,
            },
            examples,
        ))
    }

    /// The organisation's contact points and phone regions, as loaded.
    #[cfg(test)]
    pub(crate) fn organisation(&self) -> &Organisation {
        &self.org
    }

    /// Runs every rule on `text` (the length rules of `length_rule` only): its length by
    /// that rule's count, and the findings sorted by start.
    ///
    /// `mentions` are the fediverse handles (`user@domain`, lower case) the reply may
    /// mention as `@user@domain`: the customer's own, which is not an e-mail address.
    pub fn check(
        &self,
        text: &str,
        length_rule: LengthRule,
        mentions: &[String],
    ) -> (usize, Vec<Finding>) {
        let measured = length::measure(text);
        let counted = match length_rule {
            LengthRule::X => None,
            LengthRule::Mastodon => Some(length::mastodon_units(&measured)),
        };
        let weighted = match &counted {
            None => measured.weighted,
            Some(units) => units.iter().map(|u| u.1).sum(),
        };
        let norm = normalize(text, true);
        let t = norm.text.as_str();
        // Cheap facts that rule out whole detectors: every number detector needs a digit,
        // the e-mail detector an `@` or a bracketed "at".
        // (in blocks of 32 bytes without an early exit inside a block: the compiler turns
        // that into a few vector instructions instead of a branch per byte)
        let has_digit = t
            .as_bytes()
            .chunks(32)
            .any(|block| block.iter().fold(false, |any, b| any | b.is_ascii_digit()));
        let maybe_email = t.contains('@') || (t.contains("at") && t.contains(['[', '(', '{']));
        // (rule, start, end) in original characters
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        let push = |hits: &mut Vec<(usize, usize, usize)>, rule: usize, s: usize, e: usize| {
            if let Some((a, b)) = norm.to_original(s, e) {
                hits.push((rule, a, b));
            }
        };

        // pattern rules and the triggers of require rules, folded text: one pass finds
        // the patterns that match, only those are run for their spans
        let mut triggered: Vec<(usize, usize)> = Vec::new();
        let any_folded = match &self.folded_any {
            Some(re) => re.is_match(t),
            None => !self.folded_owner.is_empty(),
        };
        if any_folded {
            for idx in self.folded_set.matches(t).iter() {
                match self.folded_owner[idx] {
                    SetOwner::Pattern(ri, k) => {
                        if let CompiledKind::Pattern {
                            regexes,
                            whole_word,
                        } = &self.rules[ri].kind
                        {
                            for (s, e) in pattern_matches(&regexes[k], *whole_word, t) {
                                push(&mut hits, ri, s, e);
                            }
                        }
                    }
                    SetOwner::When(ri, k) => triggered.push((ri, k)),
                }
            }
        }
        // pattern rules, case kept
        if !self.cs_owner.is_empty() {
            let cs = normalize(text, false);
            let ct = cs.text.as_str();
            for idx in self.cs_set.matches(ct).iter() {
                let (ri, k) = self.cs_owner[idx];
                if let CompiledKind::Pattern {
                    regexes,
                    whole_word,
                    ..
                } = &self.rules[ri].kind
                {
                    for (s, e) in pattern_matches(&regexes[k], *whole_word, ct) {
                        if let Some((a, b)) = cs.to_original(s, e) {
                            hits.push((ri, a, b));
                        }
                    }
                }
            }
        }

        // terms and accepted words
        let mut accepted: Vec<(usize, usize)> = Vec::new();
        if let Some(ac) = &self.terms {
            let matches = term_segments(t.as_bytes(), &self.term_bytes)
                .flat_map(|span| ac.find_overlapping_iter(aho_corasick::Input::new(t).span(span)));
            for m in matches {
                let entry = &self.term_owner[m.pattern().as_usize()];
                if !is_whole_word(t, m.start(), m.end(), !entry.prefix) {
                    continue;
                }
                let mut end = m.end();
                if entry.prefix {
                    end += t[end..]
                        .char_indices()
                        .find(|&(_, c)| !is_word_char(c))
                        .map_or(t.len() - end, |(i, _)| i);
                }
                match entry.rule {
                    Some(ri) => push(&mut hits, ri, m.start(), end),
                    None => {
                        if let Some(span) = norm.to_original(m.start(), end) {
                            accepted.push(span);
                        }
                    }
                }
            }
        }

        // detectors, require and length rules
        let mut chains: Option<Vec<detectors::Hit>> = None;
        for (ri, rule) in self.rules.iter().enumerate() {
            match &rule.kind {
                CompiledKind::Detector(d) => {
                    let org = rule.allow_org.then_some(&self.org);
                    let found = match d {
                        DetectorKind::Card if has_digit => detectors::cards(
                            chains.get_or_insert_with(|| detectors::digit_chains(t)),
                            t,
                        ),
                        DetectorKind::Ssn if has_digit => detectors::ssns(
                            &self.detectors,
                            chains.get_or_insert_with(|| detectors::digit_chains(t)),
                            t,
                        ),
                        DetectorKind::Iban if has_digit => detectors::ibans(&self.detectors, t),
                        DetectorKind::Email if maybe_email => {
                            let mut hits = detectors::emails(&self.detectors, t, org);
                            hits.retain(|&(s, e)| {
                                !(t[..s].ends_with('@')
                                    && mentions
                                        .iter()
                                        .any(|m| detectors::canonical_email(&t[s..e]) == *m))
                            });
                            hits
                        }
                        DetectorKind::Phone if has_digit => detectors::phones(
                            &self.detectors,
                            t,
                            &self.org,
                            rule.allow_org,
                            self.org.phone_parse_budget(),
                        ),
                        DetectorKind::Link => {
                            for &(s, e) in &measured.urls {
                                if !(rule.allow_org && self.org.link_allowed(&measured.url(s, e))) {
                                    hits.push((ri, s, e));
                                }
                            }
                            Vec::new()
                        }
                        _ => Vec::new(),
                    };
                    for (s, e) in found {
                        push(&mut hits, ri, s, e);
                    }
                }
                CompiledKind::Require { when, needs } => {
                    let mut triggers = Vec::new();
                    for &(_, k) in triggered.iter().filter(|&&(r, _)| r == ri) {
                        for m in when[k].find_iter(t) {
                            if !m.is_empty() {
                                triggers.push((m.start(), m.end()));
                            }
                        }
                    }
                    if !triggers.is_empty() && !needs.iter().any(|re| re.is_match(t)) {
                        for (s, e) in triggers {
                            push(&mut hits, ri, s, e);
                        }
                    }
                }
                CompiledKind::Length { max, rule } if *rule == length_rule => {
                    let over = match &counted {
                        None => length::overflow_start(&measured, *max),
                        Some(units) => length::overflow_in(units, *max),
                    };
                    if let Some(start) = over {
                        let total = norm.original_len();
                        if start < total {
                            hits.push((ri, start, total));
                        }
                    }
                }
                CompiledKind::Length { .. }
                | CompiledKind::Pattern { .. }
                | CompiledKind::Terms => {}
            }
        }

        if hits.is_empty() {
            return (weighted, Vec::new());
        }

        // exceptions (context that cancels a match) and the accept list
        let mut exception_spans: Vec<Option<Vec<(usize, usize)>>> = vec![None; self.rules.len()];
        hits.retain(|&(ri, s, e)| {
            let rule = &self.rules[ri];
            if !rule.exceptions.is_empty() {
                let spans = exception_spans[ri].get_or_insert_with(|| {
                    rule.exceptions
                        .iter()
                        .flat_map(|re| re.find_iter(t))
                        .filter(|m| !m.is_empty())
                        .filter_map(|m| norm.to_original(m.start(), m.end()))
                        .collect()
                });
                if spans.iter().any(|&(a, b)| a < e && s < b) {
                    return false;
                }
            }
            let vocabulary_rule = matches!(
                rule.kind,
                CompiledKind::Pattern { .. } | CompiledKind::Terms | CompiledKind::Require { .. }
            );
            !(vocabulary_rule && accepted.iter().any(|&(a, b)| a <= s && e <= b))
        });

        // merge overlapping hits of one rule, then sort by start
        hits.sort_by_key(|&(ri, s, e)| (ri, s, e));
        let mut merged: Vec<(usize, usize, usize)> = Vec::with_capacity(hits.len());
        for h in hits {
            match merged.last_mut() {
                Some(last) if last.0 == h.0 && h.1 < last.2 => last.2 = last.2.max(h.2),
                _ => merged.push(h),
            }
        }
        merged
            .sort_by(|a, b| (a.1, a.2, &self.rules[a.0].id).cmp(&(b.1, b.2, &self.rules[b.0].id)));
        let findings = merged
            .into_iter()
            .map(|(ri, s, e)| {
                let r = &self.rules[ri];
                Finding {
                    rule: r.id.clone(),
                    category: r.category.clone(),
                    severity: r.severity,
                    start: s,
                    end: e,
                    message: r.message.clone(),
                    suggestion: r.suggestion.clone(),
                }
            })
            .collect();
        (weighted, findings)
    }
}

/// Runs of no fewer than this many bytes that occur in no term are skipped by the terms
/// search (shorter ones are not worth a search of their own).
const TERM_GAP: usize = 16;

/// The parts of `text` the terms automaton must search: every term occurrence lies inside
/// one of them. A term occurrence holds only bytes of `term_bytes`, and after any other byte
/// the automaton is back in its start state, so searching the parts one by one finds
/// exactly the occurrences, in the same order, that a search of the whole text finds.
fn term_segments<'a>(
    text: &'a [u8],
    term_bytes: &'a [bool; 256],
) -> impl Iterator<Item = std::ops::Range<usize>> + 'a {
    let n = text.len();
    let mut i = 0;
    std::iter::from_fn(move || {
        // skip bytes of no term
        while i < n && !term_bytes[usize::from(text[i])] {
            i += 1;
        }
        if i >= n {
            return None;
        }
        let start = i;
        let mut gap = 0;
        while i < n {
            if term_bytes[usize::from(text[i])] {
                gap = 0;
            } else {
                gap += 1;
            }
            i += 1;
            if gap >= TERM_GAP {
                break;
            }
        }
        // text[i - gap..i] holds no byte of a term
        Some(start..i - gap)
    })
}

impl Engine {
    /// True when `id` names a `detector` rule.
    pub fn is_detector_rule(&self, id: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.id == id && matches!(r.kind, CompiledKind::Detector(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Searching the term segments one by one finds what a search of the whole text
        /// finds, in the same order.
        #[test]
        fn term_segments_find_every_occurrence(
            text in "[ab \\-.\u{e9}\u{4e00}\u{1f600}]{0,120}",
        ) {
            let terms = ["ab", "a b", "b-a", "aa", "\u{e9}a"];
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(terms)
                .expect("builds");
            let mut term_bytes = [false; 256];
            for t in terms {
                for &b in t.as_bytes() {
                    term_bytes[usize::from(b)] = true;
                }
            }
            let whole: Vec<_> = ac
                .find_overlapping_iter(text.as_str())
                .map(|m| (m.pattern(), m.start(), m.end()))
                .collect();
            let parts: Vec<_> = term_segments(text.as_bytes(), &term_bytes)
                .flat_map(|span| ac.find_overlapping_iter(aho_corasick::Input::new(&text).span(span)))
                .map(|m| (m.pattern(), m.start(), m.end()))
                .collect();
            proptest::prop_assert_eq!(whole, parts);
        }
    }
}
