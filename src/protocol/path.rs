//! Realm paths: the names the auth service issues access tokens for and the sync service
//! binds sessions to (**API Boundary**; the one definition both the client and `shoal-server`
//! apply).
//!
//! A realm path is `/` followed by `/`-separated segments of `[A-Za-z0-9_.-]+`, none of them
//! `.` or `..`, at most [`MAX_PATH_BYTES`] bytes in all, whose last segment does not end in a
//! [reserved suffix](RESERVED_SUFFIXES) (the names of a local realm's own files). Examples:
//! `/u1/tasks`, `/public`.
//!
//! Before a path is sent anywhere, a segment that is exactly [`IDENTITY_SEGMENT`] (`~`) is
//! replaced by the user's identity ([`resolve`]); the identity must then be a segment itself.
//! Sync URLs may use `~` in any segment (Realm Java's rule); the auth service's `realm`
//! provider resolves only a leading one (the Realm Object Server's rule), so the two callers
//! say which with [`Tilde`]. The length limit applies to the resolved path.

use crate::protocol::sync::MAX_PATH_BYTES;

/// The segment that stands for the user's identity.
pub const IDENTITY_SEGMENT: &str = "~";

/// Suffixes of the files Realm keeps next to a realm: the last segment of a realm path must
/// not end in one, or the local file of the synced realm would clash with them.
pub const RESERVED_SUFFIXES: [&str; 3] = [".realm", ".realm.lock", ".realm.management"];

/// Which segments of a path [`resolve`] replaces when they are exactly `~`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tilde {
    /// Any segment, any number of times (sync URLs, as Realm Java resolved them).
    AnySegment,
    /// Only the first segment (the auth service's `realm` provider); a `~` elsewhere is an
    /// invalid segment.
    FirstSegment,
}

