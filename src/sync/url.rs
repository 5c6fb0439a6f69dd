//! Sync URLs and the local file of a synced realm, re-creating the rules of Realm Java's
//! `SyncConfiguration`.
//!
//! A sync URL is `realm://host[:port]/path` (plain) or `realms://host[:port]/path` (TLS). The
//! path is a realm path as [`crate::protocol::path`] defines it (what the auth service and the
//! sync service accept), after every segment that is exactly `~` is replaced by the user's
//! identity here, so that the resolved URL names one realm.
//!
//! The local file of a synced realm is `<root>/<identity>/<server path>`, so two users of the
//! same URL never share a file; paths longer than Realm's limits get a hashed file name.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::protocol::path::{self, PathError, Tilde};
use crate::protocol::sync::MAX_PATH_BYTES;

/// Realm's `MAX_FULL_PATH_LENGTH`: the longest local realm path, in bytes. Longer paths get a
/// hashed file name, then lose the server path directories, then are refused.
const MAX_FULL_PATH_LENGTH: usize = 256;

/// Realm's `MAX_FILE_NAME_LENGTH`: the longest file name most file systems accept, in bytes.
const MAX_FILE_NAME_LENGTH: usize = 255;

/// Hex characters kept of the file name hash (Realm used the 32 hex characters of an MD5).
const HASHED_NAME_LEN: usize = 32;

/// The path of the sync service's WebSocket endpoint on the server.
const SYNC_ENDPOINT: &str = "/realm-sync";

/// A parsed, validated sync URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncUrl {
    /// true for `realms://` (TLS), false for `realm://`.
    pub secure: bool,
    /// Host as written (lowercased), IPv6 literals keep their brackets.
    pub host: String,
    /// Port if given.
    pub port: Option<u16>,
    /// The server path with `~` segments replaced by the identity, starting with '/',
    /// e.g. "/abc123/sub/default".
    pub path: String,
    /// The resolved URL: `scheme://host[:port]<path>`,
    /// e.g. "realm://127.0.0.1:9080/abc123/default".
    pub resolved: String,
}

