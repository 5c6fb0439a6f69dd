//! The hybrid logical clock of a realm file.
//!
//! A stamp is `physical milliseconds << 16 | counter`. A new local stamp is
//! `max(now << 16, last + 1)`, where `last` is the highest stamp the file has produced or
//! integrated (the `hlc` meta entry, written when a remote changeset is integrated, and the
//! stamp of the newest history entry), so stamps never go backwards on one file even when the
//! wall clock does, and every local write is ordered after everything the file has seen.

/// The next stamp after `last` at wall-clock time `now_ms`.
pub(crate) fn next_stamp(last: u64, now_ms: u64) -> u64 {
    (now_ms << 16).max(last.saturating_add(1))
}

pub(crate) use crate::history::OrderKey;

/// The highest stamp the file of `w` has produced or integrated.
pub(crate) fn last_stamp(w: &crate::store::write::WriteTxn) -> crate::error::Result<u64> {
    use redb::ReadableTable;
    let hlc = w.base.meta_u64(crate::store::tables::meta::HLC)?;
    let last = match w.base.history.last()? {
        Some((_, v)) => crate::history::changeset_header(v.value())
            .map(|(s, _)| s)
            .unwrap_or(0),
        None => 0,
    };
    Ok(hlc.max(last))
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