/// Why a string is not a realm path. The `Display` text is a reason, without the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// It does not start with `/`.
    NotAbsolute,
    /// A segment is empty (`//`, a trailing `/`, or the path `/`).
    EmptySegment,
    /// A segment is not `[A-Za-z0-9_.-]+` or is `.` or `..`.
    InvalidSegment(String),
    /// `~` was to be replaced by an identity that is not a segment (empty included).
    InvalidIdentity(String),
    /// The last segment ends in one of [`RESERVED_SUFFIXES`].
    ReservedSuffix {
        /// The last segment.
        segment: String,
        /// The suffix it ends in.
        suffix: &'static str,
    },
    /// The (resolved) path is longer than [`MAX_PATH_BYTES`]; the length in bytes.
    TooLong(usize),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::NotAbsolute => write!(f, "it must start with '/'"),
            PathError::EmptySegment => {
                write!(f, "it has an empty segment ('//' or a trailing '/')")
            }
            PathError::InvalidSegment(s) => write!(
                f,
                "the segment '{s}' is invalid; segments are [A-Za-z0-9_.-]+, not '.' or '..'"
            ),
            PathError::InvalidIdentity(id) => write!(
                f,
                "'~' cannot stand for the identity '{id}', which is not a path segment"
            ),
            PathError::ReservedSuffix { segment, suffix } => write!(
                f,
                "the last segment '{segment}' ends in '{suffix}', which is reserved for Realm's \
                 files"
            ),
            PathError::TooLong(len) => write!(
                f,
                "it is {len} bytes long; at most {MAX_PATH_BYTES} are allowed"
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// Whether `s` is one realm path segment: `[A-Za-z0-9_.-]+`, not `.` or `..`. Such a segment
/// is also a safe file name: it cannot leave its directory.
#[must_use]
pub fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Checks that `path` is a realm path (already resolved: `~` is not a segment).
///
/// # Errors
/// The first rule `path` breaks, checked in this order: the leading `/`, each segment in
/// turn, the reserved suffix, the length.
pub fn validate(path: &str) -> Result<(), PathError> {
    walk(path, None).map(drop)
}

/// Whether `path` is a realm path (see [`validate`]).
#[must_use]
pub fn is_realm_path(path: &str) -> bool {
    validate(path).is_ok()
}

/// Replaces the `~` segments of `path` chosen by `tilde` with `identity` and checks that the
/// result is a realm path.
///
/// # Errors
/// As [`validate`], in the same order; a `~` to replace with an identity that is not a
/// segment is [`PathError::InvalidIdentity`], reported in the place of that segment.
pub fn resolve(path: &str, identity: &str, tilde: Tilde) -> Result<String, PathError> {
    walk(path, Some((identity, tilde)))
}

/// Validates `path`, resolving `~` segments when given an identity; returns the resolved path.
fn walk(path: &str, identity: Option<(&str, Tilde)>) -> Result<String, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut segments: Vec<&str> = Vec::new();
    for (i, segment) in rest.split('/').enumerate() {
        let identity = identity.and_then(|(identity, tilde)| {
            let replaced = segment == IDENTITY_SEGMENT
                && match tilde {
                    Tilde::AnySegment => true,
                    Tilde::FirstSegment => i == 0,
                };
            replaced.then_some(identity)
        });
        match identity {
            Some(identity) if !is_segment(identity) => {
                return Err(PathError::InvalidIdentity(identity.to_owned()))
            }
            Some(identity) => segments.push(identity),
            None if segment.is_empty() => return Err(PathError::EmptySegment),
            None if !is_segment(segment) => {
                return Err(PathError::InvalidSegment(segment.to_owned()))
            }
            None => segments.push(segment),
        }
    }
    let last = segments.last().copied().unwrap_or_default();
    if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| last.ends_with(*s)) {
        return Err(PathError::ReservedSuffix {
            segment: last.to_owned(),
            suffix,
        });
    }
    // One byte for each '/'.
    let len = segments.iter().map(|s| s.len() + 1).sum();
    if len > MAX_PATH_BYTES {
        return Err(PathError::TooLong(len));
    }
    Ok(format!("/{}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        for ok in ["a", "A-z_0.9", "x.realm", "...", ".a", "a."] {
            assert!(is_segment(ok), "{ok:?}");
        }
        for bad in [
            "", ".", "..", "~", "a b", "a/b", "a\\b", "é", "a%20b", "a\0b",
        ] {
            assert!(!is_segment(bad), "{bad:?}");
        }
    }

    #[test]
    fn realm_paths() {
        for ok in [
            "/u1/tasks",
            "/public",
            "/x.realm/y",
            "/x.realms",
            "/a_b-c.d/e.1",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
        let at_limit = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert!(is_realm_path(&at_limit));
        let cases = [
            ("", PathError::NotAbsolute),
            ("u1/x", PathError::NotAbsolute),
            ("/", PathError::EmptySegment),
            ("//x", PathError::EmptySegment),
            ("/u1/", PathError::EmptySegment),
            ("/u1/../x", PathError::InvalidSegment("..".into())),
            ("/u1/./x", PathError::InvalidSegment(".".into())),
            ("/~/x", PathError::InvalidSegment("~".into())),
            ("/a b", PathError::InvalidSegment("a b".into())),
            ("/u1/é", PathError::InvalidSegment("é".into())),
        ];
        for (path, error) in cases {
            assert_eq!(validate(path), Err(error), "{path:?}");
        }
        for suffix in RESERVED_SUFFIXES {
            assert_eq!(
                validate(&format!("/u1/x{suffix}")),
                Err(PathError::ReservedSuffix {
                    segment: format!("x{suffix}"),
                    suffix,
                })
            );
        }
        assert_eq!(
            validate(&format!("{at_limit}a")),
            Err(PathError::TooLong(MAX_PATH_BYTES + 1))
        );
    }

    #[test]
    fn tilde_is_the_identity() {
        let any = |p: &str, id: &str| resolve(p, id, Tilde::AnySegment);
        let first = |p: &str, id: &str| resolve(p, id, Tilde::FirstSegment);
        assert_eq!(any("/~/a", "u1").unwrap(), "/u1/a");
        assert_eq!(any("/~", "u1").unwrap(), "/u1");
        assert_eq!(any("/s/~/x/~", "u1").unwrap(), "/s/u1/x/u1");
        assert_eq!(first("/~/a/b", "u1").unwrap(), "/u1/a/b");
        assert_eq!(
            first("/s/~", "u1"),
            Err(PathError::InvalidSegment("~".into()))
        );
        // Paths without '~' are only validated, whatever the identity.
        assert_eq!(any("/42/default", "").unwrap(), "/42/default");
        assert_eq!(first("/42/default", "a/b").unwrap(), "/42/default");
        for id in ["", ".", "..", "a/b", "ø"] {
            assert_eq!(
                any("/~/x", id),
                Err(PathError::InvalidIdentity(id.into())),
                "{id:?}"
            );
        }
        // The resolved last segment is checked for the reserved suffixes.
        assert!(matches!(
            any("/shared/~", "me.realm"),
            Err(PathError::ReservedSuffix { .. })
        ));
        assert_eq!(any("~/x", "u1"), Err(PathError::NotAbsolute));
        // The limit applies after '~' is replaced.
        let path = format!("/~/{}", "a".repeat(MAX_PATH_BYTES - 3));
        assert_eq!(any(&path, "b").unwrap().len(), MAX_PATH_BYTES);
        assert_eq!(
            any(&path, "bc"),
            Err(PathError::TooLong(MAX_PATH_BYTES + 1))
        );
    }
}
