//! The one hash function of load balancing: XXH64, written here from its public specification
//! so that the proxy needs no hashing crate.
//!
//! Consistent hashing needs a hash that is fast, well mixed in all 64 bits, and *stable*: the
//! same bytes must hash the same in every proxy, on every platform and in every release, or
//! sticky sessions would move whenever a proxy restarts or is upgraded. `std`'s `DefaultHasher`
//! promises none of that. XXH64 does, and its published test vectors pin it down.

use std::net::{IpAddr, SocketAddr};

const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME_5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 of `bytes` with seed 0.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// XXH64 of `bytes` with `seed`. Chaining (`xxh64(b, xxh64(a, 0))`) hashes a sequence of byte
/// strings without copying them together.
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    let mut rest = bytes;
    let mut acc = if bytes.len() >= 32 {
        let mut lanes = [
            seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
            seed.wrapping_add(PRIME_2),
            seed,
            seed.wrapping_sub(PRIME_1),
        ];
        while let Some((stripe, tail)) = rest.split_first_chunk::<32>() {
            for (lane, word) in lanes.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, read_u64(word));
            }
            rest = tail;
        }
        let mut acc = lanes[0]
            .rotate_left(1)
            .wrapping_add(lanes[1].rotate_left(7))
            .wrapping_add(lanes[2].rotate_left(12))
            .wrapping_add(lanes[3].rotate_left(18));
        for lane in lanes {
            acc = (acc ^ round(0, lane))
                .wrapping_mul(PRIME_1)
                .wrapping_add(PRIME_4);
        }
        acc
    } else {
        seed.wrapping_add(PRIME_5)
    };
    acc = acc.wrapping_add(bytes.len() as u64);
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        acc ^= round(0, u64::from_le_bytes(*word));
        acc = acc
            .rotate_left(27)
            .wrapping_mul(PRIME_1)
            .wrapping_add(PRIME_4);
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<4>() {
        acc ^= u64::from(u32::from_le_bytes(*word)).wrapping_mul(PRIME_1);
        acc = acc
            .rotate_left(23)
            .wrapping_mul(PRIME_2)
            .wrapping_add(PRIME_3);
        rest = tail;
    }
    for byte in rest {
        acc ^= u64::from(*byte).wrapping_mul(PRIME_5);
        acc = acc.rotate_left(11).wrapping_mul(PRIME_1);
    }
    acc ^= acc >> 33;
    acc = acc.wrapping_mul(PRIME_2);
    acc ^= acc >> 29;
    acc = acc.wrapping_mul(PRIME_3);
    acc ^ (acc >> 32)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(PRIME_2))
        .rotate_left(31)
        .wrapping_mul(PRIME_1)
}

fn read_u64(word: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(word);
    u64::from_le_bytes(bytes)
}

/// The hash of a client address for `SourceIp` consistent hashing: the address's octets, with
/// IPv4-mapped IPv6 addresses taken as the IPv4 address they carry. HTTP and TCP traffic from
/// one client both use this, so they land on the same endpoint.
pub fn source_ip_hash(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => hash_bytes(&v4.octets()),
        IpAddr::V6(v6) => hash_bytes(&v6.octets()),
    }
}

/// The hash of one virtual node of an endpoint (ring hash) or of an endpoint with a seed
/// (Maglev): address octets, port and `salt`, so it depends on the endpoint's address only,
/// never on its position in the cluster's list.
pub(super) fn endpoint_hash(address: SocketAddr, salt: u64, seed: u64) -> u64 {
    let mut key = [0u8; 26];
    let ip_len = match address.ip().to_canonical() {
        IpAddr::V4(v4) => {
            key[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            key[..16].copy_from_slice(&v6.octets());
            16
        }
    };
    key[ip_len..ip_len + 2].copy_from_slice(&address.port().to_be_bytes());
    key[ip_len + 2..ip_len + 10].copy_from_slice(&salt.to_le_bytes());
    xxh64(&key[..ip_len + 10], seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
    const LONG_42: &[u8] = b"0123456789abcdef0123456789abcdef0123456789";
    const LONG_68: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123";

    /// Reference values computed with the xxHash project's own implementation.
    #[test]
    fn matches_reference_vectors() {
        let cases: [(&[u8], u64, u64); 8] = [
            (b"", 0, 0xEF46_DB37_51D8_E999),
            (b"", SEED, 0xC434_9FC9_3C01_0000),
            (b"a", 0, 0xD24E_C4F1_A98C_6E5B),
            (b"abc", 0, 0x44BC_2CF5_AD77_0999),
            (b"abcd", SEED, 0x5869_C33E_B14E_1589),
            (b"abcdefgh12345", 0, 0x0965_4208_655D_546E),
            (LONG_42, SEED, 0x3862_7FEA_513E_A7A4),
            (LONG_68, 0, 0x68F0_4057_E6B1_C53C),
        ];
        for (input, seed, expected) in cases {
            assert_eq!(
                xxh64(input, seed),
                expected,
                "{:?} seed {seed:#x}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            hash_bytes(b"Nobody inherits the abc 12345678901"),
            0xB6CF_1C36_6D72_0A49
        );
    }

    #[test]
    fn source_ip_ignores_the_ipv6_mapping_of_ipv4() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(source_ip_hash(v4), source_ip_hash(mapped));
        assert_ne!(
            source_ip_hash(v4),
            source_ip_hash("10.1.2.4".parse().unwrap())
        );
    }

    #[test]
    fn endpoint_hash_depends_on_every_part() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let base = endpoint_hash(a, 0, 0);
        assert_ne!(base, endpoint_hash("10.0.0.1:81".parse().unwrap(), 0, 0));
        assert_ne!(base, endpoint_hash("10.0.0.2:80".parse().unwrap(), 0, 0));
        assert_ne!(base, endpoint_hash(a, 1, 0));
        assert_ne!(base, endpoint_hash(a, 0, 1));
        assert_eq!(
            base,
            endpoint_hash("[::ffff:10.0.0.1]:80".parse().unwrap(), 0, 0)
        );
    }
}
