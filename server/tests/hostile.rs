//! A property test against the real `shoal-server` binary: a hostile client with upload access
//! to a user's realm sends random and mutated changesets (bytes flipped, cut and spliced,
//! other clients' changesets replayed or adopted under its own replica id, instructions made
//! up from a vocabulary of right and wrong names, types and values, wrong client versions and
//! stamps), interleaved with the normal writes of an honest device of the user. Whatever the
//! server accepts or refuses, afterwards the honest device's realm uploads and downloads,
//! dumps, has a valid schema and reopens; a new device downloading the realm gets the same
//! content; and, once the server is stopped, its copy of every realm is the same too.
//!
//! Every case is a new realm path on one server. `SHOAL_HOSTILE_CASES` sets the number of
//! cases (default 24, about 20 s in a debug build), `SHOAL_HOSTILE_SHRINK` how many shrinking
//! steps a failure gets (default 0: each runs a case against the server).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sync_client::*;
use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use shoal::protocol::sync::UploadChangeset;
use shoal::{
    encode_changeset, App, ChangeValue, Changeset, Config, Credentials, GlobalId, Instruction,
    OrderKey, PropertyFlags as F, PropertyType as T, Realm, Schema, SyncConfig, Timestamp, Value,
};

const WAIT: Duration = Duration::from_secs(15);
const USER: &str = "honest";
const PASSWORD: &str = "pw";

/// The honest schema: a class with a primary key, a string list and a link, and one without.
fn honest_schema() -> Schema {
    let mut s = Schema::new();
    s.add_class("Task", Some("id")).unwrap();
    s.add_property("Task", "id", T::Int, F::NONE, None).unwrap();
    s.add_property("Task", "title", T::String, F::NONE, None)
        .unwrap();
    s.add_property("Task", "done", T::Int, F::NONE, None)
        .unwrap();
    s.add_property("Task", "tags", T::String, F::LIST, None)
        .unwrap();
    s.add_property("Task", "parent", T::Link, F::NULLABLE, Some("Task"))
        .unwrap();
    s.add_class("Tag", None).unwrap();
    s.add_property("Tag", "name", T::String, F::NONE, None)
        .unwrap();
    s
}

/// A write of the honest device.
#[derive(Debug, Clone)]
enum HonestOp {
    Upsert { id: i64, title: String },
    Done { id: i64, by: i64 },
    Delete { id: i64 },
    Tag { id: i64, tag: String },
    Untag { id: i64 },
    Parent { id: i64, to: Option<i64> },
    NewTag { name: String },
}

/// How a hostile changeset is numbered in its UPLOAD.
#[derive(Debug, Clone)]
enum Version {
    Next,
    Same,
    Jump(u64),
    Max,
}

/// How its stamp is chosen (the header and the UPLOAD's `stamp` field).
#[derive(Debug, Clone)]
enum Stamp {
    Fresh,
    Zero,
    Huge,
    Stale,
    Mismatch,
}

/// A change to bytes the hostile client was sent.
#[derive(Debug, Clone)]
enum Mutation {
    /// Sent again, as it is (another client's replica id).
    Replay,
    /// Re-stamped as the hostile client's own (its replica id, a fresh stamp).
    Adopt,
    /// Re-stamped with a fresh stamp, keeping the replica id of the client that made it.
    Impersonate,
    Flip {
        at: usize,
        xor: u8,
    },
    AdoptAndFlip {
        at: usize,
        xor: u8,
    },
    Truncate {
        at: usize,
    },
    Splice {
        other: usize,
        at: usize,
        from: usize,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Honest(HonestOp),
    Mutated {
        source: usize,
        mutation: Mutation,
        version: Version,
    },
    Made {
        instructions: Vec<Instruction>,
        version: Version,
        stamp: Stamp,
    },
}

fn class_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("Task".to_owned()),
        2 => Just("Tag".to_owned()),
        2 => Just("Note".to_owned()),
        1 => Just(String::new()),
        1 => Just("__gid".to_owned()),
        1 => Just("task".to_owned()),
    ]
}

fn prop_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_owned()),
        Just("title".to_owned()),
        Just("done".to_owned()),
        Just("tags".to_owned()),
        Just("parent".to_owned()),
        Just("name".to_owned()),
        Just("extra".to_owned()),
        Just(String::new()),
        Just("__x".to_owned()),
    ]
}

