//! Token texts in one buffer, with a hash index from text to id.
//!
//! A 129k-token vocabulary as 129k `String`s plus a `HashMap<String, u32>` costs two allocations
//! per token and a slow default hasher; loading has to stay well under a second (in the browser
//! too), so texts live back to back in one buffer and the index is an open-addressing table of
//! ids keyed by a fast string hash.

/// FNV-1a over the bytes, then a final mix so that every output bit depends on the input.
pub(crate) fn hash_str(s: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for &b in s.as_bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix64(h)
}

/// The splitmix64 finalizer.
pub(crate) fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const EMPTY_SLOT: u32 = u32::MAX;

/// Token texts by id, and ids by text.
pub(crate) struct TokenTable {
    buf: String,
    /// End offset in `buf` of each token (token i spans `ends[i-1]..ends[i]`).
    ends: Vec<usize>,
    slots: Vec<u32>,
}

impl TokenTable {
    /// Builds the table; `Err(id)` names the first token whose text repeats an earlier one.
    pub(crate) fn new<'a>(
        texts: impl ExactSizeIterator<Item = &'a str> + Clone,
    ) -> Result<Self, u32> {
        let n = texts.len();
        let total: usize = texts.clone().map(str::len).sum();
        let mut buf = String::with_capacity(total);
        let mut ends = Vec::with_capacity(n);
        for t in texts {
            buf.push_str(t);
            ends.push(buf.len());
        }
        let capacity = (n * 2).max(16).next_power_of_two();
        let mut table = TokenTable {
            buf,
            ends,
            slots: vec![EMPTY_SLOT; capacity],
        };
        for id in 0..n as u32 {
            let text = table.text(id);
            let mask = table.slots.len() - 1;
            let mut i = hash_str(text) as usize & mask;
            loop {
                match table.slots[i] {
                    EMPTY_SLOT => {
                        table.slots[i] = id;
                        break;
                    }
                    other if table.text(other) == text => return Err(id),
                    _ => i = (i + 1) & mask,
                }
            }
        }
        Ok(table)
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of token `id` (panics if out of range: callers check ids first).
    pub(crate) fn text(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// The text of token `id`, `None` if out of range.
    pub(crate) fn get_text(&self, id: u32) -> Option<&str> {
        ((id as usize) < self.len()).then(|| self.text(id))
    }

    /// The id of the token with text `text`.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = hash_str(text) as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY_SLOT => return None,
                id if self.text(id) == text => return Some(id),
                _ => i = (i + 1) & mask,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_token_and_rejects_duplicates() {
        let texts = ["a", "ab", "", "Ġthe", "中文"];
        let t = TokenTable::new(texts.iter().copied()).expect("unique");
        for (i, s) in texts.iter().enumerate() {
            assert_eq!(t.id(s), Some(i as u32));
            assert_eq!(t.text(i as u32), *s);
        }
        assert_eq!(t.id("abc"), None);
        assert_eq!(t.get_text(5), None);
        assert_eq!(TokenTable::new(["x", "y", "x"].into_iter()).err(), Some(2));
    }
}
