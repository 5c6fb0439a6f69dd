//! The upload gate: the checks every uploaded changeset passes before anything of its UPLOAD
//! is integrated, logged or fanned out (client versions, format, stamps, replica ownership).
//! It reads the log through a function, so it is tested without storage.

use std::collections::HashMap;

use shoal::protocol::sync::{SessionErrorCode as Sess, UploadChangeset};

/// An uploaded changeset the server does not take: the session ERROR it gets.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) code: Sess,
    pub(super) message: String,
}

impl Refusal {
    /// `BAD_CHANGESET` for the changeset of client version `version`.
    pub(super) fn changeset(version: u64, why: impl std::fmt::Display) -> Refusal {
        Refusal {
            code: Sess::BadChangeset,
            message: format!("changeset {version}: {why}"),
        }
    }
}

/// How far ahead of the server's clock a changeset's stamp may be: a day (clients' clocks are
/// assumed within seconds of it). Without a bound one stamp near `u64::MAX` would pin every
/// replica's clock there, and their later changesets would look already integrated.
const MAX_STAMP_AHEAD_MS: u64 = 24 * 60 * 60 * 1000;

/// The checks every uploaded changeset passes before anything of its UPLOAD is integrated,
/// logged or fanned out (the realm copy's integration then applies the core's rules: schema
/// changes as the local API checks them, values of the property's type, ...).
pub(super) struct UploadGate {
    /// The uploading client file.
    pub(super) ident: u64,
    /// Its last client version in the log (0: none).
    pub(super) acked: u64,
    /// The server version it says it has integrated, at most what it was sent.
    pub(super) integrated: u64,
    /// The server's clock, unix milliseconds.
    pub(super) now_ms: u64,
}

impl UploadGate {
    /// `fresh` are the UPLOAD's changesets above `acked`, in increasing client version order;
    /// `origin_of` reads the log's `origins` table: replica id → (its client file, its last
    /// stamp in the log).
    ///
    /// - *Client versions*: the `i`-th (from 1) may be at most `acked + i + integrated`
    ///   (`BAD_CLIENT_VERSION`). A file's history versions are dense: each is one of its own
    ///   changesets (all uploaded, in order: at most `acked` of them are in the log, `i` in
    ///   this upload up to this one) or one it integrated from the log (at most
    ///   `integrated`), so no honest client gets past the bound, and a client cannot claim
    ///   versions it never made (which would make its real ones look already acknowledged).
    /// - *Format*: each decodes as a changeset of format 2 (stamped), and its header's stamp
    ///   is the UPLOAD's `stamp` (`BAD_CHANGESET`, as for the rest).
    /// - *Stamps*: at most [`MAX_STAMP_AHEAD_MS`] ahead of the server's clock, and above the
    ///   last stamp its replica has in the log (a replica's stamps only grow).
    /// - *Origins*: a replica id belongs to the first client file that uploads it; another
    ///   file uploading it (a replayed or forged changeset) is refused, since every replica
    ///   would then drop the real owner's changesets as already integrated, and the owner
    ///   would be sent its own.
    pub(super) fn check<E>(
        &self,
        fresh: &[UploadChangeset],
        origin_of: impl Fn(u64) -> Result<Option<(u64, u64)>, E>,
    ) -> Result<Option<Refusal>, E> {
        let max_stamp = (self.now_ms.saturating_add(MAX_STAMP_AHEAD_MS) << 16) | 0xFFFF;
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for (i, c) in fresh.iter().enumerate() {
            let bound = self
                .acked
                .saturating_add(i as u64 + 1)
                .saturating_add(self.integrated);
            if c.client_version > bound {
                return Ok(Some(Refusal {
                    code: Sess::BadClientVersion,
                    message: format!(
                        "client version {} is beyond what this file can have made ({bound}: {} logged, {} in this upload, {} integrated)",
                        c.client_version,
                        self.acked,
                        i + 1,
                        self.integrated
                    ),
                }));
            }
            let refuse = |why: String| Ok(Some(Refusal::changeset(c.client_version, why)));
            let changeset = match shoal::replica::decode_changeset(&c.data) {
                Ok(cs) => cs,
                Err(e) => return refuse(format!("does not decode: {}", e.message())),
            };
            if changeset.stamp == 0 {
                return refuse("has no stamp (format 1 cannot be merged)".into());
            }
            if changeset.stamp != c.stamp {
                return refuse(format!(
                    "its stamp {} is not the UPLOAD's {}",
                    changeset.stamp, c.stamp
                ));
            }
            if changeset.stamp > max_stamp {
                return refuse("its stamp is more than a day ahead of the server's clock".into());
            }
            let last = match seen.get(&changeset.origin) {
                Some(stamp) => Some(*stamp),
                None => match origin_of(changeset.origin)? {
                    Some((owner, _)) if owner != self.ident => {
                        return refuse(format!(
                            "its replica id {:016x} belongs to another client file",
                            changeset.origin
                        ))
                    }
                    Some((_, stamp)) => Some(stamp),
                    None => None,
                },
            };
            if last.is_some_and(|last| changeset.stamp <= last) {
                return refuse("its stamp is not above its replica's previous one".into());
            }
            seen.insert(changeset.origin, changeset.stamp);
        }
        Ok(None)
    }
}