impl SyncUrl {
    /// Parses and validates `url` for the user `identity`.
    ///
    /// Every `~` segment becomes `identity`, so the result names the user's own realm; the
    /// identity is checked only when it is used that way. Anything the auth and sync services
    /// would refuse (or that Realm Java refused) is rejected here, before any file is created,
    /// with [`ErrorCode::InvalidArgument`](crate::error::ErrorCode::InvalidArgument) and a
    /// message naming the URL and the offending part.
    pub fn parse(url: &str, identity: &str) -> Result<SyncUrl> {
        let bad = |why: String| Error::invalid(format!("invalid sync URL '{url}': {why}"));
        if url.is_empty() {
            return Err(Error::invalid("invalid sync URL: it is empty"));
        }
        // The scheme is case-sensitive, as Realm Java's check was.
        let (secure, rest) = match url.split_once("://") {
            Some(("realm", rest)) => (false, rest),
            Some(("realms", rest)) => (true, rest),
            Some((scheme, _)) => {
                return Err(bad(format!(
                    "the scheme '{scheme}' is not supported; use 'realm://' or 'realms://'"
                )))
            }
            None => {
                return Err(bad(
                    "it must start with 'realm://' or 'realms://'".to_owned()
                ))
            }
        };
        // A query or fragment would be silently dropped by the server: refuse it instead.
        if rest.contains('?') {
            return Err(bad("a query ('?') is not allowed".to_owned()));
        }
        if rest.contains('#') {
            return Err(bad("a fragment ('#') is not allowed".to_owned()));
        }
        let (authority, raw_path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        // Credentials travel as tokens, never in the URL.
        if authority.contains('@') {
            return Err(bad(
                "user information ('user@') is not allowed in the host".to_owned()
            ));
        }
        let (host, port) = parse_authority(authority).map_err(bad)?;

        if raw_path.strip_prefix('/').is_none_or(str::is_empty) {
            return Err(bad(
                "the path is missing; a realm path such as '/~/default' is required".to_owned(),
            ));
        }
        let path = path::resolve(raw_path, identity, Tilde::AnySegment).map_err(|e| {
            bad(match e {
                PathError::EmptySegment => {
                    "the path has an empty segment ('//' or a trailing '/')".to_owned()
                }
                PathError::InvalidSegment(segment) => format!(
                    "the path segment '{segment}' is invalid; segments are [A-Za-z0-9_.-]+ \
                     (not '.' or '..') or exactly '~'"
                ),
                PathError::InvalidIdentity(identity) if identity.is_empty() => {
                    "'~' cannot be resolved: the user identity is empty".to_owned()
                }
                PathError::InvalidIdentity(identity) => format!(
                    "'~' cannot be resolved: the user identity '{identity}' is not a valid \
                     path segment ([A-Za-z0-9_.-]+, not '.' or '..')"
                ),
                PathError::ReservedSuffix { segment, suffix } => format!(
                    "the last path segment '{segment}' ends with '{suffix}', which is reserved \
                     for Realm's own files"
                ),
                PathError::TooLong(len) => format!(
                    "the resolved path is {len} bytes long; the sync protocol allows at most \
                     {MAX_PATH_BYTES}"
                ),
                other @ PathError::NotAbsolute => other.to_string(),
            })
        })?;
        let scheme = if secure { "realms" } else { "realm" };
        let resolved = format!("{scheme}://{}{path}", host_port(&host, port));
        Ok(SyncUrl {
            secure,
            host,
            port,
            path,
            resolved,
        })
    }

    /// The WebSocket endpoint of the sync service: `ws://host[:port]/realm-sync` for realm://,
    /// `wss://...` for realms://. Default port when none given: 80 for realm, 443 for realms
    /// (the port is written only if it was given).
    ///
    /// The sync service lives on the same host and port as the realm URL names, so the
    /// endpoint is derived from it rather than configured separately; leaving out an absent port
    /// lets the WebSocket client apply the scheme's default, which is the same default.
    pub fn websocket_url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{SYNC_ENDPOINT}",
            host_port(&self.host, self.port)
        )
    }

    /// The last path segment (the default local file name).
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or_default()
    }
}

/// The local file path of a synced realm:
/// `<root>/<identity>/<server path without leading '/' and without last segment>/<last segment>`.
///
/// Keying the directory by `identity` keeps users of the same URL (e.g. a shared
/// `/42/default`) on separate files. As in Realm Java, a path longer than 256 bytes (measured on
/// the path as built from `root`, which is used as given) first gets a hashed file name, then
/// loses the server path directories (`<root>/<identity>/<hash>`), and is refused if it is still
/// too long. The identity must be a safe single path component. No directory is created.
///
/// `name` (checked by [`file_name_arg`]) replaces the URL's last segment as the file name when
/// given (Realm Java's `SyncConfiguration.Builder.name()`); the length rules apply to it the
/// same way.
pub(crate) fn local_realm_path(
    root: &Path,
    identity: &str,
    url: &SyncUrl,
    name: Option<&str>,
) -> Result<PathBuf> {
    if identity.is_empty()
        || identity == "."
        || identity == ".."
        || identity.contains(['/', '\\', '\0'])
    {
        return Err(Error::invalid(format!(
            "the user identity '{}' cannot be used as a directory name: it must be non-empty, \
             not '.' or '..', and contain no '/', '\\' or NUL",
            identity.escape_default()
        )));
    }
    // `SyncUrl`'s fields are public, so check again that the path cannot escape the root.
    let segments: Vec<&str> = url
        .path
        .strip_prefix('/')
        .map(|p| p.split('/').collect())
        .unwrap_or_default();
    let Some((last, dirs)) = segments.split_last() else {
        return Err(Error::invalid(format!(
            "the sync path '{}' does not start with '/'",
            url.path
        )));
    };
    if let Some(bad) = segments.iter().find(|s| !path::is_segment(s)) {
        return Err(Error::invalid(format!(
            "the sync path '{}' has the invalid segment '{bad}'",
            url.path
        )));
    }

    let name = name.unwrap_or(last);
    if !is_file_name(name) {
        return Err(Error::invalid(format!(
            "the realm file name '{}' is not a single file name",
            name.escape_default()
        )));
    }
    let user_dir = root.join(identity);
    let dir = dirs.iter().fold(user_dir.clone(), |d, s| d.join(s));
    let full = dir.join(name);
    if fits(&full, name) {
        return Ok(full);
    }
    let hashed = hashed_file_name(name);
    let full = dir.join(&hashed);
    if fits(&full, &hashed) {
        return Ok(full);
    }
    let full = user_dir.join(&hashed);
    if fits(&full, &hashed) {
        return Ok(full);
    }
    Err(Error::invalid(format!(
        "the local path of '{}' under the root directory '{}' is longer than \
         {MAX_FULL_PATH_LENGTH} bytes even with a hashed file name and without the server path \
         directories; use a shorter root directory",
        url.resolved,
        root.display()
    )))
}