fn global_id() -> impl Strategy<Value = GlobalId> {
    prop_oneof![
        4 => (-1i64..6).prop_map(GlobalId::Int),
        1 => Just(GlobalId::String("a".into())),
        1 => (any::<u64>(), 0u64..4).prop_map(|(file, seq)| GlobalId::Generated { file, seq }),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::Int),
        1 => any::<f32>().prop_map(Value::Float),
        1 => any::<f64>().prop_map(Value::Double),
        1 => "[a-z]{0,8}".prop_map(Value::String),
        1 => (0usize..300_000).prop_map(|n| Value::String("x".repeat(n))),
        1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Binary),
        1 => (any::<i64>(), any::<i32>()).prop_map(|(s, n)| Value::Timestamp(Timestamp {
            seconds: s,
            nanos: n
        })),
    ]
}

fn change_value() -> impl Strategy<Value = ChangeValue> {
    prop_oneof![
        3 => value().prop_map(ChangeValue::Value),
        1 => global_id().prop_map(ChangeValue::Link),
    ]
}

fn property_type() -> impl Strategy<Value = T> {
    prop_oneof![
        Just(T::Bool),
        Just(T::Int),
        Just(T::Float),
        Just(T::Double),
        Just(T::String),
        Just(T::Binary),
        Just(T::Timestamp),
        Just(T::Link),
    ]
}

fn flags() -> impl Strategy<Value = F> {
    (0u32..8).prop_map(|bits| F::from_bits(bits).unwrap())
}

fn order_key() -> impl Strategy<Value = Option<OrderKey>> {
    proptest::option::of((any::<u64>(), any::<u64>(), 0u32..4).prop_map(
        |(stamp, origin, index)| OrderKey {
            stamp,
            origin,
            index,
        },
    ))
}

/// An object's class, id and property.
fn object() -> impl Strategy<Value = (String, GlobalId, String)> {
    (class_name(), global_id(), prop_name())
}

fn instruction() -> impl Strategy<Value = Instruction> {
    prop_oneof![
        1 => class_name().prop_map(|name| Instruction::AddClass { name }),
        1 => (
            class_name(),
            prop_name(),
            property_type(),
            flags(),
            proptest::option::of(class_name())
        )
            .prop_map(|(class, name, ty, flags, target)| Instruction::AddProperty {
                class,
                name,
                ty,
                flags,
                target
            }),
        1 => (class_name(), proptest::option::of(prop_name()))
            .prop_map(|(class, prop)| Instruction::SetPrimaryKey { class, prop }),
        1 => class_name().prop_map(|class| Instruction::EraseClass { class }),
        1 => (class_name(), prop_name())
            .prop_map(|(class, name)| Instruction::EraseProperty { class, name }),
        1 => (class_name(), prop_name(), flags())
            .prop_map(|(class, name, flags)| Instruction::SetPropertyFlags { class, name, flags }),
        3 => (class_name(), global_id())
            .prop_map(|(class, id)| Instruction::CreateObject { class, id }),
        1 => (class_name(), global_id()).prop_map(|(class, id)| Instruction::EraseObject { class, id }),
        4 => (object(), change_value()).prop_map(|((class, id, prop), value)| {
            Instruction::Set {
                class,
                id,
                prop,
                value,
            }
        }),
        1 => (object(), any::<i64>()).prop_map(|((class, id, prop), delta)| {
            Instruction::AddInt {
                class,
                id,
                prop,
                delta,
            }
        }),
        1 => (object(), 0u64..3, change_value()).prop_map(|((class, id, prop), index, value)| {
            Instruction::ListInsert {
                class,
                id,
                prop,
                index,
                value,
            }
        }),
        1 => (object(), 0u64..3).prop_map(|((class, id, prop), index)| {
            Instruction::ListErase {
                class,
                id,
                prop,
                index,
            }
        }),
        1 => object().prop_map(|(class, id, prop)| Instruction::ListClear { class, id, prop }),
        2 => (object(), order_key(), change_value()).prop_map(
            |((class, id, prop), after, value)| Instruction::ListInsertAfter {
                class,
                id,
                prop,
                after,
                value,
            }
        ),
        1 => (object(), order_key()).prop_filter_map("an element", |((class, id, prop), e)| {
            e.map(|element| Instruction::ListEraseElement {
                class,
                id,
                prop,
                element,
            })
        }),
        1 => (object(), order_key(), change_value()).prop_filter_map(
            "an element",
            |((class, id, prop), e, value)| e.map(|element| Instruction::ListSetElement {
                class,
                id,
                prop,
                element,
                value,
            })
        ),
    ]
}

