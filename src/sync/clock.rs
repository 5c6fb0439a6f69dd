//! The hybrid logical clock of a realm file.
//!
//! A stamp is `physical milliseconds << 16 | counter`. A new local stamp is
//! `max(now << 16, last + 1)`, where `last` is the highest stamp the file has produced or
//! integrated (the `hlc` meta entry, written when a remote changeset is integrated, and the
//! stamp of the newest history entry), so stamps never go backwards on one file even when the
//! wall clock does, and every local write is ordered after everything the file has seen.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in milliseconds since the Unix epoch (0 before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The next stamp after `last` at wall-clock time `now_ms`.
pub(crate) fn next_stamp(last: u64, now_ms: u64) -> u64 {
    (now_ms << 16).max(last.saturating_add(1))
}

/// The order key of instruction `index` of a changeset: a total order every copy agrees on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct OrderKey {
    pub(crate) stamp: u64,
    pub(crate) origin: u64,
    pub(crate) index: u32,
}

impl OrderKey {
    /// Encoded size.
    pub(crate) const LEN: usize = 20;

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.stamp.to_le_bytes());
        out.extend_from_slice(&self.origin.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<OrderKey> {
        Some(OrderKey {
            stamp: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            origin: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            index: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_go_backwards() {
        let a = next_stamp(0, 1000);
        assert_eq!(a, 1000 << 16);
        assert_eq!(
            next_stamp(a, 1000),
            a + 1,
            "same millisecond: the counter moves"
        );
        assert_eq!(next_stamp(a + 5, 10), a + 6, "wall clock went back");
        assert_eq!(next_stamp(a, 2000), 2000 << 16);
    }

    #[test]
    fn order_keys_round_trip_and_order() {
        let k = OrderKey {
            stamp: 5,
            origin: 9,
            index: 2,
        };
        let mut b = Vec::new();
        k.encode(&mut b);
        assert_eq!(OrderKey::decode(&b), Some(k));
        assert!(
            k < OrderKey {
                origin: 10,
                index: 0,
                ..k
            }
        );
        assert!(
            k < OrderKey {
                stamp: 6,
                origin: 0,
                index: 0
            }
        );
    }
}