/// Suffixes of the files Shoal writes beside a realm file (an interrupted creation,
/// compaction or format upgrade): a realm of such a name would be overwritten by those of its
/// neighbour.
const COMPANION_SUFFIXES: [&str; 3] = [".creating", ".compact", ".upgrade"];

/// Whether `name` is one plain file name: not empty, not `.`/`..`, no separator or NUL.
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Checks a local file name given instead of the URL's last segment (Realm Java's
/// `SyncConfiguration.Builder.name()`) and returns it as it will be used: the characters
/// `< > : " / \ | ? *` (and NUL) become `_`, as Realm Java replaced them.
///
/// # Errors
/// `InvalidArgument` for an empty name, `.` or `..`, or a name ending in a suffix of Shoal's
/// companion files (`.creating`, `.compact`, `.upgrade`).
pub(crate) fn file_name_arg(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::invalid("the realm file name must not be empty"));
    }
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '/' | '\\' | '|' | '?' | '*' | '\0' => '_',
            c => c,
        })
        .collect();
    if cleaned == "." || cleaned == ".." {
        return Err(Error::invalid(format!(
            "the realm file name '{cleaned}' names a directory, not a file"
        )));
    }
    if let Some(suffix) = COMPANION_SUFFIXES.iter().find(|s| cleaned.ends_with(*s)) {
        return Err(Error::invalid(format!(
            "the realm file name '{cleaned}' ends with '{suffix}', which is reserved for the \
             files Shoal writes beside a realm"
        )));
    }
    Ok(cleaned)
}

/// Checks a root directory given for synced realm files (Realm Java's
/// `SyncConfiguration.Builder.directory()`): creates it if missing and makes sure it is a
/// directory this process can create files in (by creating and removing one). Returns it
/// absolute and canonical, so that the files recorded under it (see logout) name the same
/// files from any working directory.
///
/// # Errors
/// `InvalidArgument` for an empty path, a path that is a file (or not a directory), a
/// directory that cannot be created, or one that is not writable; the message names the
/// path and the system's reason.
pub(crate) fn directory_arg(dir: &Path) -> Result<PathBuf> {
    if dir.as_os_str().is_empty() {
        return Err(Error::invalid("the directory must not be empty"));
    }
    let shown = dir.display().to_string();
    let bad = |why: String| {
        Error::invalid(format!("the directory '{shown}' {why}")).with_path(shown.clone())
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(bad("is a file, not a directory".to_owned())),
        Ok(_) => {}
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot be created: {e}")))?
        }
    }
    let canonical =
        std::fs::canonicalize(dir).map_err(|e| bad(format!("cannot be resolved: {e}")))?;
    let probe = canonical.join(format!(
        ".shoal-write-check-{}-{:016x}",
        std::process::id(),
        crate::util::random_u64()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => return Err(bad(format!("is not writable: {e}"))),
    }
    Ok(canonical)
}

