//! The management realm: a user's synced realm at `/~/__management` through which it shares
//! realms with other users (Realm Object Server's permission module). The application writes
//! [`PermissionOffer`](MANAGEMENT_CLASSES), `PermissionOfferResponse` and `PermissionChange`
//! objects into it as ordinary objects; `shoal-server` processes them as they sync and writes
//! its answer (`statusCode`, `statusMessage`, an offer's `token`, a response's `realmUrl`)
//! back into the same objects, which sync down. The helpers here only fill in the fields a
//! new object needs (a random `id`, both timestamps).

use super::session::SyncConfig;
use crate::config::Config;
use crate::db::Realm;
use crate::error::{Error, Result};
use crate::object::Object;
use crate::schema::{PropertyFlags, Schema};
use crate::user::User;
use crate::value::{PropertyType, Timestamp, Value};

pub use crate::protocol::auth::GrantedPermission;

/// The server path of every user's management realm (`~` is the user's identity).
pub const MANAGEMENT_REALM_PATH: &str = "/~/__management";

/// The classes of the management realm, as the reference named them.
pub const MANAGEMENT_CLASSES: [&str; 3] = [
    "PermissionOffer",
    "PermissionOfferResponse",
    "PermissionChange",
];

/// The management realm's schema: exactly the reference's `PermissionModule`.
///
/// - `PermissionOffer`: `id` (string primary key), `createdAt`, `updatedAt` (timestamps),
///   `statusCode` (int?: null = not processed yet, 0 = done, else an error code),
///   `statusMessage` (string?), `token` (string?, indexed; set by the server), `realmUrl`
///   (string), `mayRead`, `mayWrite`, `mayManage` (bool), `expiresAt` (timestamp?, null =
///   never);
/// - `PermissionOfferResponse`: the base fields, `token` (string), `realmUrl` (string?; set by
///   the server);
/// - `PermissionChange`: the base fields, `realmUrl` (string, `*` = every realm the user
///   manages), `userId` (string, `*` = every user), `mayRead`, `mayWrite`, `mayManage`
///   (bool?: null keeps the current value).
pub fn management_schema() -> Schema {
    use PropertyType::{Bool, Int, String as Text, Timestamp as Time};
    const REQUIRED: PropertyFlags = PropertyFlags::NONE;
    const NULLABLE: PropertyFlags = PropertyFlags::NULLABLE;
    let mut schema = Schema::new();
    let mut add = |class: &str, props: &[(&str, PropertyType, PropertyFlags)]| {
        let base = [
            ("id", Text, REQUIRED),
            ("createdAt", Time, REQUIRED),
            ("updatedAt", Time, REQUIRED),
            ("statusCode", Int, NULLABLE),
            ("statusMessage", Text, NULLABLE),
        ];
        let built = schema.add_class(class, Some("id")).and_then(|()| {
            for (name, ty, flags) in base.iter().chain(props) {
                schema.add_property(class, name, *ty, *flags, None)?;
            }
            Ok(())
        });
        built.expect("the management schema is valid");
    };
    let indexed_nullable =
        PropertyFlags::from_bits(NULLABLE.bits() | PropertyFlags::INDEXED.bits())
            .expect("known flags");
    add(
        "PermissionOffer",
        &[
            ("token", Text, indexed_nullable),
            ("realmUrl", Text, REQUIRED),
            ("mayRead", Bool, REQUIRED),
            ("mayWrite", Bool, REQUIRED),
            ("mayManage", Bool, REQUIRED),
            ("expiresAt", Time, NULLABLE),
        ],
    );
    add(
        "PermissionOfferResponse",
        &[("token", Text, REQUIRED), ("realmUrl", Text, NULLABLE)],
    );
    add(
        "PermissionChange",
        &[
            ("realmUrl", Text, REQUIRED),
            ("userId", Text, REQUIRED),
            ("mayRead", Bool, NULLABLE),
            ("mayWrite", Bool, NULLABLE),
            ("mayManage", Bool, NULLABLE),
        ],
    );
    schema
}

/// Access to a realm: read, write (implies nothing else), manage (share it with others).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// May open and download the realm.
    pub read: bool,
    /// May upload changes.
    pub write: bool,
    /// May grant access to others (offers, permission changes).
    pub manage: bool,
}

impl User {
    /// The configuration of this user's management realm (built once per user, then
    /// cloned): `/~/__management` on the sync server beside the user's auth server
    /// (`realm://` for an `http` auth URL, `realms://` for `https`, same host and port), the
    /// [`management_schema`], and an error handler that logs.
    ///
    /// # Errors
    /// `InvalidArgument` if the user is logged out (as for any synced configuration).
    pub fn management_realm_config(&self) -> Result<Config> {
        let mut cached = self.state.management.lock();
        if let Some(config) = cached.as_ref() {
            return Ok(config.clone());
        }
        let url = format!(
            "{}{MANAGEMENT_REALM_PATH}",
            self.state.data.lock().auth_url.sync_origin()
        );
        let mut sync = SyncConfig::new(self, &url)?;
        let identity = self.identity().to_owned();
        sync.set_error_handler(move |_, error| {
            tracing::error!(identity = %identity, code = error.code, message = %error.message,
                "unexpected error with the management realm");
        });
        let mut config = Config::new("");
        config.set_schema(management_schema())?.set_sync(sync);
        *cached = Some(config.clone());
        Ok(config)
    }