fn honest_op() -> impl Strategy<Value = HonestOp> {
    prop_oneof![
        3 => (0i64..6, "[a-z]{1,6}").prop_map(|(id, title)| HonestOp::Upsert { id, title }),
        1 => (0i64..6, -3i64..4).prop_map(|(id, by)| HonestOp::Done { id, by }),
        1 => (0i64..6).prop_map(|id| HonestOp::Delete { id }),
        1 => (0i64..6, "[a-z]{1,4}").prop_map(|(id, tag)| HonestOp::Tag { id, tag }),
        1 => (0i64..6).prop_map(|id| HonestOp::Untag { id }),
        1 => (0i64..6, proptest::option::of(0i64..6))
            .prop_map(|(id, to)| HonestOp::Parent { id, to }),
        1 => "[a-z]{1,4}".prop_map(|name| HonestOp::NewTag { name }),
    ]
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![
        8 => Just(Version::Next),
        1 => Just(Version::Same),
        1 => (2u64..1000).prop_map(Version::Jump),
        1 => Just(Version::Max),
    ]
}

fn stamp() -> impl Strategy<Value = Stamp> {
    prop_oneof![
        10 => Just(Stamp::Fresh),
        1 => Just(Stamp::Zero),
        1 => Just(Stamp::Huge),
        1 => Just(Stamp::Stale),
        1 => Just(Stamp::Mismatch),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::Replay),
        3 => Just(Mutation::Adopt),
        2 => Just(Mutation::Impersonate),
        1 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        3 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::AdoptAndFlip { at, xor }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(other, at, from)| Mutation::Splice { other, at, from }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => honest_op().prop_map(Step::Honest),
        3 => (any::<usize>(), mutation(), version()).prop_map(|(source, mutation, version)| {
            Step::Mutated {
                source,
                mutation,
                version,
            }
        }),
        4 => (proptest::collection::vec(instruction(), 1..5), version(), stamp()).prop_map(
            |(instructions, version, stamp)| Step::Made {
                instructions,
                version,
                stamp,
            }
        ),
    ]
}

/// The honest side: a device (app, user) writing, and a second one downloading each realm.
struct Honest {
    server: TestServer,
    device: App,
    user: shoal::User,
    fresh: App,
    fresh_user: shoal::User,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    /// The hostile client's access to the user's realms (the user's refresh token).
    refresh: String,
    /// Realm paths used so far (each case's path is numbered on the server in this order).
    paths: u64,
    /// The realms done: (realm number on the server, content).
    done: Vec<(u64, String)>,
    /// How the hostile uploads were answered: accepted, and refused per code.
    answers: std::collections::BTreeMap<String, usize>,
}

fn synced(user: &shoal::User, url: &str, errors: &Arc<Mutex<Vec<String>>>) -> Config {
    let mut sync = SyncConfig::new(user, url).unwrap();
    let seen = errors.clone();
    sync.set_error_handler(move |_, e| {
        seen.lock()
            .unwrap()
            .push(format!("{} (fatal: {}): {}", e.code, e.is_fatal, e.message))
    });
    let mut config = Config::new("unused");
    config.set_schema(honest_schema()).unwrap();
    config.set_sync(sync);
    config
}

