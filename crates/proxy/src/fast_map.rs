//! A hash map for the request path's lookups: the route table by name, the virtual host by
//! authority, the cluster by name, the metric series by response labels.
//!
//! The standard map's SipHash guards against tables filled with colliding keys. These tables
//! are filled from configuration (or, for metric series, from a small set of response labels),
//! never from what a client sends; a client only picks which key is looked up, and that costs
//! one probe sequence however the key was chosen. So a keyless multiply-and-rotate hash, a
//! few instructions per word, is safe here and several times cheaper.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A [`HashMap`] with [`WordHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Mixes each word in with a rotate, an xor and a multiply by an odd constant.
#[derive(Debug, Default, Clone, Copy)]
pub struct WordHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl WordHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The tail's length goes in its last byte, so "a" and "a\0" differ.
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            last[7] = rest.len() as u8;
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_put_in() {
        let mut map = FastMap::default();
        for n in 0..1000 {
            map.insert(format!("cluster-{n}.example.com"), n);
        }
        for n in 0..1000 {
            assert_eq!(map.get(&format!("cluster-{n}.example.com")), Some(&n));
        }
        assert_eq!(map.get("cluster-1000.example.com"), None);
    }

    #[test]
    fn strings_that_differ_only_in_length_or_tail_hash_apart() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<WordHasher>::default();
        let hashes: std::collections::HashSet<u64> =
            ["", "a", "a\0", "abcdefgh", "abcdefgh\0", "abcdefghi"]
                .iter()
                .map(|s| build.hash_one(s))
                .collect();
        assert_eq!(hashes.len(), 6);
    }
}