    /// Opens (creating if needed) this user's management realm: see
    /// [`management_realm_config`](Self::management_realm_config). Write
    /// [`PermissionOffer`](create_offer), [`PermissionOfferResponse`](create_offer_response)
    /// and [`PermissionChange`](create_permission_change) objects into it to share realms.
    ///
    /// # Errors
    /// As [`Realm::open`] for a synced realm.
    pub fn open_management_realm(&self) -> Result<Realm> {
        Realm::open(&self.management_realm_config()?)
    }
}

/// Creates a `PermissionOffer` (inside the open write transaction of the management realm):
/// offers `access` to the realm at `realm_url` (a full `realm://` URL or a path, `~` for the
/// offering user) to whoever responds with its token, until `expires_at` (`None`: never).
/// Once synced, the server sets `token` and `statusCode` (0, or 703 when the user may not
/// share that realm).
///
/// # Errors
/// `InvalidArgument` for an empty `realm_url`; `NotInWriteTransaction`; `NoSuchClass` if
/// `realm` is not a management realm.
pub fn create_offer(
    realm: &Realm,
    realm_url: &str,
    access: Access,
    expires_at: Option<Timestamp>,
) -> Result<Object> {
    require("realm URL", realm_url)?;
    let offer = create_base(realm, "PermissionOffer")?;
    offer.set("realmUrl", realm_url)?;
    offer.set("mayRead", access.read)?;
    offer.set("mayWrite", access.write)?;
    offer.set("mayManage", access.manage)?;
    offer.set("expiresAt", expires_at.map_or(Value::Null, Value::from))?;
    Ok(offer)
}

/// Creates a `PermissionOfferResponse` accepting the offer with this `token` (inside the open
/// write transaction of the responding user's management realm). Once synced, the server
/// grants the offered access and sets `realmUrl` and `statusCode` (0; 701 for an expired
/// offer, 702 for a token of several offers, or another code with `statusMessage`).
///
/// # Errors
/// `InvalidArgument` for an empty token; as [`create_offer`].
pub fn create_offer_response(realm: &Realm, token: &str) -> Result<Object> {
    require("token", token)?;
    let response = create_base(realm, "PermissionOfferResponse")?;
    response.set("token", token)?;
    Ok(response)
}

/// Creates a `PermissionChange` (inside the open write transaction of the management realm):
/// sets the access of `user_id` (`*`: every user) to `realm_url` (`*`: every realm the
/// writer manages). A `None` level keeps the current one. The server applies it if the
/// writer may manage the realm and sets `statusCode`.
///
/// # Errors
/// `InvalidArgument` for an empty URL or user id; as [`create_offer`].
pub fn create_permission_change(
    realm: &Realm,
    realm_url: &str,
    user_id: &str,
    read: Option<bool>,
    write: Option<bool>,
    manage: Option<bool>,
) -> Result<Object> {
    require("realm URL", realm_url)?;
    require("user id", user_id)?;
    let change = create_base(realm, "PermissionChange")?;
    change.set("realmUrl", realm_url)?;
    change.set("userId", user_id)?;
    let level = |v: Option<bool>| v.map_or(Value::Null, Value::from);
    change.set("mayRead", level(read))?;
    change.set("mayWrite", level(write))?;
    change.set("mayManage", level(manage))?;
    Ok(change)
}

fn require(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("the {what} must not be empty")));
    }
    Ok(())
}

/// A new object of a management class with a random UUID `id` and both timestamps now.
fn create_base(realm: &Realm, class: &str) -> Result<Object> {
    let id = Value::from(random_uuid());
    let object = realm.create_object(class, Some(&id))?;
    let now = Timestamp::now();
    object.set("createdAt", now)?;
    object.set("updatedAt", now)?;
    Ok(object)
}

/// A random (version 4) UUID in its canonical text form.
fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&crate::util::random_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&crate::util::random_u64().to_le_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_the_reference_permission_module() {
        let schema = management_schema();
        schema.validate().unwrap();
        let names: Vec<&str> = schema.classes().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, MANAGEMENT_CLASSES);
        let offer = schema.class("PermissionOffer").unwrap();
        assert_eq!(offer.primary_key.as_deref(), Some("id"));
        let token = offer.property("token").unwrap();
        assert!(token.is_nullable() && token.is_indexed());
        assert!(!offer.property("realmUrl").unwrap().is_nullable());
        assert!(offer.property("expiresAt").unwrap().is_nullable());
        let response = schema.class("PermissionOfferResponse").unwrap();
        assert!(!response.property("token").unwrap().is_nullable());
        assert!(response.property("realmUrl").unwrap().is_nullable());
        let change = schema.class("PermissionChange").unwrap();
        for p in ["mayRead", "mayWrite", "mayManage"] {
            assert!(change.property(p).unwrap().is_nullable(), "{p}");
            assert!(!offer.property(p).unwrap().is_nullable(), "{p}");
        }
        assert!(change.property("statusCode").unwrap().is_nullable());
    }

    #[test]
    fn uuids_are_random_version_4() {
        let a = random_uuid();
        let b = random_uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
