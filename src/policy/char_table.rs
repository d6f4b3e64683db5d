//! A precomputed yes/no property of characters: one bit per code point below a limit, the
//! defining function above it. Built once (a few milliseconds), then a lookup per character
//! on the hot path of every check.

pub(crate) struct CharTable {
    bits: Vec<u64>,
    limit: u32,
    by_definition: fn(char) -> bool,
}

impl CharTable {
    /// Evaluates `by_definition` for every code point below `limit`.
    pub(crate) fn build(limit: u32, by_definition: fn(char) -> bool) -> CharTable {
        let mut bits = vec![0u64; (limit as usize).div_ceil(64)];
        for cp in 0..limit {
            if char::from_u32(cp).is_some_and(by_definition) {
                bits[(cp / 64) as usize] |= 1 << (cp % 64);
            }
        }
        CharTable {
            bits,
            limit,
            by_definition,
        }
    }

    /// `by_definition(c)`, by table when `c` is below the limit.
    #[inline]
    pub(crate) fn contains(&self, c: char) -> bool {
        let cp = c as u32;
        if cp < self.limit {
            self.bits
                .get((cp / 64) as usize)
                .is_some_and(|w| w & (1 << (cp % 64)) != 0)
        } else {
            (self.by_definition)(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_its_definition_below_and_above_the_limit() {
        let table = CharTable::build(0x300, char::is_alphabetic);
        for c in ['a', 'Z', '1', ' ', 'é', '\u{2ff}', '\u{300}', '日', '🙂'] {
            assert_eq!(table.contains(c), c.is_alphabetic(), "{c:?}");
        }
    }
}
