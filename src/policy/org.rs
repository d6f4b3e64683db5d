//! The organisation's own contact points: the allow lists every detector consults, and the
//! accepted vocabulary that cancels matches of word and pattern rules.

use rlibphonenumber::enums::Region;
use rlibphonenumber::{PhoneNumber, PHONE_NUMBER_UTIL};

use super::normalize::normalize_term;

/// A link prefix of the organisation: host (and its subdomains) plus a path prefix.
#[derive(Debug, Clone)]
pub(crate) struct LinkPrefix {
    host: String,
    path: String,
}

/// Compiled organisation settings.
#[derive(Debug, Clone)]
pub(crate) struct Organisation {
    pub emails: Vec<String>,
    pub email_domains: Vec<String>,
    pub phones: Vec<PhoneKey>,
    pub regions: Vec<Region>,
    pub handles: Vec<String>,
    pub links: Vec<LinkPrefix>,
    pub accept: Vec<String>,
}

/// What two phone numbers are compared by: E.164 country code, the national significant
/// number, and its leading zeros (Italian fixed lines keep theirs: 06... is not 6...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PhoneKey {
    country_code: i32,
    national_number: u64,
    leading_zeros: i32,
}

/// The answer of `Organisation::look_up_phone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneLookup {
    /// A valid number, with its key.
    Valid(PhoneKey),
    /// No valid number in any region tried.
    Invalid,
    /// The parse budget ran out first.
    Unchecked,
}

impl PhoneKey {
    fn of(n: &PhoneNumber) -> PhoneKey {
        let leading_zeros = if n.italian_leading_zero.unwrap_or(false) {
            n.number_of_leading_zeros.unwrap_or(1)
        } else {
            0
        };
        PhoneKey {
            country_code: n.country_code,
            national_number: n.national_number,
            leading_zeros,
        }
    }
}

impl Default for Organisation {
    fn default() -> Self {
        Organisation {
            emails: Vec::new(),
            email_domains: Vec::new(),
            phones: Vec::new(),
            regions: vec![Region::US],
            handles: Vec::new(),
            links: Vec::new(),
            accept: Vec::new(),
        }
    }
}

