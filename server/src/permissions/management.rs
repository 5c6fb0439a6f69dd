//! Management realms, seen from the server's copy: the requests not answered yet (objects
//! whose `statusCode` is null) are read out, decided (`rules.rs`) and answered by a write into
//! the copy itself. The sync service then logs that write like an upload (from the server's
//! own replica id), so every client of the management realm downloads the answers.
//!
//! The copy's schema comes from clients, so nothing about it is trusted: a class is answered
//! only if the server can write its answer (`id` a string primary key, `statusCode` a nullable
//! int, an offer's `token` and a response's `realmUrl` nullable strings); a property of the
//! wrong type makes that object's answer `601`; a missing one reads as null.

use std::collections::HashMap;

use shoal::protocol::auth::{PERMISSION_CHANGE, PERMISSION_OFFER, PERMISSION_OFFER_RESPONSE};
use shoal::{ErrorCode, Object, ObjectSchema, PropertyType, Realm, Timestamp, Value};

use super::rules::{fail, Context, Item, Request};
use super::store::Outcome;
use super::{management_realm_owner, perr, Access, Permissions, PermissionsError};
use crate::config::AbortPoint;

/// Objects answered per transaction.
const BATCH: usize = 256;

/// How the server writes its answers into one class of a management realm.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// `statusMessage` is a nullable string.
    message: bool,
    /// `updatedAt` is a timestamp.
    updated_at: bool,
    /// The property the answer's value goes to: an offer's `token`, a response's `realmUrl`.
    value: Option<&'static str>,
}

/// Whether `property` of `class` is a single (not list) value of `ty`, nullable if asked.
fn is(class: &ObjectSchema, property: &str, ty: PropertyType, nullable: bool) -> bool {
    class
        .property(property)
        .is_some_and(|p| p.ty == ty && !p.is_list() && (!nullable || p.is_nullable()))
}

/// The shape of a management class, if the server can answer its objects.
fn shape(class: &ObjectSchema, value: Option<&'static str>) -> Option<Shape> {
    let answerable = class.primary_key.as_deref() == Some("id")
        && is(class, "id", PropertyType::String, false)
        && is(class, "statusCode", PropertyType::Int, true)
        && value.is_none_or(|v| is(class, v, PropertyType::String, true));
    answerable.then(|| Shape {
        message: is(class, "statusMessage", PropertyType::String, true),
        updated_at: is(class, "updatedAt", PropertyType::Timestamp, false),
        value,
    })
}

/// Reads one property of an object of `class` as `ty`: `None` when the class has no such
/// property or it is null, a `601` answer when it is of another type.
fn read(
    object: &Object,
    class: &ObjectSchema,
    property: &str,
    ty: PropertyType,
) -> Result<Option<Value>, Outcome> {
    let Some(declared) = class.property(property) else {
        return Ok(None);
    };
    if declared.ty != ty || declared.is_list() {
        return Err(fail(
            ErrorCode::InvalidParameters,
            format!("'{property}' must be a single {ty:?} property"),
        ));
    }
    match object.get(property) {
        Ok(Value::Null) => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(e) => Err(fail(
            ErrorCode::InvalidParameters,
            format!("'{property}' cannot be read: {}", e.message()),
        )),
    }
}

fn string(object: &Object, class: &ObjectSchema, property: &str) -> Result<String, Outcome> {
    Ok(match read(object, class, property, PropertyType::String)? {
        Some(Value::String(s)) => s,
        _ => String::new(),
    })
}