fn honest_write(realm: &Realm, op: &HonestOp) {
    realm.refresh().unwrap();
    realm.begin_write().unwrap();
    let task = |id: i64| realm.find_object("Task", &Value::Int(id)).unwrap();
    // A delete of the server's (deletes win for good) leaves a key that cannot come back.
    let result = (|| -> shoal::Result<()> {
        match op {
            HonestOp::Upsert { id, title } => {
                let t = match task(*id) {
                    Some(t) => t,
                    None => realm.create_object("Task", Some(&Value::Int(*id)))?,
                };
                t.set("title", title.as_str())?;
            }
            HonestOp::Done { id, by } => {
                if let Some(t) = task(*id) {
                    t.add_int("done", *by)?;
                }
            }
            HonestOp::Delete { id } => {
                if let Some(t) = task(*id) {
                    t.delete()?;
                }
            }
            HonestOp::Tag { id, tag } => {
                if let Some(t) = task(*id) {
                    t.list("tags")?.push(tag.as_str())?;
                }
            }
            HonestOp::Untag { id } => {
                if let Some(t) = task(*id) {
                    let tags = t.list("tags")?;
                    if !tags.is_empty()? {
                        tags.erase(0)?;
                    }
                }
            }
            HonestOp::Parent { id, to } => {
                if let Some(t) = task(*id) {
                    match to.and_then(task) {
                        Some(p) => t.set("parent", p.link())?,
                        None => t.set("parent", Value::Null)?,
                    }
                }
            }
            HonestOp::NewTag { name } => {
                realm
                    .create_object("Tag", None)?
                    .set("name", name.as_str())?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => realm.commit().unwrap(),
        Err(e) if e.code() == shoal::ErrorCode::DuplicatePrimaryKey => {
            realm.cancel_write().unwrap()
        }
        Err(e) => panic!("honest write {op:?}: {e}"),
    }
}

/// The hostile changeset of a step, as its UPLOAD entry.
fn hostile_entry(hostile: &mut Hostile, step: &Step) -> Option<UploadChangeset> {
    let (data, version, stamp_field) = match step {
        Step::Honest(_) => return None,
        Step::Mutated {
            source,
            mutation,
            version,
        } => {
            if hostile.material.is_empty() {
                return None;
            }
            let n = hostile.material.len();
            let original = hostile.material[source % n].clone();
            let restamp = |hostile: &mut Hostile, bytes: &[u8], own: bool| -> Option<Vec<u8>> {
                let mut changeset = shoal::decode_changeset_full(bytes).ok()?;
                hostile.stamp = (now_ms() << 16).max(hostile.stamp + 1);
                changeset.stamp = hostile.stamp;
                if own {
                    changeset.origin = hostile.origin;
                }
                Some(encode_changeset(&changeset))
            };
            let data = match mutation {
                Mutation::Replay => original,
                Mutation::Adopt => restamp(hostile, &original, true)?,
                Mutation::Impersonate => restamp(hostile, &original, false)?,
                Mutation::Flip { at, xor } => {
                    let mut d = original;
                    let i = at % d.len();
                    d[i] ^= xor;
                    d
                }
                Mutation::AdoptAndFlip { at, xor } => {
                    let mut d = restamp(hostile, &original, true)?;
                    // Past the header: the instructions.
                    let body = d.len().saturating_sub(18).max(1);
                    let i = (18 + at % body).min(d.len() - 1);
                    d[i] ^= xor;
                    d
                }
                Mutation::Truncate { at } => original[..at % original.len()].to_vec(),
                Mutation::Splice { other, at, from } => {
                    let other = &hostile.material[other % n];
                    let mut d = original[..at % original.len()].to_vec();
                    d.extend_from_slice(&other[from % other.len()..]);
                    d
                }
            };
            let stamp = shoal::changeset_header(&data).map_or(1, |(s, _)| s);
            (data, version.clone(), stamp)
        }
        Step::Made {
            instructions,
            version,
            stamp,
        } => {
            let fresh = (now_ms() << 16).max(hostile.stamp + 1);
            let header = match stamp {
                Stamp::Fresh | Stamp::Mismatch => fresh,
                Stamp::Zero => 0,
                Stamp::Huge => u64::MAX - 1,
                Stamp::Stale => hostile.stamp,
            };
            if matches!(stamp, Stamp::Fresh | Stamp::Mismatch) {
                hostile.stamp = fresh;
            }
            let data = encode_changeset(&Changeset {
                stamp: header,
                origin: hostile.origin,
                instructions: instructions.clone(),
            });
            let field = if matches!(stamp, Stamp::Mismatch) {
                header + 1
            } else {
                header
            };
            (data, version.clone(), field)
        }
    };
    let client_version = match version {
        Version::Next => hostile.acked + 1,
        Version::Same => hostile.acked.max(1),
        Version::Jump(by) => hostile.acked + by,
        Version::Max => u64::MAX,
    };
    Some(UploadChangeset {
        client_version,
        stamp: stamp_field,
        data,
    })
}

/// One case: a new realm, the steps, then the checks.
fn run_case(
    honest: &mut Honest,
    runtime: &tokio::runtime::Runtime,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    honest.paths += 1;
    let number = honest.paths;
    let name = format!("case{number}");
    let url = format!("realm://{}/~/{name}", honest.server.addr);
    let errors = Arc::new(Mutex::new(Vec::new()));
    let config = synced(&honest.user, &url, &errors);
    let realm = Realm::open(&config).unwrap();
    let session = realm.session().unwrap();
    honest_write(
        &realm,
        &HonestOp::Upsert {
            id: 1,
            title: "first".into(),
        },
    );
    honest_write(&realm, &HonestOp::NewTag { name: "t".into() });
    session.wait_for_upload(WAIT).unwrap();
    let path = format!("/{}/{name}", honest.user.identity());
    let token = {
        let (status, body) = honest.server.access(&honest.refresh, &path);
        assert_eq!(status, 200, "{body}");
        body["access_token"]["token"].as_str().unwrap().to_owned()
    };
    let mut outcomes = Vec::new();
    runtime.block_on(async {
        let mut hostile = Hostile::new(honest.server.addr, &path, &token, 0xbad0 + number).await;
        for step in steps {
            if let Step::Honest(op) = step {
                honest_write(&realm, op);
                continue;
            }
            let Some(entry) = hostile_entry(&mut hostile, step) else {
                continue;
            };
            let answer = hostile.upload(vec![entry]).await;
            if let Answer::Refused(_) = answer {
                hostile.rebind().await;
            }
            outcomes.push(answer);
        }
        hostile.catch_up(1_000_000).await;
    });

    // The honest device syncs, and its realm is sound.
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        TestCaseError::fail(format!(
            "{what}: {e}\nerrors: {:?}\noutcomes: {outcomes:?}",
            errors.lock().unwrap()
        ))
    };
    session
        .wait_for_upload(WAIT)
        .map_err(|e| fail("wait_for_upload", &e))?;
    session
        .wait_for_download(WAIT)
        .map_err(|e| fail("wait_for_download", &e))?;
    realm.refresh().unwrap();
    let dump = realm.dump_json().map_err(|e| fail("dump_json", &e))?;
    let schema = realm.schema().map_err(|e| fail("schema", &e))?;
    Schema::from_json(&schema.to_json()).map_err(|e| fail("the schema's JSON", &e))?;
    prop_assert!(
        errors.lock().unwrap().is_empty(),
        "sync errors: {:?}",
        errors.lock().unwrap()
    );
    // It reopens with the same content.
    realm.close();
    drop(session);
    let realm = Realm::open(&config).map_err(|e| fail("reopen", &e))?;
    prop_assert_eq!(&realm.dump_json().unwrap(), &dump);
    // A new device downloads the same.
    let fresh_errors = Arc::new(Mutex::new(Vec::new()));
    let fresh = Realm::open(&synced(&honest.fresh_user, &url, &fresh_errors)).unwrap();
    fresh
        .session()
        .unwrap()
        .wait_for_download(WAIT)
        .map_err(|e| fail("a new device's download", &e))?;
    fresh.refresh().unwrap();
    prop_assert_eq!(&fresh.dump_json().unwrap(), &dump);
    prop_assert!(fresh_errors.lock().unwrap().is_empty());
    drop(fresh);
    drop(realm);
    honest.done.push((number, dump));
    for answer in outcomes {
        let key = match answer {
            Answer::Acked(_) => "taken".to_owned(),
            Answer::Refused(code) => format!("refused {code}"),
        };
        *honest.answers.entry(key).or_default() += 1;
    }
    Ok(())
}

#[test]
fn a_hostile_client_never_breaks_an_honest_one() {
    let cases = std::env::var("SHOAL_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let server = TestServer::binary(&[]);
    let auth = server.url("/auth");
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let device = App::new(dirs.0.path(), APP_ID).unwrap();
    let user = device
        .login(&Credentials::password(USER, PASSWORD, true).unwrap(), &auth)
        .unwrap();
    let fresh = App::new(dirs.1.path(), APP_ID).unwrap();
    let fresh_user = fresh
        .login(
            &Credentials::password(USER, PASSWORD, false).unwrap(),
            &auth,
        )
        .unwrap();
    let refresh = server.login(USER, PASSWORD);
    let honest = Honest {
        server,
        device,
        user,
        fresh,
        fresh_user,
        _dirs: dirs,
        refresh,
        paths: 0,
        done: Vec::new(),
        answers: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        // Every shrinking step runs a case against the server (and a failing one waits for
        // its timeouts): off unless asked for.
        max_shrink_iters: std::env::var("SHOAL_HOSTILE_SHRINK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..RunnerConfig::default()
    });
    let strategy = proptest::collection::vec(step(), 4..24);
    let cell = std::cell::RefCell::new(honest);
    let result = runner.run(&strategy, |steps| {
        run_case(&mut cell.borrow_mut(), &runtime, &steps)
    });
    let honest = cell.into_inner();
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", tail(&honest.server.stderr(), 40));
    }
    eprintln!("hostile uploads: {:?}", honest.answers);
    assert!(honest.answers.get("taken").is_some_and(|n| *n > 0));
    assert!(honest.answers.get("refused 212").is_some_and(|n| *n > 0));

    // The server's copy of every realm is what the devices have.
    let Honest {
        server,
        done,
        device,
        fresh,
        ..
    } = honest;
    drop((device, fresh));
    let (data, _keep) = server.stop_keeping_data();
    for (number, dump) in done {
        assert_eq!(server_copy_of(&data, number), dump, "realm {number}");
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
