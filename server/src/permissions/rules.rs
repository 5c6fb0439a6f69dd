//! What each management realm request does: access decisions, offers, responses and changes,
//! each decided and recorded inside the one write transaction of its batch (grants, offers
//! and the `processed` row together), so a crash never leaves a grant without its recorded
//! answer or the other way round.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use shoal::protocol::path::{self as realm_path, Tilde};
use shoal::ErrorCode;

use super::store::{GrantRead, OfferRow, Outcome, WriteTables};
use super::{
    is_unshareable, management_realm_owner, owner_of, perr, Access, GrantChange, Permissions,
    PermissionsError, EVERYONE,
};

/// Random bytes of a token the server draws (256 bits; 43 base64url characters).
const TOKEN_BYTES: usize = 32;
/// The shortest token an offer may propose: as long as the server's own.
const MIN_PROPOSED_TOKEN: usize = 43;
/// The longest token an offer may propose.
const MAX_PROPOSED_TOKEN: usize = 256;
/// The longest `realmUrl` taken (a realm path is at most 1024 bytes).
const MAX_URL: usize = 2048;
/// The longest `userId` taken (identities are 32 characters, debug ones path segments).
const MAX_USER_ID: usize = 256;

/// One request read out of a management realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Request {
    /// `PermissionOffer`.
    Offer {
        realm_url: String,
        access: Access,
        /// `expiresAt` in unix milliseconds, if set.
        expires_ms: Option<i64>,
        /// A `token` the client set itself.
        proposed_token: Option<String>,
    },
    /// `PermissionOfferResponse`.
    Response { token: String },
    /// `PermissionChange`; `None` levels keep the current value.
    Change {
        realm_url: String,
        user_id: String,
        read: Option<bool>,
        write: Option<bool>,
        manage: Option<bool>,
    },
}

/// One object to answer: its class, its id, and the request (or why it is not one).
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) class: &'static str,
    pub(super) id: String,
    pub(super) request: Result<Request, Outcome>,
}

/// A success answer.
pub(super) fn ok(value: Option<String>) -> Outcome {
    Outcome {
        code: 0,
        message: None,
        value,
    }
}

/// An error answer.
pub(super) fn fail(code: ErrorCode, message: impl Into<String>) -> Outcome {
    Outcome {
        code: code as i32,
        message: Some(message.into()),
        value: None,
    }
}

/// The access of `identity` to `path` (see the module doc of `permissions`).
pub(super) fn access(
    tables: &impl GrantRead,
    identity: &str,
    is_admin: bool,
    path: &str,
) -> Result<Access, PermissionsError> {
    if is_admin || owner_of(path) == Some(identity) {
        return Ok(Access::ALL);
    }
    if is_unshareable(path) {
        return Ok(Access::NONE);
    }
    Ok(tables
        .grant(path, identity)?
        .union(tables.grant(path, EVERYONE)?))
}

/// A `realmUrl`: a sync URL `realm[s]://authority/path` (the authority is kept, not checked)
/// or a bare path, whose `~` segments stand for `owner`. Returns the resolved path and the URL
/// with that path.
pub(super) fn parse_realm_url(url: &str, owner: &str) -> Result<(String, String), String> {
    if url.len() > MAX_URL {
        return Err(format!("'realmUrl' is longer than {MAX_URL} bytes"));
    }
    let (prefix, path) = if url.starts_with('/') {
        ("", url)
    } else {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "'realmUrl' must be a realm:// or realms:// URL or a realm path, not '{url}'"
            ));
        };
        if scheme != "realm" && scheme != "realms" {
            return Err(format!(
                "'realmUrl' must be a realm:// or realms:// URL, not {scheme}://"
            ));
        }
        let Some(slash) = rest.find('/') else {
            return Err(format!("'realmUrl' '{url}' has no path"));
        };
        // host[:port] or [IPv6]:port; no user info, query or fragment.
        let authority = &rest[..slash];
        let host_char = |b: u8| b.is_ascii_alphanumeric() || b".-:[]".contains(&b);
        if authority.is_empty() || !authority.bytes().all(host_char) {
            return Err(format!("'realmUrl' '{url}' is not a sync URL"));
        }
        if rest.contains(['?', '#']) {
            return Err(format!(
                "'realmUrl' '{url}' has a query or fragment, which a sync URL has not"
            ));
        }
        (&url[..scheme.len() + 3 + slash], &rest[slash..])
    };
    let resolved = realm_path::resolve(path, owner, Tilde::AnySegment)
        .map_err(|e| format!("'realmUrl' has an invalid path: {e}"))?;
    let url = format!("{prefix}{resolved}");
    Ok((resolved, url))
}