fn optional_string(
    object: &Object,
    class: &ObjectSchema,
    property: &str,
) -> Result<Option<String>, Outcome> {
    Ok(match read(object, class, property, PropertyType::String)? {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

fn boolean(object: &Object, class: &ObjectSchema, property: &str) -> Result<Option<bool>, Outcome> {
    Ok(match read(object, class, property, PropertyType::Bool)? {
        Some(Value::Bool(b)) => Some(b),
        _ => None,
    })
}

/// A timestamp in unix milliseconds (saturating).
fn millis(t: Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// The request an object of `class` makes.
fn request(object: &Object, class: &ObjectSchema) -> Result<Request, Outcome> {
    match class.name.as_str() {
        PERMISSION_OFFER => {
            let expires = read(object, class, "expiresAt", PropertyType::Timestamp)?;
            Ok(Request::Offer {
                realm_url: string(object, class, "realmUrl")?,
                access: Access {
                    read: boolean(object, class, "mayRead")?.unwrap_or(false),
                    write: boolean(object, class, "mayWrite")?.unwrap_or(false),
                    manage: boolean(object, class, "mayManage")?.unwrap_or(false),
                },
                expires_ms: match expires {
                    Some(Value::Timestamp(t)) => Some(millis(t)),
                    _ => None,
                },
                proposed_token: optional_string(object, class, "token")?,
            })
        }
        PERMISSION_OFFER_RESPONSE => Ok(Request::Response {
            token: string(object, class, "token")?,
        }),
        _ => Ok(Request::Change {
            realm_url: string(object, class, "realmUrl")?,
            user_id: string(object, class, "userId")?,
            read: boolean(object, class, "mayRead")?,
            write: boolean(object, class, "mayWrite")?,
            manage: boolean(object, class, "mayManage")?,
        }),
    }
}

/// Up to `limit` objects not answered yet (`statusCode` null), offers first, then responses,
/// then changes; and the shapes of their classes.
fn pending(
    realm: &Realm,
    limit: usize,
) -> Result<(Vec<Item>, HashMap<&'static str, Shape>), PermissionsError> {
    realm.refresh().map_err(perr)?;
    let schema = realm.schema().map_err(perr)?;
    let mut items = Vec::new();
    let mut shapes = HashMap::new();
    for (name, value) in [
        (PERMISSION_OFFER, Some("token")),
        (PERMISSION_OFFER_RESPONSE, Some("realmUrl")),
        (PERMISSION_CHANGE, None),
    ] {
        let Some(class) = schema.class(name) else {
            continue;
        };
        let Some(class_shape) = shape(class, value) else {
            tracing::warn!(
                class = name,
                "a management realm class the server cannot answer"
            );
            continue;
        };
        shapes.insert(name, class_shape);
        let results = realm.query(name, "statusCode == nil", &[]).map_err(perr)?;
        let count = results.count().map_err(perr)?;
        for i in 0..count {
            if items.len() >= limit {
                return Ok((items, shapes));
            }
            let object = results.get(i).map_err(perr)?;
            let Ok(Value::String(id)) = object.get("id") else {
                continue;
            };
            items.push(Item {
                class: name,
                id,
                request: request(&object, class),
            });
        }
    }
    Ok((items, shapes))
}

/// Writes the answers into the objects, in one write transaction of the copy.
fn write_back(
    realm: &Realm,
    shapes: &HashMap<&'static str, Shape>,
    items: &[Item],
    outcomes: &[Outcome],
    now: Timestamp,
) -> Result<(), PermissionsError> {
    realm.begin_write().map_err(perr)?;
    let written = (|| {
        for (item, outcome) in items.iter().zip(outcomes) {
            let Some(shape) = shapes.get(item.class) else {
                continue;
            };
            let Some(object) = realm.find_object(item.class, &Value::String(item.id.clone()))?
            else {
                continue;
            };
            object.set("statusCode", Value::Int(i64::from(outcome.code)))?;
            if shape.message {
                let message = outcome.message.clone().map_or(Value::Null, Value::String);
                object.set("statusMessage", message)?;
            }
            if let Some(property) = shape.value {
                // On failure an offer's proposed token is cleared: the token is the offer's
                // only once it succeeded.
                let value = outcome.value.clone().map_or(Value::Null, Value::String);
                object.set(property, value)?;
            }
            if shape.updated_at {
                object.set("updatedAt", Value::Timestamp(now))?;
            }
        }
        Ok::<(), shoal::Error>(())
    })();
    match written {
        Ok(()) => realm.commit().map_err(perr),
        Err(e) => {
            let _ = realm.cancel_write();
            Err(perr(e))
        }
    }
}

impl Permissions {
    /// Answers every request of the management realm at `path` that is not answered yet, in
    /// batches: each batch is decided and recorded in one transaction of the permission store,
    /// then written back into `realm` (the server's copy) in one write transaction. An object
    /// answered before (a crash after the record, before the write-back) gets its recorded
    /// answer. `owned_realms(user)` lists the realm paths under `/<user>/` (for `realmUrl`
    /// `*`). Returns whether it wrote into `realm`. Blocks (redb I/O).
    ///
    /// # Errors
    /// A storage failure; what was recorded stays recorded and is written back next time.
    pub fn process_management_realm(
        &self,
        realm: &Realm,
        path: &str,
        owned_realms: &dyn Fn(&str) -> Result<Vec<String>, PermissionsError>,
    ) -> Result<bool, PermissionsError> {
        let Some(owner) = management_realm_owner(path) else {
            return Ok(false);
        };
        let owner_is_admin = self.is_admin(owner)?;
        let mut wrote = false;
        loop {
            let (items, shapes) = pending(realm, BATCH)?;
            if items.is_empty() {
                break;
            }
            let now = Timestamp::now();
            let cx = Context {
                management_path: path,
                owner,
                owner_is_admin,
                now_ms: millis(now),
                owned_realms,
            };
            let (outcomes, decided) = self.decide_batch(&cx, &items)?;
            if decided {
                self.abort_if_at(AbortPoint::PermissionsRecorded);
            }
            write_back(realm, &shapes, &items, &outcomes, now)?;
            self.abort_if_at(AbortPoint::AnswersWritten);
            wrote = true;
            if items.len() < BATCH {
                break;
            }
        }
        Ok(wrote)
    }
}
