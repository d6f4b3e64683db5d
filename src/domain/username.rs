//! Usernames that cannot pass for one another.
//!
//! A username is kept as typed (that is what the audit log and the UI show), but compared in
//! one canonical form, Unicode NFKC with full case folding (UAX #15 and Unicode's
//! "compatibility caseless match", D146): `Alice`, `ALICE` and full-width `ａｌｉｃｅ` are
//! one name, for uniqueness, sign-in and the lock-out key alike. On top of that, a name whose
//! confusable skeleton (Unicode TR39 section 4, from the `unicode-security` crate's copy of
//! Unicode's confusables table) equals another user's is refused, so a Cyrillic `аlice`
//! cannot sit beside `alice`.

use unicode_normalization::UnicodeNormalization;

/// Longest username, in characters.
pub const MAX_CHARS: usize = 64;

/// Why a username is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("a username is 1 to {MAX_CHARS} letters, digits, '.', '_', '-' or '@'")]
    Malformed,
}

/// A username as typed, checked for its characters, with its comparison forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    canonical: String,
    skeleton: String,
    cased_skeleton: String,
}

impl Username {
    /// Checks a new username: surrounding spaces trimmed, then 1 to [`MAX_CHARS`] letters,
    /// digits, `.`, `_`, `-` or `@`, with no invisible or format characters.
    pub fn parse(raw: &str) -> Result<Username, UsernameError> {
        let display = raw.trim();
        let ok = !display.is_empty()
            && display.chars().count() <= MAX_CHARS
            && display
                .chars()
                .all(|c| c.is_alphanumeric() || "._-@".contains(c));
        if !ok {
            return Err(UsernameError::Malformed);
        }
        let canonical = canonical(display);
        let skeleton = unicode_security::skeleton(&canonical).collect();
        let cased_skeleton = cased_skeleton_of(display);
        Ok(Username {
            display: display.to_string(),
            canonical,
            skeleton,
            cased_skeleton,
        })
    }

    /// The name as it was typed (trimmed): shown to people.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The form names are compared in: unique among users.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The confusable skeleton of the canonical form (`ALICE` and `аlice` meet `alice`).
    pub fn skeleton(&self) -> &str {
        &self.skeleton
    }

    /// The confusable skeleton of the name as typed, then folded (`Ian` meets `lan`, `B0B`
    /// meets `bob`): TR39's table is case-sensitive, and `I` reads both as `i` (its lower
    /// case) and as `l`, so one skeleton cannot catch both.
    pub fn cased_skeleton(&self) -> &str {
        &self.cased_skeleton
    }

    /// Both skeletons: two names clash when any of one's meets any of the other's.
    pub fn skeletons(&self) -> [&str; 2] {
        [&self.skeleton, &self.cased_skeleton]
    }
}

/// The canonical form of any typed name (also of one that is not a valid username, so a
/// sign-in with it finds nobody and is counted under the same lock-out key as its look-alike
/// spellings): NFKC, full case folding, NFKC again (case folding can undo NFKC), trimmed
/// before and after (NFKC can turn a spacing mark such as `΄` into a space and a combining
/// mark).
pub fn canonical(raw: &str) -> String {
    let nfkc: String = raw.trim().nfkc().collect();
    let folded: String = caseless::default_case_fold_str(&nfkc).nfkc().collect();
    folded.trim().to_string()
}

/// The skeleton of the name as typed, folded and skeletonised again.
fn cased_skeleton_of(display: &str) -> String {
    let nfkc: String = display.trim().nfkc().collect();
    let once: String = unicode_security::skeleton(&nfkc).collect();
    let folded = caseless::default_case_fold_str(&once);
    unicode_security::skeleton(&folded).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn case_and_width_variants_share_one_canonical_form() {
        let alice = name("alice");
        for v in ["Alice", "ALICE", "ａｌｉｃｅ", " alice "] {
            assert_eq!(name(v).canonical(), alice.canonical(), "{v}");
        }
        assert_eq!(name("Straße").canonical(), name("STRASSE").canonical());
        assert_eq!(name("ALICE").as_str(), "ALICE", "shown as typed");
    }

    #[test]
    fn look_alike_letters_share_a_skeleton_but_not_a_canonical_form() {
        let latin = name("alice");
        let cyrillic = name("\u{0430}lice"); // Cyrillic а
        assert_ne!(cyrillic.canonical(), latin.canonical());
        assert_eq!(cyrillic.skeleton(), latin.skeleton());
        let greek_o = name("b\u{03BF}b"); // Greek ο
        assert_eq!(greek_o.skeleton(), name("bob").skeleton());
        assert_eq!(name("rn").skeleton(), name("m").skeleton(), "TR39's rn ~ m");
        let meet = |a: &str, b: &str| {
            let (a, b) = (name(a), name(b));
            a.skeletons().iter().any(|s| b.skeletons().contains(s))
        };
        assert!(meet("Ian", "lan"), "I reads as l");
        assert!(meet("AIice", "alice"));
        assert!(!meet("ana", "eva"));
        assert!(meet("B0B", "bob"), "0 reads as O");
        assert_eq!(name("ALICE").skeleton(), name("alice").skeleton());
        assert_ne!(name("ana").skeleton(), name("eva").skeleton());
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point() {
        for s in ["\u{0384}", "ǅ", "ﬁ", "Ⅻ", " x ", "ß"] {
            let once = canonical(s);
            assert_eq!(canonical(&once), once, "{s:?}");
        }
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            "",
            "   ",
            "a b",
            "a\u{200B}b",
            "name!",
            "a\0",
            &"x".repeat(65),
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::Malformed),
                "{bad:?}"
            );
        }
        assert!(Username::parse(&"x".repeat(64)).is_ok());
        assert!(Username::parse("ana.sousa-2@ops").is_ok());
    }
}
