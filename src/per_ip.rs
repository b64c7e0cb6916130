//! `--max-connections-per-ip` without locks: a count-min sketch of atomic counters shared by all
//! workers (an address's connections land on any worker). Each address counts in one bucket per
//! row, chosen by a hash per row; its count is the smallest of them, which is never below the
//! true count (so a flood is always caught) and rarely above it (other addresses would have to
//! collide with it in every row: about 0.2% of newcomers with 60,000 connections open).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

/// Buckets per row (a power of two); with [`ROWS`] rows: 4 × 262,144 × 4 bytes = 4 MiB,
/// allocated only when the limit is on.
const BUCKETS: usize = 1 << 18;
const ROWS: usize = 4;
const SEEDS: [u64; ROWS] = [
    0x9e37_79b9_7f4a_7c15,
    0x2545_f491_4f6c_dd1d,
    0x6a09_e667_f3bc_c909,
    0xbb67_ae85_84ca_a73b,
];

/// Connections open per client address, approximately from above.
#[derive(Debug)]
pub struct PerIpCounter {
    limit: u32,
    rows: [Box<[AtomicU32]>; ROWS],
}

/// The key of a connection that is not counted per address (an admin connection, or one from a
/// trusted proxy until its request names the client): [`PerIpCounter`] ignores it.
pub const UNCOUNTED: u64 = u64::MAX;

/// The key of an admin-listener connection: counted neither per address nor against
/// `--max-connections` (so a full server can still be watched).
pub const ADMIN: u64 = u64::MAX - 1;

/// What is counted for a client address: IPv4 addresses (also IPv4-mapped IPv6) one by one,
/// IPv6 clients by /64, the block one subscriber line usually gets. Never [`UNCOUNTED`] or
/// [`ADMIN`].
pub fn key(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4)),
            // The top two /64s would be the sentinels: they share a key with …:fffd.
            None => (((u128::from(v6) >> 64) as u64) | (1 << 63) | (1 << 32)).min(ADMIN - 1),
        },
    }
}

impl PerIpCounter {
    /// `limit` 0 means no limit (nothing is counted).
    pub fn new(limit: u32) -> PerIpCounter {
        let row = || {
            (0..if limit == 0 { 0 } else { BUCKETS })
                .map(|_| AtomicU32::new(0))
                .collect()
        };
        PerIpCounter {
            limit,
            rows: [row(), row(), row(), row()],
        }
    }

    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    fn buckets(key: u64) -> [usize; ROWS] {
        SEEDS.map(|seed| {
            let mut x = key ^ seed;
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            x ^= x >> 33;
            (x as usize) & (BUCKETS - 1)
        })
    }

    /// Count a new connection from the address with this [`key`], or refuse it (false) if the
    /// address is at its limit.
    pub fn acquire(&self, key: u64) -> bool {
        if !self.enabled() || key >= ADMIN {
            return true;
        }
        let buckets = Self::buckets(key);
        let mut smallest = u32::MAX;
        for (row, &bucket) in self.rows.iter().zip(buckets.iter()) {
            let before = row
                .get(bucket)
                .map_or(u32::MAX, |c| c.fetch_add(1, Ordering::Relaxed));
            smallest = smallest.min(before);
        }
        if smallest >= self.limit {
            self.release(key);
            return false;
        }
        true
    }

    /// A connection counted by [`PerIpCounter::acquire`] closed.
    pub fn release(&self, key: u64) {
        if !self.enabled() || key >= ADMIN {
            return;
        }
        for (row, &bucket) in self.rows.iter().zip(Self::buckets(key).iter()) {
            if let Some(c) = row.get(bucket) {
                c.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u64 {
        key(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    #[test]
    fn the_limit_holds_per_address_and_frees_on_release() {
        let c = PerIpCounter::new(2);
        assert!(c.acquire(ip("10.0.0.1")) && c.acquire(ip("10.0.0.1")));
        assert!(!c.acquire(ip("10.0.0.1")));
        assert!(c.acquire(ip("10.0.0.2")), "another address is not affected");
        c.release(ip("10.0.0.1"));
        assert!(c.acquire(ip("10.0.0.1")));
    }

    #[test]
    fn no_limit_counts_nothing() {
        let c = PerIpCounter::new(0);
        for _ in 0..1000 {
            assert!(c.acquire(ip("10.0.0.1")));
        }
    }

    #[test]
    fn ipv6_groups_by_slash_64_and_mapped_v4_is_v4() {
        let c = PerIpCounter::new(1);
        assert!(c.acquire(ip("2001:db8::1")));
        assert!(!c.acquire(ip("2001:db8::2")));
        assert!(c.acquire(ip("2001:db8:0:1::1")));
        assert!(c.acquire(ip("192.0.2.7")));
        assert!(!c.acquire(ip("::ffff:192.0.2.7")));
    }

    #[test]
    fn many_addresses_at_their_limit_rarely_block_a_newcomer() {
        let c = PerIpCounter::new(3);
        let v4 = |n: u32| key(IpAddr::from(n.to_be_bytes()));
        let mut refused_filling = 0;
        for i in 0..20_000u32 {
            for _ in 0..3 {
                refused_filling += usize::from(!c.acquire(v4(0x0a00_0000 + i)));
            }
        }
        assert!(
            refused_filling < 600,
            "{refused_filling} of 60000 refused below their limit"
        );
        let refused = (0..1000u32)
            .filter(|i| !c.acquire(v4(0xc000_0000 + i)))
            .count();
        assert!(refused < 10, "{refused} of 1000 new addresses refused");
    }
}
