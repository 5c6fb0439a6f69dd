//! Shoal's demo: `shoal-server` on its embedded storage with two users logging in to it, then
//! a local realm shared by two handles on two threads: one writes people, the other is told
//! about each commit by a change callback and queries what it sees. (Syncing the realm between
//! the two users' devices comes with the sync work.)
//!
//! Run with `cargo run --release --example demo [PATH]`.

use shoal::{Config, PropertyFlags as F, PropertyType as T, Realm, Schema, Value};
use std::sync::mpsc;
use std::time::Duration;

fn schema() -> shoal::Result<Schema> {
    let mut s = Schema::new();
    s.add_class("Person", Some("id"))?;
    s.add_property("Person", "id", T::Int, F::NONE, None)?;
    s.add_property("Person", "name", T::String, F::INDEXED, None)?;
    s.add_property("Person", "age", T::Int, F::NONE, None)?;
    Ok(s)
}

/// Runs `shoal-server` on a free loopback port in a background thread; returns its auth URL.
fn start_server(data: &std::path::Path) -> String {
    let addr = shoal_examples::start_server(data).expect("shoal-server starts");
    format!("http://{addr}/auth")
}

fn main() -> shoal::Result<()> {
    let dir = tempfile::tempdir().map_err(shoal::Error::from)?;
    let auth_url = start_server(&dir.path().join("server-data"));
    println!("shoal-server listening: {auth_url}");
    for (device, name) in [("device-a", "alice"), ("device-b", "bob")] {
        let app = shoal::App::new(dir.path().join(device), "io.shoal.demo")?;
        let user = app.login(
            &shoal::Credentials::password(name, "s3cret-password", true)?,
            &auth_url,
        )?;
        println!(
            "{device}: {name} logged in as {} (valid: {})",
            user.identity(),
            user.is_valid()
        );
    }

    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| dir.path().join("demo.realm").to_string_lossy().into_owned());
    let mut config = Config::new(path.clone());
    config.set_schema(schema()?)?;

    let writer = Realm::open(&config)?;
    let reader = Realm::open(&config)?;
    let (tx, rx) = mpsc::channel();
    let _token = reader.add_change_callback(move |version| {
        let _ = tx.send(version);
    })?;

    let handle = std::thread::spawn(move || -> shoal::Result<()> {
        for batch in 0..3i64 {
            writer.begin_write()?;
            for i in 0..1000 {
                let id = batch * 1000 + i;
                let p = writer.create_object("Person", Some(&Value::Int(id)))?;
                p.set("name", format!("person-{id}"))?;
                p.set("age", id % 90)?;
            }
            writer.commit()?;
        }
        Ok(())
    });

    for _ in 0..3 {
        let version = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a change notification");
        reader.refresh()?;
        let adults = reader.query("Person", "age >= 18", &[])?;
        println!(
            "version {version}: {} people, {} adults, average age {}",
            reader.objects("Person")?.count()?,
            adults.count()?,
            reader.objects("Person")?.average("age")?
        );
    }
    handle.join().expect("writer thread")?;
    let p = reader
        .query("Person", "name == $0", &[Value::from("person-2024")])?
        .get(0)?;
    println!(
        "found {} aged {} (indexed lookup)",
        p.get("name")?,
        p.get("age")?
    );
    println!("file: {path}");
    Ok(())
}
