//! Shoal's main job: `shoal-server` on its embedded storage, one user on two devices, and a realm
//! synced between them both ways.
//!
//! Device A writes 20,000 objects while its upload progress and device B's download progress
//! are drawn as bars; then single changes on A arrive on B (each with its latency, from A's
//! commit to B's change callback reading the new value), B writes back and A receives it, and
//! both devices end with the same objects.
//!
//! Run with `cargo run --release --example sync_demo`. The server keeps its data in
//! `shoal-demo-data` under the system temp dir (emptied at the start of each run); the two
//! devices live in temporary directories removed at the end.

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use shoal::{
    App, ChangeToken, Config, Credentials, Progress, ProgressDirection, ProgressMode,
    PropertyFlags as F, PropertyType as T, Realm, Schema, Session, SyncConfig, Value,
};

const OBJECTS: i64 = 20_000;
const BATCH: i64 = 1_000;
const SINGLE_CHANGES: i64 = 5;
const WAIT: Duration = Duration::from_secs(30);
const APP_ID: &str = "io.shoal.demo";
const USER: &str = "demo-user";
const PASSWORD: &str = "s3cret-password";

type Result<T> = std::result::Result<T, String>;

/// Adds what was being done to an error.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn schema() -> shoal::Result<Schema> {
    let mut s = Schema::new();
    s.add_class("Item", Some("id"))?;
    s.add_property("Item", "id", T::Int, F::NONE, None)?;
    s.add_property("Item", "name", T::String, F::NONE, None)?;
    s.add_property("Item", "count", T::Int, F::NONE, None)?;
    Ok(s)
}

// ---- the devices ------------------------------------------------------------------------------

struct Device {
    name: &'static str,
    _dir: tempfile::TempDir,
    _app: App,
    realm: Realm,
    session: Session,
}

fn open_device(name: &'static str, register: bool, addr: SocketAddr) -> Result<Device> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("shoal-{}-", name.replace(' ', "-")))
        .tempdir()
        .ctx("temporary directory")?;
    let app = App::new(dir.path(), APP_ID).ctx("App::new")?;
    let credentials = Credentials::password(USER, PASSWORD, register).ctx("credentials")?;
    let user = app
        .login(&credentials, &format!("http://{addr}/auth"))
        .ctx(&format!("{name}: login as {USER}"))?;
    let sync = SyncConfig::new(&user, &format!("realm://{addr}/~/items")).ctx("SyncConfig")?;
    let mut config = Config::new("unused");
    config.set_schema(schema().ctx("schema")?).ctx("schema")?;
    config.set_sync(sync);
    let realm = Realm::open(&config).ctx(&format!("{name}: opening the synced realm"))?;
    let session = realm
        .session()
        .ok_or_else(|| format!("{name}: the synced realm has no session"))?;
    println!(
        "{name}: {} {USER} (identity {}); realm {} in {}",
        if register {
            "registered"
        } else {
            "logged in as"
        },
        user.identity(),
        session.config().server_path(),
        config.path()
    );
    Ok(Device {
        name,
        _dir: dir,
        _app: app,
        realm,
        session,
    })
}

impl Device {
    fn count(&self) -> Result<usize> {
        self.realm.refresh().ctx("refresh")?;
        self.realm
            .objects("Item")
            .and_then(|r| r.count())
            .ctx(&format!("{}: count", self.name))
    }
}

/// Tells the moment a device's change callback first sees what it is told to wait for.
struct Watcher {
    condition: Arc<Mutex<Option<Condition>>>,
    seen: mpsc::Receiver<Instant>,
    _token: ChangeToken,
}

type Condition = Box<dyn Fn(&Realm) -> bool + Send>;

impl Watcher {
    fn new(realm: &Realm) -> Result<Watcher> {
        let condition: Arc<Mutex<Option<Condition>>> = Arc::default();
        let (tx, seen) = mpsc::channel();
        let (cond, handle) = (condition.clone(), realm.clone());
        let token = realm
            .add_change_callback(move |_version| {
                let mut c = cond.lock().unwrap();
                let done = c
                    .as_ref()
                    .is_some_and(|f| handle.refresh().is_ok() && f(&handle));
                if done {
                    *c = None;
                    let _ = tx.send(Instant::now());
                }
            })
            .ctx("add_change_callback")?;
        Ok(Watcher {
            condition,
            seen,
            _token: token,
        })
    }

    fn expect(&self, condition: impl Fn(&Realm) -> bool + Send + 'static) {
        *self.condition.lock().unwrap() = Some(Box::new(condition));
    }

    fn wait(&self, what: &str) -> Result<Instant> {
        self.seen
            .recv_timeout(WAIT)
            .map_err(|_| format!("timed out after {WAIT:?} waiting for {what}"))
    }
}

