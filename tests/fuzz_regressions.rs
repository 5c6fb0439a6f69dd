//! Inputs that broke Shoal under the checks of the fuzz targets (`fuzz/`, run by
//! `scripts/fuzz.sh`), replayed as ordinary tests. Each test opens with how the input was
//! found, what broke and what was fixed.
//! Changesets are written out instruction by instruction with [`Changeset`], after the
//! encoding at the top of `src/history.rs`, so a test does not depend on the recording code.

use shoal::{Config, ErrorCode, PropertyFlags as F, PropertyType as T, Realm, Value};

/// A format-2 changeset being written: `S 2 stamp origin instruction*`.
struct Changeset(Vec<u8>);

impl Changeset {
    /// Stamp 2^20 and origin 99: never this test's own realm.
    fn new() -> Changeset {
        let mut b = vec![0x53, 2];
        b.extend_from_slice(&(1u64 << 20).to_le_bytes());
        b.extend_from_slice(&99u64.to_le_bytes());
        Changeset(b)
    }

    fn varint(mut self, mut v: u64) -> Changeset {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }

    /// A string written out in full (`0 len bytes`), never a back reference.
    fn str(self, s: &str) -> Changeset {
        let mut c = self.varint(0).varint(s.len() as u64);
        c.0.extend_from_slice(s.as_bytes());
        c
    }

    fn add_class(self, name: &str) -> Changeset {
        self.varint(1).str(name)
    }

    fn add_property(
        self,
        class: &str,
        name: &str,
        ty: T,
        flags: F,
        target: Option<&str>,
    ) -> Changeset {
        let c = self.varint(2).str(class).str(name);
        let c = c.varint(ty as u64).varint(u64::from(flags.bits()));
        match target {
            None => c.varint(0),
            Some(t) => c.varint(1).str(t),
        }
    }

    fn set_primary_key(self, class: &str, prop: &str) -> Changeset {
        self.varint(3).str(class).varint(1).str(prop)
    }

    fn erase_property(self, class: &str, name: &str) -> Changeset {
        self.varint(5).str(class).str(name)
    }

    /// Creates (and selects) the object of `class` with int primary key `id`.
    fn create(self, class: &str, id: i64) -> Changeset {
        self.varint(11).str(class).varint(0).varint(zigzag(id))
    }

    fn erase_class(self, class: &str) -> Changeset {
        self.varint(4).str(class)
    }

    /// Creates (and selects) the object of `class` (no primary key) with generated id `seq`.
    fn create_generated(self, class: &str, seq: u64) -> Changeset {
        let mut c = self.varint(11).str(class).varint(2);
        c.0.extend_from_slice(&7u64.to_le_bytes());
        c.0.extend_from_slice(&seq.to_le_bytes());
        c
    }

    /// Sets a link of the selected object to the object with generated id `seq`.
    fn set_link(self, prop: &str, seq: u64) -> Changeset {
        let mut c = self.varint(20).str(prop).varint(9).varint(2);
        c.0.extend_from_slice(&7u64.to_le_bytes());
        c.0.extend_from_slice(&seq.to_le_bytes());
        c
    }

    /// Sets an int property of the selected object.
    fn set_int(self, prop: &str, value: i64) -> Changeset {
        self.varint(20).str(prop).varint(3).varint(zigzag(value))
    }

