//! Two users sharing a realm through `shoal-server`, the Realm Object Server way: Alice writes
//! a shopping list into her realm `/~/shopping-list`, offers Bob read and write access through
//! her management realm, Bob accepts with the offer's token through his, opens Alice's realm
//! (his own local copy), and both edit until their copies are the same.
//!
//! Run with `cargo run --release --example sharing_demo`. Everything (the server's data and
//! both users' apps) lives in temporary directories removed at the end.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use shoal::management::{self, Access};
use shoal::{
    App, Config, Credentials, PropertyFlags as F, PropertyType as T, Realm, Schema, SyncConfig,
    User, Value,
};

const WAIT: Duration = Duration::from_secs(30);
const APP_ID: &str = "io.shoal.sharing-demo";

type Result<T> = std::result::Result<T, String>;

trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// A user with an app of its own (its own device).
struct Person {
    _dir: tempfile::TempDir,
    _app: App,
    user: User,
}

fn register(name: &str, addr: SocketAddr) -> Result<Person> {
    let dir = tempfile::tempdir().ctx("temporary directory")?;
    let app = App::new(dir.path(), APP_ID).ctx("App::new")?;
    let credentials = Credentials::password(name, "s3cret-password", true).ctx("credentials")?;
    let user = app
        .login(&credentials, &format!("http://{addr}/auth"))
        .ctx("register")?;
    Ok(Person {
        _dir: dir,
        _app: app,
        user,
    })
}

fn schema() -> shoal::Result<Schema> {
    let mut s = Schema::new();
    s.add_class("Item", None)?;
    s.add_property("Item", "name", T::String, F::NONE, None)?;
    s.add_property("Item", "by", T::String, F::NONE, None)?;
    Ok(s)
}

fn open(user: &User, url: &str) -> Result<Realm> {
    let mut config = Config::new("");
    config.set_schema(schema().ctx("schema")?).ctx("schema")?;
    config.set_sync(SyncConfig::new(user, url).ctx("sync config")?);
    Realm::open(&config).ctx("open")
}

fn add(realm: &Realm, name: &str, by: &str) -> Result<()> {
    realm.begin_write().ctx("begin")?;
    let item = realm.create_object("Item", None).ctx("create")?;
    item.set("name", name).ctx("set")?;
    item.set("by", by).ctx("set")?;
    realm.commit().ctx("commit")
}

fn items(realm: &Realm) -> Result<Vec<String>> {
    realm.refresh().ctx("refresh")?;
    let results = realm.objects("Item").ctx("objects")?;
    let mut out = Vec::new();
    for i in 0..results.count().ctx("count")? {
        let item = results.get(i).ctx("get")?;
        if let (Value::String(name), Value::String(by)) =
            (item.get("name").ctx("get")?, item.get("by").ctx("get")?)
        {
            out.push(format!("{name} ({by})"));
        }
    }
    out.sort();
    Ok(out)
}

fn sync(realm: &Realm) -> Result<()> {
    let session = realm.session().ok_or("not synced")?;
    session.wait_for_upload(WAIT).ctx("upload")?;
    session.wait_for_download(WAIT).ctx("download")
}

/// Waits until the server answered the management object `id`; returns the object.
fn answered(realm: &Realm, class: &str, id: &Value) -> Result<shoal::Object> {
    let deadline = Instant::now() + WAIT;
    loop {
        realm.refresh().ctx("refresh")?;
        if let Some(o) = realm.find_object(class, id).ctx("find")? {
            if o.get("statusCode").ctx("statusCode")? != Value::Null {
                return Ok(o);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the server did not answer the {class}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run() -> Result<()> {
    let data = tempfile::tempdir().ctx("server directory")?;
    let addr = shoal_examples::start_server(data.path())?;
    println!("shoal-server on {addr}");
    let alice = register("alice", addr)?;
    let bob = register("bob", addr)?;
    let url = format!("realm://{addr}/{}/shopping-list", alice.user.identity());

    let list = open(&alice.user, &url)?;
    add(&list, "bread", "alice")?;
    add(&list, "apples", "alice")?;
    sync(&list)?;
    println!("alice's list: {:?}", items(&list)?);

    // Alice offers read and write access through her management realm.
    let alice_management = alice.user.open_management_realm().ctx("management realm")?;
    alice_management.begin_write().ctx("begin")?;
    let access = Access {
        read: true,
        write: true,
        manage: false,
    };
    let offer = management::create_offer(&alice_management, &url, access, None).ctx("offer")?;
    let offer_id = offer.get("id").ctx("id")?;
    alice_management.commit().ctx("commit")?;
    let offer = answered(&alice_management, "PermissionOffer", &offer_id)?;
    let Value::String(token) = offer.get("token").ctx("token")? else {
        return Err(format!(
            "the offer was refused: {:?}",
            offer.get("statusMessage")
        ));
    };
    println!("the server accepted alice's offer; token {}…", &token[..8]);

    // Bob accepts it through his own management realm.
    let bob_management = bob.user.open_management_realm().ctx("management realm")?;
    bob_management.begin_write().ctx("begin")?;
    let response = management::create_offer_response(&bob_management, &token).ctx("response")?;
    let response_id = response.get("id").ctx("id")?;
    bob_management.commit().ctx("commit")?;
    let response = answered(&bob_management, "PermissionOfferResponse", &response_id)?;
    println!(
        "bob accepted: status {:?}, realm {:?}",
        response.get("statusCode").ctx("statusCode")?,
        response.get("realmUrl").ctx("realmUrl")?
    );
    for granted in bob.user.granted_permissions().ctx("shared with me")? {
        println!(
            "shared with bob: {} (read {}, write {}, manage {})",
            granted.path, granted.may_read, granted.may_write, granted.may_manage
        );
    }

    // Bob opens Alice's realm: his own local copy of it.
    let bobs_copy = open(&bob.user, &url)?;
    sync(&bobs_copy)?;
    println!("bob sees: {:?}", items(&bobs_copy)?);
    add(&bobs_copy, "milk", "bob")?;
    add(&list, "coffee", "alice")?;
    sync(&bobs_copy)?;
    sync(&list)?;
    sync(&bobs_copy)?;
    let (a, b) = (items(&list)?, items(&bobs_copy)?);
    println!("alice's copy: {a:?}");
    println!("bob's copy:   {b:?}");
    if a != b || a.len() != 4 {
        return Err("the copies differ".into());
    }
    println!("both copies are the same");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("sharing_demo failed: {e}");
        std::process::exit(1);
    }
}