/// A fresh token: 256 bits from the OS, base64url without padding.
fn new_token() -> Result<String, PermissionsError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(perr)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether a token an offer proposes is acceptable: 43 to 256 base64url characters.
fn is_proposable_token(token: &str) -> bool {
    (MIN_PROPOSED_TOKEN..=MAX_PROPOSED_TOKEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What one batch is decided against.
pub(super) struct Context<'a> {
    /// The management realm the requests come from.
    pub(super) management_path: &'a str,
    /// Its owner: the user every request acts for.
    pub(super) owner: &'a str,
    /// Whether the owner is an admin (stored flag).
    pub(super) owner_is_admin: bool,
    /// The server's clock, unix milliseconds.
    pub(super) now_ms: i64,
    /// The realm paths under `/<user>/` that exist (for `realmUrl` `*`).
    pub(super) owned_realms: &'a dyn Fn(&str) -> Result<Vec<String>, PermissionsError>,
}

impl Permissions {
    /// Answers `items`, in order, in one transaction: an object answered before gets its
    /// recorded answer again (nothing is decided twice); the others are decided, and their
    /// grants, offers and answers recorded. Grant changes are announced once committed.
    /// Returns the answers and whether any was decided now.
    ///
    /// # Errors
    /// A storage failure: nothing was recorded.
    pub(super) fn decide_batch(
        &self,
        cx: &Context<'_>,
        items: &[Item],
    ) -> Result<(Vec<Outcome>, bool), PermissionsError> {
        let mut decided = false;
        let (outcomes, changes) = self.store.write(|tables| {
            let mut outcomes = Vec::with_capacity(items.len());
            let mut changes = Vec::new();
            for item in items {
                if let Some(done) = tables.processed(cx.management_path, item.class, &item.id)? {
                    outcomes.push(done);
                    continue;
                }
                let outcome = match &item.request {
                    Err(outcome) => outcome.clone(),
                    Ok(request) => self.decide(tables, cx, &item.id, request, &mut changes)?,
                };
                tables.insert_processed(cx.management_path, item.class, &item.id, &outcome)?;
                outcomes.push(outcome);
                decided = true;
            }
            Ok((outcomes, changes))
        })?;
        self.announce(changes);
        Ok((outcomes, decided))
    }

    fn decide(
        &self,
        tables: &mut WriteTables<'_>,
        cx: &Context<'_>,
        id: &str,
        request: &Request,
        changes: &mut Vec<GrantChange>,
    ) -> Result<Outcome, PermissionsError> {
        match request {
            Request::Offer {
                realm_url,
                access,
                expires_ms,
                proposed_token,
            } => offer(
                tables,
                cx,
                id,
                realm_url,
                *access,
                *expires_ms,
                proposed_token.as_deref(),
            ),
            Request::Response { token } => self.response(tables, cx, token, changes),
            Request::Change {
                realm_url,
                user_id,
                read,
                write,
                manage,
            } => self.change(
                tables,
                cx,
                realm_url,
                user_id,
                [*read, *write, *manage],
                changes,
            ),
        }
    }

    fn response(
        &self,
        tables: &mut WriteTables<'_>,
        cx: &Context<'_>,
        token: &str,
        changes: &mut Vec<GrantChange>,
    ) -> Result<Outcome, PermissionsError> {
        if token.is_empty() {
            return Ok(fail(ErrorCode::MissingParameters, "'token' is required"));
        }
        let Some(offer) = tables.offer(token)? else {
            return Ok(fail(
                ErrorCode::InvalidParameters,
                "no permission offer has this token",
            ));
        };
        if offer.expires_ms <= cx.now_ms {
            return Ok(fail(
                ErrorCode::ExpiredPermissionOffer,
                "the permission offer has expired",
            ));
        }
        // The offerer must still be able to share the realm.
        let offerer = management_realm_owner(&offer.management_path).unwrap_or_default();
        let offerer_is_admin = self.is_admin(offerer)?;
        if !access(tables, offerer, offerer_is_admin, &offer.path)?.manage {
            return Ok(fail(
                ErrorCode::FileMayNotBeShared,
                format!("the offerer may no longer share '{}'", offer.path),
            ));
        }
        if !cx.owner_is_admin && owner_of(&offer.path) != Some(cx.owner) {
            let current = tables.grant(&offer.path, cx.owner)?;
            let granted = current.union(offer.access);
            if granted != current {
                tables.set_grant(&offer.path, cx.owner, granted)?;
                changes.push(GrantChange {
                    path: offer.path.clone(),
                    user: cx.owner.to_owned(),
                });
            }
        }
        tracing::info!(path = %offer.path, grantee = %cx.owner, offer = %offer.offer_id,
            "accepted a permission offer");
        Ok(ok(Some(offer.url)))
    }

    fn change(
        &self,
        tables: &mut WriteTables<'_>,
        cx: &Context<'_>,
        realm_url: &str,
        user_id: &str,
        levels: [Option<bool>; 3],
        changes: &mut Vec<GrantChange>,
    ) -> Result<Outcome, PermissionsError> {
        if realm_url.is_empty() {
            return Ok(fail(ErrorCode::MissingParameters, "'realmUrl' is required"));
        }
        if user_id.is_empty() {
            return Ok(fail(ErrorCode::MissingParameters, "'userId' is required"));
        }
        if user_id.len() > MAX_USER_ID {
            return Ok(fail(
                ErrorCode::InvalidParameters,
                format!("'userId' is longer than {MAX_USER_ID} bytes"),
            ));
        }
        let paths: BTreeSet<String> = if realm_url == "*" {
            let mut paths: BTreeSet<String> = (cx.owned_realms)(cx.owner)?.into_iter().collect();
            paths.extend(tables.managed_by_grant(cx.owner)?);
            paths.retain(|p| !is_unshareable(p));
            paths
        } else {
            let path = match parse_realm_url(realm_url, cx.owner) {
                Ok((path, _)) => path,
                Err(why) => return Ok(fail(ErrorCode::InvalidParameters, why)),
            };
            if let Some(refusal) = unshareable(tables, cx, &path)? {
                return Ok(refusal);
            }
            BTreeSet::from([path])
        };
        if user_id != EVERYONE && self.auth.user(user_id)?.is_none() {
            return Ok(fail(
                ErrorCode::UnknownAccount,
                format!("there is no user '{user_id}'"),
            ));
        }
        let [read, write, manage] = levels;
        for path in &paths {
            let users = if user_id == EVERYONE {
                let mut users = vec![EVERYONE.to_owned()];
                users.extend(tables.grantees(path)?.into_iter().filter(|u| u != EVERYONE));
                users
            } else {
                vec![user_id.to_owned()]
            };
            for user in users {
                if owner_of(path) == Some(user.as_str()) {
                    continue; // the owner always has every level
                }
                let old = tables.grant(path, &user)?;
                let new = Access {
                    read: read.unwrap_or(old.read),
                    write: write.unwrap_or(old.write),
                    manage: manage.unwrap_or(old.manage),
                };
                if new != old {
                    tables.set_grant(path, &user, new)?;
                    changes.push(GrantChange {
                        path: path.clone(),
                        user,
                    });
                }
            }
        }
        tracing::info!(by = %cx.owner, realms = paths.len(), user = %user_id,
            "changed permissions");
        Ok(ok(None))
    }
}

/// `703` if the management realm's owner may not share `path`: a management realm, or a realm
/// it may not manage.
fn unshareable(
    tables: &WriteTables<'_>,
    cx: &Context<'_>,
    path: &str,
) -> Result<Option<Outcome>, PermissionsError> {
    if is_unshareable(path) {
        return Ok(Some(fail(
            ErrorCode::FileMayNotBeShared,
            format!("'{path}' is a management realm, which may not be shared"),
        )));
    }
    if !access(tables, cx.owner, cx.owner_is_admin, path)?.manage {
        return Ok(Some(fail(
            ErrorCode::FileMayNotBeShared,
            format!("'{}' may not manage '{path}'", cx.owner),
        )));
    }
    Ok(None)
}

fn offer(
    tables: &mut WriteTables<'_>,
    cx: &Context<'_>,
    id: &str,
    realm_url: &str,
    offered: Access,
    expires_ms: Option<i64>,
    proposed_token: Option<&str>,
) -> Result<Outcome, PermissionsError> {
    if realm_url.is_empty() {
        return Ok(fail(ErrorCode::MissingParameters, "'realmUrl' is required"));
    }
    let (path, url) = match parse_realm_url(realm_url, cx.owner) {
        Ok(parsed) => parsed,
        Err(why) => return Ok(fail(ErrorCode::InvalidParameters, why)),
    };
    if let Some(refusal) = unshareable(tables, cx, &path)? {
        return Ok(refusal);
    }
    if offered.is_none() {
        return Ok(fail(
            ErrorCode::InvalidParameters,
            "an offer must grant at least one of mayRead, mayWrite and mayManage",
        ));
    }
    if expires_ms.is_some_and(|expires| expires <= cx.now_ms) {
        return Ok(fail(
            ErrorCode::ExpiredPermissionOffer,
            "'expiresAt' is already past",
        ));
    }
    let token = match proposed_token {
        Some(token) if !is_proposable_token(token) => {
            return Ok(fail(
                ErrorCode::InvalidParameters,
                format!(
                    "a proposed 'token' must be {MIN_PROPOSED_TOKEN} to {MAX_PROPOSED_TOKEN} \
                     characters of [A-Za-z0-9_-]; leave it null to get one"
                ),
            ))
        }
        Some(token) if tables.offer(token)?.is_some() => {
            return Ok(fail(
                ErrorCode::AmbiguousPermissionOfferToken,
                "another permission offer has this token",
            ))
        }
        Some(token) => token.to_owned(),
        None => loop {
            // 256 random bits never collide in practice; the check makes it certain.
            let token = new_token()?;
            if tables.offer(&token)?.is_none() {
                break token;
            }
        },
    };
    tables.insert_offer(
        &token,
        &OfferRow {
            management_path: cx.management_path.to_owned(),
            offer_id: id.to_owned(),
            path: path.clone(),
            url,
            access: offered,
            expires_ms: expires_ms.unwrap_or(i64::MAX),
        },
    )?;
    tracing::info!(%path, by = %cx.owner, offer = %id, "made a permission offer");
    Ok(ok(Some(token)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::sync::Arc;

    /// Users u1 (the owner of `/u1/...`) and u2, and their permissions.
    fn permissions(dir: &std::path::Path) -> Permissions {
        let store = Arc::new(Store::open(dir).unwrap());
        store.debug_user("u1").unwrap();
        store.debug_user("u2").unwrap();
        Permissions::open(dir, store, None).unwrap()
    }

    fn item(class: &'static str, id: &str, request: Request) -> Item {
        Item {
            class,
            id: id.into(),
            request: Ok(request),
        }
    }

    #[test]
    fn an_answered_object_gets_its_recorded_answer_and_nothing_is_decided_twice() {
        let dir = tempfile::tempdir().unwrap();
        let p = permissions(dir.path());
        let mut changes = p.subscribe();
        let none = |_: &str| Ok(Vec::new());
        let cx = |owner: &'static str, path: &'static str| Context {
            management_path: path,
            owner,
            owner_is_admin: false,
            now_ms: 1_000,
            owned_realms: &none,
        };
        let read = Access {
            read: true,
            ..Access::NONE
        };
        let offer = item(
            "PermissionOffer",
            "o1",
            Request::Offer {
                realm_url: "/~/r".into(),
                access: read,
                expires_ms: None,
                proposed_token: None,
            },
        );
        let owner = cx("u1", "/u1/__management");
        let (first, decided) = p
            .decide_batch(&owner, std::slice::from_ref(&offer))
            .unwrap();
        assert!(decided);
        let token = first[0].value.clone().unwrap();
        let (again, decided) = p.decide_batch(&owner, &[offer]).unwrap();
        assert!(!decided);
        assert_eq!(again, first, "the same token, not a second offer");

        let response = item(
            "PermissionOfferResponse",
            "r1",
            Request::Response {
                token: token.clone(),
            },
        );
        let grantee = cx("u2", "/u2/__management");
        let (answered, _) = p
            .decide_batch(&grantee, std::slice::from_ref(&response))
            .unwrap();
        assert_eq!(answered[0], ok(Some("/u1/r".into())));
        let (answered, decided) = p.decide_batch(&grantee, &[response]).unwrap();
        assert!(!decided);
        assert_eq!(answered[0].code, 0);
        assert_eq!(p.access("u2", "/u1/r").unwrap(), read);
        assert_eq!(
            changes.try_recv().unwrap(),
            GrantChange {
                path: "/u1/r".into(),
                user: "u2".into()
            }
        );
        assert!(changes.try_recv().is_err(), "one grant, announced once");

        // Expiry is checked against the clock of the batch.
        let expiring = item(
            "PermissionOffer",
            "o2",
            Request::Offer {
                realm_url: "/~/r".into(),
                access: read,
                expires_ms: Some(2_000),
                proposed_token: None,
            },
        );
        let (made, _) = p.decide_batch(&owner, &[expiring]).unwrap();
        let late = Context {
            now_ms: 2_000,
            ..cx("u2", "/u2/__management")
        };
        let response = item(
            "PermissionOfferResponse",
            "r2",
            Request::Response {
                token: made[0].value.clone().unwrap(),
            },
        );
        let (answered, _) = p.decide_batch(&late, &[response]).unwrap();
        assert_eq!(answered[0].code, ErrorCode::ExpiredPermissionOffer as i32);
    }

    #[test]
    fn realm_urls_resolve_tilde_and_keep_their_authority() {
        let ok = |url: &str| parse_realm_url(url, "u1").unwrap();
        assert_eq!(
            ok("realm://127.0.0.1:9080/~/tasks"),
            ("/u1/tasks".into(), "realm://127.0.0.1:9080/u1/tasks".into())
        );
        assert_eq!(
            ok("realms://h/u2/a/b"),
            ("/u2/a/b".into(), "realms://h/u2/a/b".into())
        );
        assert_eq!(ok("/~/x"), ("/u1/x".into(), "/u1/x".into()));
        assert_eq!(ok("realm://[::1]:9080/~/x").1, "realm://[::1]:9080/u1/x");
        let long = format!("realm://{}/~/x", "h".repeat(MAX_URL));
        assert!(parse_realm_url(&long, "u1").is_err());
        for bad in [
            "",
            "tasks",
            "http://h/~/x",
            "realm://h",
            "realm:///~/x",
            "realm://h/~/x?q",
            "realm://h/~/x#f",
            "realm://u@h/~/x",
            "realm://h h/~/x",
            "realm://h/~/x.realm",
            "realm://h/../x",
            "/",
        ] {
            assert!(parse_realm_url(bad, "u1").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn drawn_tokens_are_long_random_and_proposable() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), MIN_PROPOSED_TOKEN);
        assert!(is_proposable_token(&a));
        assert!(!is_proposable_token(&a[1..]));
        assert!(!is_proposable_token(&format!("{}+", &a[1..])));
        assert!(!is_proposable_token(&"a".repeat(MAX_PROPOSED_TOKEN + 1)));
    }
}