    fn set_flags(self, class: &str, name: &str, flags: F) -> Changeset {
        self.varint(6)
            .str(class)
            .str(name)
            .varint(u64::from(flags.bits()))
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn in_memory(name: &str, merge: bool) -> Realm {
    let mut config = Config::new(name);
    config.set_in_memory(true);
    config.set_merge_metadata(merge);
    Realm::open(&config).expect("open an in-memory realm")
}

/// Found by the `changeset` target: a changeset could give a realm a schema that
/// [`shoal::Schema`] refuses. Schema instructions were applied to the file's catalog
/// unchecked, so a peer could make a DOUBLE property the primary key (the fuzzer flipped the
/// type byte of `id` in a recorded changeset), and the same path let through bad names,
/// indexed doubles and lists, targets on non-links, lists of links holding NULL, and flag
/// changes that turn a scalar into a list. The realm then held a schema it could not reopen
/// with (for a bad name, `Realm::schema` even panicked: `Catalog::to_schema` expects valid
/// names), and values in a layout its catalog no longer described. Fix: the schema changes of
/// a changeset (`apply_schema_change` in `src/store/write.rs`) now apply the rules of
/// `Schema::add_class`/`add_property`/`validate` (shared from `src/schema.rs`) and refuse a
/// change that breaks them with `InvalidArgument` before changing anything; integrating
/// refuses the whole changeset (the server answers `BAD_CHANGESET`).
#[test]
fn changesets_that_would_break_the_schema_rules_are_refused() {
    let a = || Changeset::new().add_class("A");
    let cases: Vec<(&str, Changeset)> = vec![
        (
            "a double primary key",
            a().add_property("A", "id", T::Double, F::NONE, None)
                .set_primary_key("A", "id"),
        ),
        (
            "a list primary key",
            a().add_property("A", "ids", T::Int, F::LIST, None)
                .set_primary_key("A", "ids"),
        ),
        ("an empty class name", Changeset::new().add_class("")),
        (
            "a reserved class name",
            Changeset::new().add_class("__meta"),
        ),
        (
            "a class name of 64 bytes",
            Changeset::new().add_class(&"c".repeat(64)),
        ),
        (
            "an empty property name",
            a().add_property("A", "", T::Int, F::NONE, None),
        ),
        (
            "an indexed double",
            a().add_property("A", "d", T::Double, F::INDEXED, None),
        ),
        (
            "an indexed list",
            a().add_property("A", "l", T::Int, F::LIST | F::INDEXED, None),
        ),
        (
            "an int naming a target class",
            a().add_property("A", "n", T::Int, F::NONE, Some("A")),
        ),
        (
            "a list of links holding NULL",
            a().add_property("A", "links", T::Link, F::LIST | F::NULLABLE, Some("A")),
        ),
        (
            "a scalar turned into a list",
            a().add_property("A", "x", T::Int, F::NONE, None)
                .set_flags("A", "x", F::LIST),
        ),
        (
            "a list turned into a scalar",
            a().add_property("A", "l", T::Int, F::LIST, None)
                .set_flags("A", "l", F::NONE),
        ),
        (
            "an index on a double added later",
            a().add_property("A", "d", T::Double, F::NONE, None)
                .set_flags("A", "d", F::INDEXED),
        ),
    ];
    for (n, (what, changeset)) in cases.iter().enumerate() {
        let bytes = &changeset.0;
        shoal::decode_changeset(bytes).unwrap_or_else(|e| panic!("{what}: does not decode: {e}"));

        let merging = in_memory(&format!("merge-{n}"), true);
        let err = merging.integrate_changeset(bytes).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{what}: {err:?}");
        assert!(
            merging.schema().unwrap().classes().is_empty(),
            "{what}: a refused changeset left classes behind"
        );
        let err = merging.integrate_changesets(&[bytes]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{what}: {err:?}");

        let plain = in_memory(&format!("plain-{n}"), false);
        plain.begin_write().unwrap();
        let err = plain.apply_changeset(bytes).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{what}: {err:?}");
        plain.cancel_write().unwrap();
        assert!(plain.schema().unwrap().classes().is_empty(), "{what}");
    }

    // The same instructions with the rules kept are accepted.
    let good = a()
        .add_property("A", "id", T::Int, F::NONE, None)
        .set_primary_key("A", "id")
        .add_property("A", "x", T::Double, F::NONE, None)
        .set_flags("A", "x", F::NULLABLE)
        .add_property("A", "links", T::Link, F::LIST, Some("A"));
    let merging = in_memory("merge-good", true);
    merging.integrate_changeset(&good.0).unwrap();
    let schema = merging.schema().unwrap();
    let class = schema.class("A").expect("class A");
    assert_eq!(class.primary_key.as_deref(), Some("id"));
    assert!(class.property("x").unwrap().is_nullable());
    shoal::Schema::from_json(&schema.to_json()).expect("a schema Schema accepts");
}

/// Not found by the fuzzer's own search but while writing the `changeset` target (reading the
/// merge code), and confirmed by handing the target this input: a changeset that erases the property that is its class's primary key (a
/// replica erased it before another replica made it the key) removed the key without giving
/// the class's objects another identity; every object of the class then read as deleted and
/// `dump_json` failed with `ObjectDeleted`. Fix: erasing the key property first drops the key
/// (`SetPrimaryKey` to none, as a migration does), so the objects get generated ids made from
/// their key values, the same on every replica.
#[test]
fn erasing_the_primary_key_property_keeps_the_objects() {
    let changeset = Changeset::new()
        .add_class("A")
        .add_property("A", "id", T::Int, F::NONE, None)
        .add_property("A", "x", T::Int, F::NONE, None)
        .set_primary_key("A", "id")
        .create("A", 1)
        .set_int("x", 10)
        .create("A", 2)
        .set_int("x", 20)
        .erase_property("A", "id");
    let merging = in_memory("erase-key-merge", true);
    merging.integrate_changeset(&changeset.0).unwrap();
    let plain = in_memory("erase-key-plain", false);
    plain.begin_write().unwrap();
    plain.apply_changeset(&changeset.0).unwrap();
    plain.commit().unwrap();
    for realm in [&merging, &plain] {
        let schema = realm.schema().unwrap();
        let class = schema.class("A").expect("class A");
        assert_eq!(class.primary_key, None);
        assert!(class.property("id").is_none());
        realm.dump_json().expect("every object is readable");
        let xs: Vec<Value> = realm
            .query("A", "TRUEPREDICATE SORT(x ASC)", &[])
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .map(|o| o.get("x").unwrap())
            .collect();
        assert_eq!(xs, [Value::Int(10), Value::Int(20)]);
    }
    assert_eq!(merging.dump_json().unwrap(), plain.dump_json().unwrap());
}

/// Found like the previous one (reading the merge code while writing the `changeset` target,
/// confirmed with a hand-made input): a changeset that erased a class other classes link to
/// (a replica erased it while another added a link to it) left those link properties naming
/// a class that no longer exists: `Realm::schema` panicked (`Catalog::to_schema` expects
/// every link to have a target) and reading an object of the linking class, so `dump_json`,
/// failed with `NoSuchClass`. Fix: erasing a class also erases the properties of
/// other classes that link to it (a migration has already removed them: a schema has no
/// dangling target).
#[test]
fn erasing_a_linked_class_erases_the_links_to_it() {
    let changeset = Changeset::new()
        .add_class("A")
        .add_class("B")
        .add_property("A", "b", T::Link, F::NONE, Some("B"))
        .add_property("A", "bs", T::Link, F::LIST, Some("B"))
        .add_property("A", "x", T::Int, F::NONE, None)
        .add_property("B", "self", T::Link, F::NONE, Some("B"))
        .create_generated("B", 1)
        .create_generated("A", 2)
        .set_link("b", 1)
        .set_int("x", 5)
        .erase_class("B");
    let merging = in_memory("erase-class-merge", true);
    merging.integrate_changeset(&changeset.0).unwrap();
    let plain = in_memory("erase-class-plain", false);
    plain.begin_write().unwrap();
    plain.apply_changeset(&changeset.0).unwrap();
    plain.commit().unwrap();
    for realm in [&merging, &plain] {
        let schema = realm.schema().unwrap();
        assert!(schema.class("B").is_none());
        let a = schema.class("A").expect("class A");
        let names: Vec<&str> = a.properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["x"]);
        shoal::Schema::from_json(&schema.to_json()).expect("a schema Schema accepts");
        realm.dump_json().expect("every object is readable");
        let a = realm.objects("A").unwrap().get(0).unwrap();
        assert_eq!(a.get("x").unwrap(), Value::Int(5));
    }
    assert_eq!(merging.dump_json().unwrap(), plain.dump_json().unwrap());
}