/// Splits a URL (with or without scheme) into lower-case host (without `www.`) and path.
pub(crate) fn split_url(url: &str) -> (String, String) {
    let lower = url.trim().to_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .unwrap_or(&lower);
    let (host, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host.split(':').next().unwrap_or("");
    let host = host.strip_prefix("www.").unwrap_or(host);
    (host.to_string(), path.to_string())
}

impl Organisation {
    /// A region phone numbers are read in: a two-letter ISO 3166 code that libphonenumber has
    /// metadata for, in any case. `None` for anything else.
    pub fn parse_region(code: &str) -> Option<Region> {
        let region = Region::from_code(code.trim()).ok()?;
        PHONE_NUMBER_UTIL
            .get_country_code_for_region(region)
            .map(|_| region)
    }

    pub fn link_prefix(url: &str) -> LinkPrefix {
        let (host, path) = split_url(url);
        LinkPrefix { host, path }
    }

    /// Parses `s` as a phone number valid in one of the organisation's regions, by
    /// libphonenumber's rules and metadata: with a leading `+` as an international number;
    /// with a leading trunk `0` in any of the regions; otherwise in the default (first) region
    /// only. Each parse spends one unit of `budget`; when the budget runs out before an answer
    /// the result is `Unchecked`.
    pub fn look_up_phone(&self, s: &str, budget: &mut usize) -> PhoneLookup {
        let trimmed = s.trim();
        let (first, others): (Option<Region>, &[Region]) = if trimmed.starts_with('+') {
            (None, &[])
        } else {
            let Some((&default, others)) = self.regions.split_first() else {
                return PhoneLookup::Invalid;
            };
            match trimmed.chars().find(|c| c.is_ascii_digit()) {
                None => return PhoneLookup::Invalid,
                Some('0') => (Some(default), others),
                Some(_) => (Some(default), &[]),
            }
        };
        // `None` is an international number: its country comes from its `+` prefix.
        let tries = std::iter::once(first).chain(others.iter().map(|&r| Some(r)));
        for region in tries {
            if *budget == 0 {
                return PhoneLookup::Unchecked;
            }
            *budget -= 1;
            let valid = PHONE_NUMBER_UTIL
                .parse(trimmed, region)
                .ok()
                .filter(|n| n.is_valid());
            if let Some(n) = valid {
                return PhoneLookup::Valid(PhoneKey::of(&n));
            }
        }
        PhoneLookup::Invalid
    }

    /// How many parses one phone rule may spend on the candidates of one check. A parse
    /// takes about 1 µs once its country's metadata is compiled (the first number of a
    /// country compiles it: a few ms, once per process). A draft X accepts needs at most 104
    /// a region (eleven chains like `0000000 0 0 0 0 0 0 0 0`, nine tries each, in 280
    /// characters), unless its links hold such chains: X counts a link as 23 characters
    /// however long it is. Past the budget the phone detector reports candidates
    /// unvalidated, so no text, however long and full of digits, makes it slow.
    pub fn phone_parse_budget(&self) -> usize {
        128 * self.regions.len().max(1)
    }

    /// `look_up_phone` without a budget: the key of a valid number, else `None`.
    pub fn phone_key_of(&self, s: &str) -> Option<PhoneKey> {
        let mut unlimited = usize::MAX;
        match self.look_up_phone(s, &mut unlimited) {
            PhoneLookup::Valid(key) => Some(key),
            PhoneLookup::Invalid | PhoneLookup::Unchecked => None,
        }
    }

    pub fn phone_key_allowed(&self, key: PhoneKey) -> bool {
        self.phones.contains(&key)
    }

    pub fn email_allowed(&self, canonical: &str) -> bool {
        let addr = canonical.to_lowercase();
        if self.emails.contains(&addr) {
            return true;
        }
        let domain = addr.rsplit_once('@').map_or("", |(_, d)| d);
        self.email_domains
            .iter()
            .any(|d| domain == d || domain.ends_with(&format!(".{d}")))
    }

    pub fn link_allowed(&self, url: &str) -> bool {
        let (host, path) = split_url(url);
        self.links.iter().any(|p| {
            (host == p.host || host.ends_with(&format!(".{}", p.host)))
                && (p.path.is_empty() || p.path == "/" || path.starts_with(&p.path))
        })
    }

    /// Normalised accept terms.
    pub fn accept_terms(&self) -> Vec<String> {
        self.accept.iter().map(|t| normalize_term(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_regions(regions: Vec<Region>) -> Organisation {
        Organisation {
            regions,
            ..Organisation::default()
        }
    }

    /// A Varese landline and a mobile share the national digits 331234567; only the
    /// landline's leading zero tells them apart, so allowing one must not allow the other.
    #[test]
    fn a_landline_and_a_mobile_with_the_same_digits_are_different_numbers() {
        let org = with_regions(vec![Region::IT]);
        let landline = org
            .phone_key_of("+39 0331 234567")
            .expect("a valid landline");
        let mobile = org.phone_key_of("+39 331 234567").expect("a valid mobile");
        assert_ne!(landline, mobile);
        assert_eq!(org.phone_key_of("0331 234567"), Some(landline));
        assert_eq!(org.phone_key_of("+39 (0)331-234-567"), Some(landline));
    }

    #[test]
    fn regions_are_countries_with_a_numbering_plan() {
        assert_eq!(Organisation::parse_region("us"), Some(Region::US));
        assert_eq!(Organisation::parse_region(" GB "), Some(Region::GB));
        for bad in ["XX", "USA", "001", "", "U", "1"] {
            assert_eq!(Organisation::parse_region(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn each_parse_spends_one_unit_of_the_budget() {
        let org = with_regions(vec![Region::US, Region::GB, Region::DE]);
        let mut budget = 10;
        // a trunk 0 is tried in each region until one fits: US no, GB yes
        let found = org.look_up_phone("020 7946 0321", &mut budget);
        assert!(matches!(found, PhoneLookup::Valid(_)), "{found:?}");
        assert_eq!(budget, 8);
        assert_eq!(
            org.look_up_phone("0000000", &mut budget),
            PhoneLookup::Invalid
        );
        assert_eq!(budget, 5);
        let mut budget = 1;
        assert_eq!(
            org.look_up_phone("0000000", &mut budget),
            PhoneLookup::Unchecked
        );
        assert_eq!(budget, 0);
    }

    #[test]
    fn without_regions_only_international_numbers_are_read() {
        let org = with_regions(Vec::new());
        let mut budget = 10;
        assert_eq!(
            org.look_up_phone("415-555-2671", &mut budget),
            PhoneLookup::Invalid
        );
        assert_eq!(budget, 10);
        let found = org.look_up_phone("+1 415-555-2671", &mut budget);
        assert!(matches!(found, PhoneLookup::Valid(_)), "{found:?}");
        assert_eq!(budget, 9);
    }
}
