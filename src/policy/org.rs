//! The organisation's own contact points: the allow lists every detector consults, and the
//! accepted vocabulary that cancels matches of word and pattern rules.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use phonenumber::country::Id as Region;
use phonenumber::PhoneNumber;

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
    pub phones: Vec<(u16, u64)>,
    pub regions: Vec<Region>,
    pub handles: Vec<String>,
    pub links: Vec<LinkPrefix>,
    pub accept: Vec<String>,
    /// Tells the phone cache apart from that of other organisations (other regions).
    pub id: u64,
}

/// A new organisation id (see `Organisation::id`).
pub(crate) fn fresh_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// FNV-1a: the phone cache's keys are short, SipHash would cost more than the lookup saves.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Phone candidates already parsed on this thread: (organisation, text) to the number's key,
/// or `None` when it is no valid number. Parsing with libphonenumber's metadata costs tens
/// of microseconds; the same numbers come back again and again (our own numbers in many
/// replies, and the same draft re-checked on every keystroke of live feedback). Bounded:
/// emptied when full.
type PhoneCache = HashMap<(u64, Box<str>), Option<(u16, u64)>, BuildHasherDefault<Fnv>>;
const PHONE_CACHE_MAX: usize = 4096;

thread_local! {
    static PHONE_CACHE: RefCell<PhoneCache> = RefCell::new(PhoneCache::default());
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
            id: fresh_id(),
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
    pub fn parse_region(code: &str) -> Option<Region> {
        code.trim().to_ascii_uppercase().parse::<Region>().ok()
    }

    pub fn link_prefix(url: &str) -> LinkPrefix {
        let (host, path) = split_url(url);
        LinkPrefix { host, path }
    }

    /// Parses `s` as a phone number valid in one of the organisation's regions: with a
    /// leading `+` as an international number; with a leading trunk `0` in any of the
    /// regions; otherwise in the default (first) region only.
    pub fn parse_phone(&self, s: &str) -> Option<PhoneNumber> {
        let trimmed = s.trim();
        if trimmed.starts_with('+') {
            return phonenumber::parse(None, trimmed)
                .ok()
                .filter(phonenumber::is_valid);
        }
        let first_digit = trimmed.chars().find(|c| c.is_ascii_digit())?;
        let regions: &[Region] = if first_digit == '0' {
            &self.regions
        } else {
            &self.regions[..self.regions.len().min(1)]
        };
        regions.iter().find_map(|&r| {
            phonenumber::parse(Some(r), trimmed)
                .ok()
                .filter(phonenumber::is_valid)
        })
    }

    /// `parse_phone` then `phone_key`, remembered per thread (see `PhoneCache`).
    pub fn phone_key_of(&self, s: &str) -> Option<(u16, u64)> {
        let cached = PHONE_CACHE.with(|c| {
            c.try_borrow()
                .ok()
                .and_then(|m| m.get(&(self.id, Box::<str>::from(s))).copied())
        });
        if let Some(hit) = cached {
            return hit;
        }
        let key = self.parse_phone(s).map(|n| Self::phone_key(&n));
        PHONE_CACHE.with(|c| {
            if let Ok(mut m) = c.try_borrow_mut() {
                if m.len() >= PHONE_CACHE_MAX {
                    m.clear();
                }
                m.insert((self.id, s.into()), key);
            }
        });
        key
    }

    pub fn phone_key_allowed(&self, key: (u16, u64)) -> bool {
        self.phones.contains(&key)
    }

    /// The key a phone number is compared by.
    pub fn phone_key(n: &PhoneNumber) -> (u16, u64) {
        (n.code().value(), n.national().value())
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