fn count_is(id: i64, count: i64) -> impl Fn(&Realm) -> bool + Send + 'static {
    move |r| {
        r.find_object("Item", &Value::Int(id))
            .ok()
            .flatten()
            .and_then(|o| o.get("count").ok())
            == Some(Value::Int(count))
    }
}

// ---- progress bars ----------------------------------------------------------------------------

/// A's upload bar and B's download bar on stderr: two lines redrawn in place (`\r` and a
/// cursor-up) on a terminal; plain lines, a few a second at most, otherwise.
struct Bars {
    tty: bool,
    written: i64,
    up: Option<Progress>,
    down: Option<Progress>,
    last_draw: Option<Instant>,
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{} KB", b / 1024),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

impl Bars {
    fn new() -> Bars {
        Bars {
            tty: std::io::stderr().is_terminal(),
            written: 0,
            up: None,
            down: None,
            last_draw: None,
        }
    }

    /// `[#####-----] 50%  1 KB of 2 KB`
    fn bar(p: Option<Progress>) -> String {
        const WIDTH: usize = 20;
        let Some(p) = p else {
            return format!("[{}]   ?%", " ".repeat(WIDTH));
        };
        // Nothing to transfer yet reads as an empty bar, not a full one.
        let f = if p.transferable == 0 {
            0.0
        } else {
            p.fraction()
        };
        let full = (f * WIDTH as f64).round() as usize;
        format!(
            "[{}{}] {:3.0}% {:>6} of {:<6}",
            "#".repeat(full),
            "-".repeat(WIDTH - full),
            f * 100.0,
            size(p.transferred),
            size(p.transferable)
        )
    }

    /// A percentage and sizes, for plain lines.
    fn plain(p: Option<Progress>) -> String {
        match p {
            None => "waiting for the server".into(),
            Some(p) => {
                let f = if p.transferable == 0 {
                    0.0
                } else {
                    p.fraction()
                };
                format!(
                    "{:.0}% ({} of {})",
                    f * 100.0,
                    size(p.transferred),
                    size(p.transferable)
                )
            }
        }
    }

    /// Redraws if enough time has passed (always with `force`).
    fn draw(&mut self, force: bool) {
        let every = if self.tty {
            Duration::from_millis(30)
        } else {
            Duration::from_millis(250)
        };
        if !force && self.last_draw.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        let first = self.last_draw.is_none();
        self.last_draw = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(
                err,
                "{}  device A upload   {} {:>5} written\x1b[K\n  device B download {}\x1b[K",
                if first { "" } else { "\r\x1b[1A" },
                Self::bar(self.up),
                self.written,
                Self::bar(self.down)
            );
        } else {
            let _ = writeln!(
                err,
                "  device A: {} objects written, upload {}; device B: download {}",
                self.written,
                Self::plain(self.up),
                Self::plain(self.down)
            );
        }
        let _ = err.flush();
    }

    /// The last drawing, ending the line.
    fn finish(&mut self) {
        self.draw(true);
        if self.tty {
            eprintln!();
        }
    }
}

// ---- the demo ---------------------------------------------------------------------------------