/// The wall clock in unix milliseconds.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: u64 = 0xabc;
    const NOW_MS: u64 = 1_800_000_000_000;

    fn entry(client_version: u64, stamp: u64, origin: u64) -> UploadChangeset {
        let data = shoal::replica::encode_changeset(&shoal::replica::Changeset {
            stamp,
            origin,
            instructions: Vec::new(),
        });
        UploadChangeset {
            client_version,
            stamp,
            data,
        }
    }

    fn gate(acked: u64, integrated: u64) -> UploadGate {
        UploadGate {
            ident: 7,
            acked,
            integrated,
            now_ms: NOW_MS,
        }
    }

    /// The log's `origins`: ORIGIN is file 7's (last stamp 100), 0xdef file 8's.
    fn origins(origin: u64) -> Result<Option<(u64, u64)>, std::convert::Infallible> {
        Ok(match origin {
            ORIGIN => Some((7, 100)),
            0xdef => Some((8, 100)),
            _ => None,
        })
    }

    fn refused(gate: &UploadGate, fresh: &[UploadChangeset]) -> Option<Sess> {
        gate.check(fresh, origins).unwrap().map(|r| r.code)
    }

    #[test]
    fn client_versions_stay_within_what_the_file_can_have_made() {
        // 3 logged, 2 integrated: the first may be 6, the second 7.
        let ok = [entry(6, 200, ORIGIN), entry(7, 201, ORIGIN)];
        assert_eq!(refused(&gate(3, 2), &ok), None);
        let beyond = [entry(6, 200, ORIGIN), entry(8, 201, ORIGIN)];
        assert_eq!(refused(&gate(3, 2), &beyond), Some(Sess::BadClientVersion));
        assert_eq!(
            refused(&gate(0, 0), &[entry(u64::MAX, 200, ORIGIN)]),
            Some(Sess::BadClientVersion)
        );
        assert_eq!(
            refused(
                &gate(u64::MAX - 1, u64::MAX),
                &[entry(u64::MAX, 200, ORIGIN)]
            ),
            None,
            "no overflow"
        );
    }

    #[test]
    fn stamps_and_replica_ids_are_checked() {
        let g = gate(0, 0);
        let fresh = |stamp, origin| [entry(1, stamp, origin)];
        assert_eq!(refused(&g, &fresh(101, ORIGIN)), None);
        assert_eq!(refused(&g, &fresh(5, 0x123)), None, "a new replica id");
        for (stamp, origin) in [(100, ORIGIN), (99, ORIGIN), (101, 0xdef), (0, ORIGIN)] {
            assert_eq!(
                refused(&g, &fresh(stamp, origin)),
                Some(Sess::BadChangeset),
                "{stamp} {origin:x}"
            );
        }
        let day_ahead = (NOW_MS + MAX_STAMP_AHEAD_MS) << 16;
        assert_eq!(refused(&g, &fresh(day_ahead | 0xFFFF, ORIGIN)), None);
        assert_eq!(
            refused(&g, &fresh((day_ahead | 0xFFFF) + 1, ORIGIN)),
            Some(Sess::BadChangeset)
        );
        // Within one UPLOAD too: a replica's stamps grow.
        let both = [entry(1, 300, 0x123), entry(2, 300, 0x123)];
        assert_eq!(refused(&g, &both), Some(Sess::BadChangeset));
        // The UPLOAD's stamp is the header's.
        let mut other = entry(1, 300, ORIGIN);
        other.stamp = 301;
        assert_eq!(refused(&g, &[other]), Some(Sess::BadChangeset));
        let mut garbage = entry(1, 300, ORIGIN);
        garbage.data = b"garbage".to_vec();
        assert_eq!(refused(&g, &[garbage]), Some(Sess::BadChangeset));
    }
}
