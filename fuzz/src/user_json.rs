//! User JSON (`App::user_from_json`: Shoal's `User::to_json` and ROS-era user JSON, including
//! the unverified decoding of the token inside) on any text.
//!
//! Checks: no panic and no `Internal` error; a user that loads writes itself back with
//! `User::to_json` as JSON that loads again as the same user (identity, auth URL, refresh
//! token, expiry, admin flag); and a synced realm of that user gets a local path inside the
//! app's sync root, or an error (identities come from untrusted JSON and name directories).

use std::path::Component;

use shoal::{App, SyncConfig, User};

use crate::assert_not_internal;

thread_local! {
    /// One app for the whole run, in a temporary folder (under `$TMPDIR`: scripts/fuzz.sh
    /// points it at a folder it removes afterwards, as libFuzzer exits without running
    /// destructors).
    static APP: (tempfile::TempDir, App) = {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let app = App::new(dir.path(), "fuzz").expect("an app");
        (dir, app)
    };
}

/// What must survive a round trip through `User::to_json`.
fn summary(user: &User) -> (String, String, Option<String>, Option<i64>, bool, bool) {
    (
        user.identity().to_owned(),
        user.auth_url(),
        user.refresh_token(),
        user.refresh_token_expires(),
        user.is_admin(),
        user.is_valid(),
    )
}

/// Runs the checks on one input (not UTF-8: ignored, the API takes `&str`).
///
/// # Panics
/// When a check fails.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    APP.with(|(_, app)| {
        let user = match app.user_from_json(text) {
            Ok(user) => user,
            Err(e) => {
                assert_not_internal(&e, "user_from_json");
                return;
            }
        };
        let first = summary(&user);
        let json = user.to_json();
        let again = match app.user_from_json(&json) {
            Ok(again) => again,
            Err(e) => panic!("User::to_json's output does not load: {e:?}\n{json}"),
        };
        assert_eq!(
            summary(&again),
            first,
            "the round trip changed the user\n{json}"
        );
        match SyncConfig::new(&user, "realm://127.0.0.1:9080/~/tasks") {
            Ok(config) => {
                let root = app.sync_root();
                let path = config.local_path();
                assert!(
                    path.starts_with(&root)
                        && path.strip_prefix(&root).is_ok_and(|p| p
                            .components()
                            .all(|c| matches!(c, Component::Normal(_)))),
                    "the local path {} leaves the sync root {}",
                    path.display(),
                    root.display()
                );
            }
            Err(e) => assert_not_internal(&e, "SyncConfig::new"),
        }
    });
}