fn run() -> Result<()> {
    let data: PathBuf = std::env::temp_dir().join("shoal-demo-data");
    if data.exists() {
        std::fs::remove_dir_all(&data).ctx(&format!("emptying {}", data.display()))?;
    }
    let addr = shoal_examples::start_server(&data)?;
    println!(
        "shoal-server: listening on {addr}, data in {}",
        data.display()
    );

    let a = open_device("device A", true, addr)?;
    let b = open_device("device B", false, addr)?;
    let on_b = Watcher::new(&b.realm)?;
    let on_a = Watcher::new(&a.realm)?;

    // --- 1. a bulk write on A, with A's upload and B's download progress ---
    println!();
    println!("device A writes {OBJECTS} objects in transactions of {BATCH}:");
    let bars = Arc::new(Mutex::new(Bars::new()));
    let up_token = {
        let bars = bars.clone();
        a.session
            .add_progress_callback(
                ProgressDirection::Upload,
                ProgressMode::Indefinitely,
                move |p| {
                    let mut b = bars.lock().unwrap();
                    b.up = Some(p);
                    b.draw(false);
                },
            )
            .ctx("A: upload progress callback")?
    };
    let down_token = {
        let bars = bars.clone();
        b.session
            .add_progress_callback(
                ProgressDirection::Download,
                ProgressMode::Indefinitely,
                move |p| {
                    let mut b = bars.lock().unwrap();
                    b.down = Some(p);
                    b.draw(false);
                },
            )
            .ctx("B: download progress callback")?
    };
    let last = OBJECTS - 1;
    on_b.expect(move |r| {
        r.find_object("Item", &Value::Int(last))
            .ok()
            .flatten()
            .is_some()
    });
    let start = Instant::now();
    for first in (0..OBJECTS).step_by(BATCH as usize) {
        a.realm.begin_write().ctx("A: begin_write")?;
        for id in first..(first + BATCH).min(OBJECTS) {
            let o = a
                .realm
                .create_object("Item", Some(&Value::Int(id)))
                .ctx("A: create_object")?;
            o.set("name", format!("item {id}")).ctx("A: set name")?;
            o.set("count", 0).ctx("A: set count")?;
        }
        a.realm.commit().ctx("A: commit")?;
        let mut b = bars.lock().unwrap();
        b.written = (first + BATCH).min(OBJECTS);
        b.draw(false);
    }
    let written = start.elapsed();
    a.session
        .wait_for_upload(WAIT)
        .ctx("A: uploading the objects")?;
    let arrived = on_b.wait(&format!("device B to receive all {OBJECTS} objects"))? - start;
    // The last progress figures come with the server's next message; give them a moment.
    b.session
        .wait_for_download(WAIT)
        .ctx("B: downloading the objects")?;
    drop(up_token);
    drop(down_token);
    bars.lock().unwrap().finish();
    let on_b_count = b.count()?;
    if on_b_count != OBJECTS as usize {
        return Err(format!(
            "device B has {on_b_count} objects, expected {OBJECTS}"
        ));
    }
    println!(
        "device A wrote {OBJECTS} objects in {:.0} ms; all of them were on device B {:.0} ms after A's first commit ({:.0} objects/s end to end)",
        ms(written),
        ms(arrived),
        OBJECTS as f64 / arrived.as_secs_f64()
    );

    // --- 2. single changes on A, each arriving on B ---
    println!();
    println!("single changes on device A, as device B's change callback sees them:");
    for i in 1..=SINGLE_CHANGES {
        let (id, count) = (i * 1_000 + 7, i * 10);
        on_b.expect(count_is(id, count));
        let start = Instant::now();
        a.realm.begin_write().ctx("A: begin_write")?;
        a.realm
            .find_object("Item", &Value::Int(id))
            .ctx("A: find_object")?
            .ok_or_else(|| format!("device A has no Item {id}"))?
            .set("count", count)
            .ctx("A: set count")?;
        a.realm.commit().ctx("A: commit")?;
        let seen = on_b.wait(&format!("Item {id}.count = {count} on device B"))?;
        println!(
            "  A sets Item {id:>5}.count = {count:<3} -> on B after {:.2} ms",
            ms(seen - start)
        );
    }

    // --- 3. B writes back ---
    println!();
    println!("device B writes back, device A receives:");
    let new_id = OBJECTS;
    on_a.expect(move |r| {
        r.find_object("Item", &Value::Int(new_id))
            .ok()
            .flatten()
            .is_some()
    });
    let start = Instant::now();
    b.realm.begin_write().ctx("B: begin_write")?;
    let o = b
        .realm
        .create_object("Item", Some(&Value::Int(new_id)))
        .ctx("B: create_object")?;
    o.set("name", "written on device B").ctx("B: set name")?;
    o.set("count", 1).ctx("B: set count")?;
    b.realm.commit().ctx("B: commit")?;
    let seen = on_a.wait(&format!("Item {new_id} from device B on device A"))?;
    println!(
        "  B creates Item {new_id} \"written on device B\" -> on A after {:.2} ms",
        ms(seen - start)
    );
    on_a.expect(count_is(1_007, 99));
    let start = Instant::now();
    b.realm.begin_write().ctx("B: begin_write")?;
    b.realm
        .find_object("Item", &Value::Int(1_007))
        .ctx("B: find_object")?
        .ok_or("device B has no Item 1007")?
        .set("count", 99)
        .ctx("B: set count")?;
    b.realm.commit().ctx("B: commit")?;
    let seen = on_a.wait("Item 1007.count = 99 on device A")?;
    println!(
        "  B sets Item  1007.count = 99  -> on A after {:.2} ms",
        ms(seen - start)
    );

    // --- 4. both devices agree ---
    for d in [&a, &b] {
        d.session
            .wait_for_upload(WAIT)
            .ctx(&format!("{}: upload", d.name))?;
        d.session
            .wait_for_download(WAIT)
            .ctx(&format!("{}: download", d.name))?;
    }
    let (count_a, count_b) = (a.count()?, b.count()?);
    let same = a.realm.dump_json().ctx("A: dump")? == b.realm.dump_json().ctx("B: dump")?;
    println!();
    println!("device A: {count_a} objects; device B: {count_b} objects");
    if count_a != count_b || count_a != OBJECTS as usize + 1 {
        return Err(format!(
            "the devices disagree: A has {count_a} objects, B has {count_b}, expected {}",
            OBJECTS + 1
        ));
    }
    if !same {
        return Err("the devices have the same number of objects but different contents".into());
    }
    println!("both devices hold the same {count_a} objects");
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!();
        eprintln!("sync_demo FAILED: {e}");
        std::process::exit(1);
    }
}