/// Whether `path` (whose file name is `name`) is within Realm's full path and file name limits.
fn fits(path: &Path, name: &str) -> bool {
    path.as_os_str().len() <= MAX_FULL_PATH_LENGTH && name.len() <= MAX_FILE_NAME_LENGTH
}

/// The short file name for a too-long path: the first 32 upper-case hex characters of the
/// SHA-256 of `name`. Realm Java used the MD5 (also 32 hex characters); we use SHA-256, which
/// the crate already depends on, so these names differ from Realm Java's.
fn hashed_file_name(name: &str) -> String {
    let mut hex: String = Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    hex.truncate(HASHED_NAME_LEN);
    hex
}

/// `host` or `host:port`.
fn host_port(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Splits and validates `host[:port]`; the host is returned lower-cased. The error is the
/// reason only (the caller adds the URL).
fn parse_authority(authority: &str) -> std::result::Result<(String, Option<u16>), String> {
    let (host, port) = if authority.starts_with('[') {
        let Some(end) = authority.find(']') else {
            return Err(format!("the IPv6 host '{authority}' has no closing ']'"));
        };
        let (host, after) = authority.split_at(end + 1);
        let inner = &host[1..host.len() - 1];
        let well_formed = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            && inner.parse::<std::net::Ipv6Addr>().is_ok();
        if !well_formed {
            return Err(format!(
                "the IPv6 host '{host}' is not a valid IPv6 address"
            ));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(format!("unexpected '{after}' after the IPv6 host '{host}'")),
            },
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("the host is missing".to_owned());
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(format!(
                "the host '{host}' is invalid; use a DNS name or IPv4 address ([A-Za-z0-9.-]) \
                 or a bracketed IPv6 address"
            ));
        }
        (host, port)
    };
    let port = match port {
        None => None,
        Some("") => return Err("the port after ':' is empty".to_owned()),
        Some(p) => {
            // Digits only: `u16::from_str` would also take a leading '+'.
            let number = p
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| p.parse::<u16>().ok())
                .flatten()
                .filter(|&n| n != 0);
            match number {
                Some(n) => Some(n),
                None => {
                    return Err(format!(
                        "the port '{p}' is invalid; it must be a decimal number from 1 to 65535"
                    ))
                }
            }
        }
    };
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const ID: &str = "abc123";

    fn parse(url: &str) -> SyncUrl {
        SyncUrl::parse(url, ID).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    /// Asserts that `url` is refused with InvalidArgument and a message naming it and `part`.
    fn refused(url: &str, identity: &str, part: &str) {
        let err = SyncUrl::parse(url, identity).expect_err(url);
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{url}");
        assert!(
            err.message().contains(url) && err.message().contains(part),
            "{url}: message {:?} should name {part:?}",
            err.message()
        );
    }

    fn local(root: &str, identity: &str, url: &str) -> Result<PathBuf> {
        local_realm_path(
            Path::new(root),
            identity,
            &SyncUrl::parse(url, identity)?,
            None,
        )
    }

    #[test]
    fn valid_urls_parse_and_resolve_tilde() {
        assert_eq!(
            parse("realm://objectserver.realm.io/~/default"),
            SyncUrl {
                secure: false,
                host: "objectserver.realm.io".into(),
                port: None,
                path: "/abc123/default".into(),
                resolved: "realm://objectserver.realm.io/abc123/default".into(),
            }
        );
        assert_eq!(
            parse("realms://host:9443/~/sub/default"),
            SyncUrl {
                secure: true,
                host: "host".into(),
                port: Some(9443),
                path: "/abc123/sub/default".into(),
                resolved: "realms://host:9443/abc123/sub/default".into(),
            }
        );
        let u = parse("realm://127.0.0.1:9080/~/tests");
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", Some(9080)));
        assert_eq!(u.resolved, "realm://127.0.0.1:9080/abc123/tests");
        let u = parse("realm://[::1]:9080/~/x");
        assert_eq!((u.host.as_str(), u.port), ("[::1]", Some(9080)));
        assert_eq!(u.resolved, "realm://[::1]:9080/abc123/x");
        let u = parse("realm://[2001:DB8::1]/~/x");
        assert_eq!((u.host.as_str(), u.port), ("[2001:db8::1]", None));
        // Without '~' the path stays as written, whatever the identity.
        let u = parse("realm://ros.realm.io/42/default");
        assert_eq!(u.path, "/42/default");
        assert_eq!(u.resolved, "realm://ros.realm.io/42/default");
        assert_eq!(
            SyncUrl::parse("realm://ros.realm.io/42/default", "").unwrap(),
            u
        );
        assert_eq!(
            parse("realm://objectserver.realm.io/default").path,
            "/default"
        );
        // The host is lower-cased; the path is not.
        let u = parse("realm://ObjectServer.Realm.IO:80/~/Default");
        assert_eq!(u.host, "objectserver.realm.io");
        assert_eq!(
            u.resolved,
            "realm://objectserver.realm.io:80/abc123/Default"
        );
        // '~' may be any segment, the last one included, and may occur more than once.
        assert_eq!(parse("realm://h/shared/~").path, "/shared/abc123");
        assert_eq!(parse("realm://h/~").path, "/abc123");
        assert_eq!(parse("realm://h/~/x/~/y").path, "/abc123/x/abc123/y");
        assert_eq!(parse("realm://h/a_b-c.d/e.1").path, "/a_b-c.d/e.1");
        assert_eq!(parse("realm://h:65535/x").port, Some(65535));
        assert_eq!(parse("realm://h:1/x").port, Some(1));
    }

    #[test]
    fn bad_scheme_or_shape_is_refused() {
        let err = SyncUrl::parse("", ID).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.message().contains("empty"), "{}", err.message());
        refused("http://host/~/default", ID, "'http'");
        refused("https://host/~/default", ID, "'https'");
        refused("ws://host/~/default", ID, "'ws'");
        refused("REALM://host/~/default", ID, "'REALM'");
        refused("Realms://host/~/default", ID, "'Realms'");
        refused("realm:/host/x", ID, "realm://");
        refused("host/~/default", ID, "realm://");
        refused("//host/x", ID, "realm://");
        refused("realm://", ID, "host is missing");
        refused("realm://host", ID, "path is missing");
        refused("realm://host/", ID, "path is missing");
        refused("realm://host:9080", ID, "path is missing");
        refused("realm://u@host/x", ID, "user information");
        refused("realm://u:p@host/x", ID, "user information");
        refused("realm://host/x?y", ID, "query");
        refused("realm://host/x#y", ID, "fragment");
        refused("realm://host?y", ID, "query");
    }

    #[test]
    fn bad_hosts_and_ports_are_refused() {
        refused("realm:///x", ID, "host is missing");
        refused("realm://:9080/x", ID, "host is missing");
        refused("realm://ho_st/x", ID, "'ho_st'");
        refused("realm://hø st/x", ID, "'hø st'");
        refused("realm://[]/x", ID, "'[]'");
        refused("realm://[::1/x", ID, "'[::1'");
        refused("realm://[zz::1]/x", ID, "'[zz::1]'");
        refused("realm://[1:2]/x", ID, "'[1:2]'");
        refused("realm://[::1%eth0]/x", ID, "'[::1%eth0]'");
        refused("realm://[::1]x/x", ID, "'x'");
        refused("realm://host:0/x", ID, "'0'");
        refused("realm://host:99999/x", ID, "'99999'");
        refused("realm://host:65536/x", ID, "'65536'");
        refused("realm://host:123456789012/x", ID, "'123456789012'");
        refused("realm://host:/x", ID, "port after ':' is empty");
        refused("realm://[::1]:/x", ID, "port after ':' is empty");
        refused("realm://host:abc/x", ID, "'abc'");
        refused("realm://host:+80/x", ID, "'+80'");
        refused("realm://host:80:81/x", ID, "'80:81'");
    }

    #[test]
    fn bad_paths_are_refused() {
        refused("realm://host//x", ID, "empty segment");
        refused("realm://host/~/default/", ID, "empty segment");
        refused("realm://host/~/default.realm/", ID, "empty segment");
        refused("realm://host/~/default.realm", ID, "'default.realm'");
        refused("realm://host/~/default.realm.lock", ID, "'.realm.lock'");
        refused(
            "realm://host/~/default.realm.management",
            ID,
            "'.realm.management'",
        );
        refused("realm://host/~/foo/../bar", ID, "'..'");
        refused("realm://host/~/foo/./bar", ID, "'.'");
        refused("realm://host/..", ID, "'..'");
        refused("realm://host/~/<~>", ID, "'<~>'");
        refused("realm://host/~/ø", ID, "'ø'");
        refused("realm://host/~/a~b", ID, "'a~b'");
        refused("realm://host/~~/x", ID, "'~~'");
        refused("realm://host/~/a b", ID, "'a b'");
        refused("realm://host/~/a%20b", ID, "'a%20b'");
        refused("realm://host/~/a\\b", ID, "'a\\b'");
        // Only the last segment is checked for the reserved suffixes.
        assert_eq!(parse("realm://host/x.realm/y").path, "/x.realm/y");
        assert_eq!(parse("realm://host/x.realms").path, "/x.realms");
    }

    #[test]
    fn identity_must_be_a_segment_when_it_replaces_tilde() {
        refused("realm://host/~/x", "", "identity is empty");
        refused("realm://host/~/x", "a/b", "'a/b'");
        refused("realm://host/~/x", "..", "'..'");
        refused("realm://host/~/x", "ø", "'ø'");
        // The resolved last segment is checked too.
        refused("realm://host/shared/~", "me.realm", "'me.realm'");
    }

    #[test]
    fn resolved_path_is_limited_to_the_protocol_maximum() {
        let at_limit = format!("realm://h/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(parse(&at_limit).path.len(), MAX_PATH_BYTES);
        refused(
            &format!("realm://h/{}", "a".repeat(MAX_PATH_BYTES)),
            ID,
            "1025 bytes",
        );
        // The limit applies after '~' is replaced.
        let url = format!("realm://h/~/{}", "a".repeat(MAX_PATH_BYTES - 3));
        assert_eq!(
            SyncUrl::parse(&url, "b").unwrap().path.len(),
            MAX_PATH_BYTES
        );
        refused(&url, "bc", "1025 bytes");
    }

    #[test]
    fn websocket_url_and_file_name() {
        assert_eq!(
            parse("realm://objectserver.realm.io/~/default").websocket_url(),
            "ws://objectserver.realm.io/realm-sync"
        );
        assert_eq!(
            parse("realm://127.0.0.1:9080/~/tests").websocket_url(),
            "ws://127.0.0.1:9080/realm-sync"
        );
        assert_eq!(
            parse("realms://host/~/default").websocket_url(),
            "wss://host/realm-sync"
        );
        assert_eq!(
            parse("realms://host:9443/~/sub/default").websocket_url(),
            "wss://host:9443/realm-sync"
        );
        assert_eq!(
            parse("realm://[::1]:9080/~/x").websocket_url(),
            "ws://[::1]:9080/realm-sync"
        );
        assert_eq!(
            parse("realms://host:9443/~/sub/default").file_name(),
            "default"
        );
        assert_eq!(parse("realm://host/~").file_name(), ID);
        assert_eq!(parse("realm://host/only").file_name(), "only");
    }

    #[test]
    fn local_paths_are_per_user() {
        assert_eq!(
            local("/data", "I", "realm://objectserver.realm.io/~/default").unwrap(),
            Path::new("/data/I/I/default")
        );
        let url = SyncUrl::parse("realm://objectserver.realm.io/~/sub/default", "I").unwrap();
        assert_eq!(
            local_realm_path(Path::new("/data"), "I", &url, None).unwrap(),
            Path::new("/data/I/I/sub/default")
        );
        let one = local("/data", "user1", "realm://ros.realm.io/42/default").unwrap();
        let two = local("/data", "user2", "realm://ros.realm.io/42/default").unwrap();
        assert_eq!(one, Path::new("/data/user1/42/default"));
        assert_eq!(two, Path::new("/data/user2/42/default"));
        assert_ne!(one, two);
        // A trailing separator on the root changes nothing.
        assert_eq!(
            local("/data/", "I", "realm://h/42/default").unwrap(),
            Path::new("/data/I/42/default")
        );
        // The directory identity need not be a URL segment when '~' is not used.
        assert_eq!(
            local("/data", "ø", "realm://h/42/default").unwrap(),
            Path::new("/data/ø/42/default")
        );
    }

    #[test]
    fn unsafe_identities_and_paths_are_refused_locally() {
        for identity in ["", ".", "..", "a/b", "a\\b", "a\0b", "/"] {
            let err = local("/data", identity, "realm://h/42/default").expect_err(identity);
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(err.message().contains("identity"), "{}", err.message());
        }
        // Hand-built URLs are checked too: the path cannot escape the root.
        let mut url = parse("realm://h/42/default");
        for path in ["/../x", "/42/..", "42/default", "", "/a//b", "/"] {
            url.path = path.to_owned();
            let err = local_realm_path(Path::new("/data"), "I", &url, None).expect_err(path);
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(err.message().contains(path), "{}", err.message());
        }
    }

    #[test]
    fn long_file_names_are_hashed() {
        let name = "n".repeat(200);
        let url = format!("realm://h/~/{name}");
        let expected_hash: String = Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()[..32]
            .to_owned();
        // "/" + 50 + "/I/I/" + 200 is exactly 256 bytes: kept as it is.
        let root = format!("/{}", "r".repeat(50));
        let kept = SyncUrl::parse(&url, "I")
            .and_then(|u| local_realm_path(Path::new(&root), "I", &u, None))
            .unwrap();
        assert_eq!(kept, Path::new(&format!("{root}/I/I/{name}")));
        assert_eq!(kept.as_os_str().len(), MAX_FULL_PATH_LENGTH);
        // One more byte: the file name becomes the hash, in the same directory.
        let root = format!("/{}", "r".repeat(51));
        let hashed = SyncUrl::parse(&url, "I")
            .and_then(|u| local_realm_path(Path::new(&root), "I", &u, None))
            .unwrap();
        assert_eq!(hashed, Path::new(&format!("{root}/I/I/{expected_hash}")));
        assert_eq!(hashed_file_name(&name), expected_hash);
        assert!(expected_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
        // Different long names get different hashes.
        assert_ne!(hashed_file_name(&name), hashed_file_name(&"m".repeat(200)));
    }

    #[test]
    fn too_long_directories_are_dropped_then_refused() {
        // "/r/I/I/" + 245 + "/default" is 260 bytes, and 285 with the hashed name.
        let dir = "d".repeat(245);
        let url = SyncUrl::parse(&format!("realm://h/~/{dir}/default"), "I").unwrap();
        let path = local_realm_path(Path::new("/r"), "I", &url, None).unwrap();
        assert_eq!(
            path,
            Path::new(&format!("/r/I/{}", hashed_file_name("default")))
        );
        // A root that leaves no room is refused, naming the root.
        let root = format!("/{}", "x".repeat(300));
        let err = local_realm_path(Path::new(&root), "I", &url, None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.message().contains(&root), "{}", err.message());
        let short = SyncUrl::parse("realm://h/~/default", "I").unwrap();
        let err = local_realm_path(Path::new(&root), "I", &short, None).unwrap_err();
        assert!(err.message().contains(&root), "{}", err.message());
        // root/I/<hash> fits exactly when the root is at most 256 - "/I/".len() - 32 = 221 bytes.
        let root = format!("/{}", "x".repeat(220));
        let path = local_realm_path(Path::new(&root), "I", &url, None).unwrap();
        assert_eq!(path.as_os_str().len(), MAX_FULL_PATH_LENGTH);
        let root = format!("/{}", "x".repeat(221));
        assert!(local_realm_path(Path::new(&root), "I", &url, None).is_err());
    }

    #[test]
    fn local_paths_never_exceed_the_limits() {
        for root in ["", "/", "/data"] {
            for len in [1, 100, 240, 250, 251, 252, 253, 254, 255, 256, 300, 1000] {
                let url = SyncUrl::parse(&format!("realm://h/{}", "a".repeat(len)), "I").unwrap();
                let path = local_realm_path(Path::new(root), "I", &url, None).unwrap();
                let name = path.file_name().unwrap().len();
                assert!(name <= MAX_FILE_NAME_LENGTH, "{root} {len}");
                assert!(
                    path.as_os_str().len() <= MAX_FULL_PATH_LENGTH,
                    "{root} {len}"
                );
                assert!(path.starts_with(Path::new(root).join("I")), "{root} {len}");
            }
        }
    }

    #[test]
    fn no_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path =
            local_realm_path(dir.path(), "I", &parse("realm://h/~/sub/default"), None).unwrap();
        assert_eq!(
            path,
            dir.path().join("I").join(ID).join("sub").join("default")
        );
        assert!(!dir.path().join("I").exists());
    }

    #[test]
    fn a_given_file_name_replaces_the_last_segment_and_is_cleaned() {
        let url = parse("realm://h/~/sub/default");
        assert_eq!(
            local_realm_path(Path::new("/data"), "I", &url, Some("mine")).unwrap(),
            Path::new("/data/I/abc123/sub/mine")
        );
        assert_eq!(
            file_name_arg("a<b>c:d\"e/f\\g|h?i*j").unwrap(),
            "a_b_c_d_e_f_g_h_i_j"
        );
        assert_eq!(file_name_arg("my.realm").unwrap(), "my.realm");
        assert_eq!(file_name_arg("..x").unwrap(), "..x");
        for bad in ["", ".", "..", "a.creating", "a.compact", "a.upgrade"] {
            let err = file_name_arg(bad).expect_err(bad);
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad}");
        }
        assert!(file_name_arg("").unwrap_err().message().contains("empty"));
        // A name beyond the limits is hashed like a long last segment.
        let long = "n".repeat(300);
        let path = local_realm_path(Path::new("/data"), "I", &url, Some(&long)).unwrap();
        assert_eq!(path.file_name().unwrap().len(), HASHED_NAME_LEN);
        // A hand-built name is checked too.
        assert!(local_realm_path(Path::new("/data"), "I", &url, Some("a/b")).is_err());
        assert!(local_realm_path(Path::new("/data"), "I", &url, Some("..")).is_err());
    }

    #[test]
    fn a_given_directory_is_created_and_must_be_a_writable_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("a").join("b");
        let got = directory_arg(&new).unwrap();
        assert!(new.is_dir());
        assert_eq!(got, std::fs::canonicalize(&new).unwrap());
        assert_eq!(
            std::fs::read_dir(&new).unwrap().count(),
            0,
            "the write check leaves nothing behind"
        );
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = directory_arg(&file).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.message().contains("is a file"), "{}", err.message());
        let err = directory_arg(&file.join("sub")).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(
            err.message().contains("cannot be created"),
            "{}",
            err.message()
        );
        let err = directory_arg(Path::new("")).unwrap_err();
        assert!(err.message().contains("empty"), "{}", err.message());
        // /proc refuses new files even to root.
        if Path::new("/proc/self").exists() {
            let err = directory_arg(Path::new("/proc")).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(err.message().contains("not writable"), "{}", err.message());
        }
    }
}
