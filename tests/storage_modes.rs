//! Encryption at rest, read-only and in-memory realms, compaction.

mod common;
use common::*;
use shoal::{Config, ErrorCode, Realm, Value};
use std::time::SystemTime;

const MARKER: &str = "zebra-marker-7c1f";

fn key(byte: u8) -> Vec<u8> {
    (0..64u8).map(|i| i ^ byte).collect()
}

fn encrypted(t: &TempRealm, k: &[u8]) -> Config {
    let mut c = t.config(people_schema());
    c.set_encryption_key(Some(k)).unwrap();
    c
}

fn fill(realm: &Realm, n: i64) {
    realm.begin_write().unwrap();
    for i in 0..n {
        let p = realm.create_object("Person", Some(&Value::Int(i))).unwrap();
        p.set("name", format!("{MARKER}-{i}")).unwrap();
        p.set("age", i % 90).unwrap();
    }
    realm.commit().unwrap();
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn encrypted_file_holds_no_plaintext() {
    let t = TempRealm::new();
    {
        let realm = Realm::open(&encrypted(&t, &key(1))).unwrap();
        fill(&realm, 500);
    }
    let raw = std::fs::read(&t.path).unwrap();
    // Needles of five bytes or more: a three-byte one ("Dog") turns up in a megabyte of
    // ciphertext by chance about once in sixteen runs.
    for needle in [
        MARKER.as_bytes(),
        b"Person",
        b"score",
        b"shoal_meta",
        b"catalog",
    ] {
        assert!(
            !contains(&raw, needle),
            "{:?} found in plaintext",
            String::from_utf8_lossy(needle)
        );
    }
    // A plain file of the same data does show the marker: the search itself works.
    let plain = TempRealm::new();
    fill(&Realm::open(&plain.config(people_schema())).unwrap(), 10);
    assert!(contains(
        &std::fs::read(&plain.path).unwrap(),
        MARKER.as_bytes()
    ));
}

#[test]
fn encrypted_realm_reopens_with_the_right_key() {
    let t = TempRealm::new();
    {
        let realm = Realm::open(&encrypted(&t, &key(1))).unwrap();
        fill(&realm, 300);
    }
    let realm = Realm::open(&encrypted(&t, &key(1))).unwrap();
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 300);
    let p = realm
        .find_object("Person", &Value::Int(123))
        .unwrap()
        .unwrap();
    assert_eq!(p.get("name").unwrap(), Value::from(format!("{MARKER}-123")));
    // ages cycle 0..89: 3 full cycles (39 each above 50) and 30 more (none above 50).
    assert_eq!(
        realm
            .query("Person", "age > 50", &[])
            .unwrap()
            .count()
            .unwrap(),
        3 * 39
    );
}

#[test]
fn wrong_missing_and_extra_keys_are_decryption_errors() {
    let t = TempRealm::new();
    fill(&Realm::open(&encrypted(&t, &key(1))).unwrap(), 20);
    let wrong = Realm::open(&encrypted(&t, &key(2))).unwrap_err();
    assert_eq!(wrong.code(), ErrorCode::DecryptionFailed, "{wrong}");
    let missing = Realm::open(&t.config(people_schema())).unwrap_err();
    assert_eq!(missing.code(), ErrorCode::DecryptionFailed, "{missing}");

    let plain = TempRealm::new();
    fill(&Realm::open(&plain.config(people_schema())).unwrap(), 5);
    let extra = Realm::open(&encrypted(&plain, &key(1))).unwrap_err();
    assert_eq!(extra.code(), ErrorCode::DecryptionFailed, "{extra}");
    // Nothing was lost by the failed opens.
    assert_eq!(
        Realm::open(&encrypted(&t, &key(1)))
            .unwrap()
            .objects("Person")
            .unwrap()
            .count()
            .unwrap(),
        20
    );
    assert_eq!(
        Realm::open(&plain.config(people_schema()))
            .unwrap()
            .objects("Person")
            .unwrap()
            .count()
            .unwrap(),
        5
    );
}

#[test]
fn tampered_byte_is_a_decryption_error_not_garbage() {
    let t = TempRealm::new();
    fill(&Realm::open(&encrypted(&t, &key(1))).unwrap(), 2000);
    let raw = std::fs::read(&t.path).unwrap();
    // Format 2: two superblock slots of 8 KiB, then sealed blocks of 4,136 bytes.
    assert_eq!(&raw[..12], b"SHOALENC\x02\0\0\0");
    // Flip one byte in the middle of every data block's ciphertext, so whichever page is read
    // first fails (the superblocks are intact: the file opens, its pages do not verify).
    let mut data_tampered = raw.clone();
    let mut at = 16384 + 24 + 100;
    while at < data_tampered.len() {
        data_tampered[at] ^= 0x40;
        at += 4136;
    }
    std::fs::write(&t.path, &data_tampered).unwrap();
    let result = Realm::open(&encrypted(&t, &key(1))).and_then(|r| r.objects("Person")?.count());
    let err = result.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DecryptionFailed, "{err}");
    // Both superblocks tampered: the file is refused at open.
    let mut header_tampered = raw.clone();
    header_tampered[200] ^= 1;
    header_tampered[8192 + 200] ^= 1;
    std::fs::write(&t.path, &header_tampered).unwrap();
    let err = Realm::open(&encrypted(&t, &key(1))).unwrap_err();
    assert_eq!(err.code(), ErrorCode::DecryptionFailed, "{err}");
    // The untouched file still opens with everything in it.
    std::fs::write(&t.path, &raw).unwrap();
    let realm = Realm::open(&encrypted(&t, &key(1))).unwrap();
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 2000);
}

#[test]
fn an_encrypted_realm_of_format_1_is_upgraded_when_opened_for_writing() {
    // Written by the format-1 code with the key [7; 64]: 300 people with ids 0..300.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format1-encrypted.realm");
    let t = TempRealm::new();
    std::fs::copy(&fixture, &t.path).unwrap();
    let mut config = Config::new(&t.path);
    config.set_encryption_key(Some(&[7u8; 64])).unwrap();
    // Read-only cannot upgrade: a clear error, the file untouched.
    let mut read_only = config.clone();
    read_only.set_read_only(true);
    let err = Realm::open(&read_only).unwrap_err();
    assert_eq!(err.code(), ErrorCode::FormatUpgradeRequired, "{err}");
    assert_eq!(
        std::fs::read(&t.path).unwrap(),
        std::fs::read(&fixture).unwrap()
    );
    // A wrong key is refused before anything is written.
    let mut wrong = config.clone();
    wrong.set_encryption_key(Some(&[8u8; 64])).unwrap();
    assert_eq!(
        Realm::open(&wrong).unwrap_err().code(),
        ErrorCode::DecryptionFailed
    );
    assert_eq!(
        std::fs::read(&t.path).unwrap(),
        std::fs::read(&fixture).unwrap()
    );
    {
        let realm = Realm::open(&config).unwrap();
        let people = realm.objects("Person").unwrap();
        assert_eq!(people.count().unwrap(), 300);
        let p = realm
            .find_object("Person", &Value::Int(299))
            .unwrap()
            .unwrap();
        assert_eq!(p.get("name").unwrap(), Value::String("person 299".into()));
        realm.begin_write().unwrap();
        realm
            .create_object("Person", Some(&Value::Int(300)))
            .unwrap();
        realm.commit().unwrap();
    }
    let raw = std::fs::read(&t.path).unwrap();
    assert_eq!(&raw[..12], b"SHOALENC\x02\0\0\0", "now format 2");
    assert!(!std::path::Path::new(&format!("{}.upgrade", t.path)).exists());
    let realm = Realm::open(&config).unwrap();
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 301);
}

#[test]
fn truncated_encrypted_file_is_detected() {
    let t = TempRealm::new();
    fill(&Realm::open(&encrypted(&t, &key(1))).unwrap(), 2000);
    let len = std::fs::metadata(&t.path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&t.path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(
        Realm::open(&encrypted(&t, &key(1))).unwrap_err().code(),
        ErrorCode::DecryptionFailed
    );
}

#[test]
fn key_length_must_be_64_bytes() {
    let mut c = Config::new("x.realm");
    for len in [0usize, 32, 63, 65, 128] {
        assert_eq!(
            c.set_encryption_key(Some(&vec![1u8; len]))
                .unwrap_err()
                .code(),
            ErrorCode::InvalidArgument
        );
    }
    c.set_encryption_key(Some(&[1u8; 64])).unwrap();
    assert!(c.is_encrypted());
    c.set_encryption_key(None).unwrap();
    assert!(!c.is_encrypted());
}

#[test]
fn read_only_realm_never_touches_the_file() {
    let t = TempRealm::new();
    fill(&Realm::open(&t.config(people_schema())).unwrap(), 100);
    let before = std::fs::read(&t.path).unwrap();
    let mtime = std::fs::metadata(&t.path).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    {
        let mut c = t.config(people_schema());
        c.set_read_only(true);
        let realm = Realm::open(&c).unwrap();
        assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 100);
        assert_eq!(
            realm
                .query("Person", "age < 10", &[])
                .unwrap()
                .count()
                .unwrap(),
            20
        );
        assert_eq!(realm.begin_write().unwrap_err().code(), ErrorCode::ReadOnly);
        assert_eq!(realm.compact().unwrap_err().code(), ErrorCode::ReadOnly);
        realm.refresh().unwrap();
    }
    assert_eq!(std::fs::read(&t.path).unwrap(), before, "bytes unchanged");
    let after: SystemTime = std::fs::metadata(&t.path).unwrap().modified().unwrap();
    assert_eq!(after, mtime, "mtime unchanged");
}

#[test]
fn read_only_errors_for_missing_file_and_other_schema() {
    let t = TempRealm::new();
    let mut c = t.config(people_schema());
    c.set_read_only(true);
    assert_eq!(Realm::open(&c).unwrap_err().code(), ErrorCode::FileNotFound);
    assert!(
        !std::path::Path::new(&t.path).exists(),
        "a read-only open creates nothing"
    );

    fill(&Realm::open(&t.config(people_schema())).unwrap(), 1);
    let mut other = people_schema();
    other
        .add_property(
            "Dog",
            "color",
            shoal::PropertyType::String,
            shoal::PropertyFlags::NULLABLE,
            None,
        )
        .unwrap();
    let mut c = t.config(other);
    c.set_read_only(true);
    assert_eq!(
        Realm::open(&c).unwrap_err().code(),
        ErrorCode::MigrationNeeded
    );
}

#[test]
fn read_only_encrypted_realm_reads() {
    let t = TempRealm::new();
    fill(&Realm::open(&encrypted(&t, &key(3))).unwrap(), 50);
    let before = std::fs::read(&t.path).unwrap();
    let mut c = encrypted(&t, &key(3));
    c.set_read_only(true);
    let realm = Realm::open(&c).unwrap();
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 50);
    drop(realm);
    assert_eq!(std::fs::read(&t.path).unwrap(), before);
}

#[test]
fn in_memory_realms_share_data_and_leave_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mem.realm").to_string_lossy().into_owned();
    let mut c = Config::new(path.clone());
    c.set_schema(people_schema()).unwrap();
    c.set_in_memory(true);
    let a = Realm::open(&c).unwrap();
    let b = Realm::open(&c).unwrap();
    fill(&a, 10);
    b.refresh().unwrap();
    assert_eq!(
        b.objects("Person").unwrap().count().unwrap(),
        10,
        "two handles share data"
    );
    drop(a);
    drop(b);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing on disk"
    );
    // After the last handle closed the data is gone.
    let c2 = Realm::open(&c).unwrap();
    assert_eq!(c2.objects("Person").unwrap().count().unwrap(), 0);
}

fn compact_shrinks(config: Config) {
    let realm = Realm::open(&config).unwrap();
    realm.begin_write().unwrap();
    for i in 0..20_000i64 {
        let p = realm.create_object("Person", Some(&Value::Int(i))).unwrap();
        p.set("name", format!("{MARKER}-{i}-{}", "x".repeat(40)))
            .unwrap();
    }
    realm.commit().unwrap();
    realm.begin_write().unwrap();
    realm
        .query("Person", "id >= 100", &[])
        .unwrap()
        .delete_all()
        .unwrap();
    realm.commit().unwrap();
    let big = std::fs::metadata(config.path()).unwrap().len();
    let space = realm.file_space().unwrap();
    realm.compact().unwrap();
    let small = std::fs::metadata(config.path()).unwrap().len();
    assert!(
        small < big / 2,
        "compaction shrank {big} to {small}; space before {space:?} after {:?}",
        realm.file_space().unwrap()
    );
    assert_eq!(realm.objects("Person").unwrap().count().unwrap(), 100);
    drop(realm);
    let realm = Realm::open(&config).unwrap();
    let p = realm
        .find_object("Person", &Value::Int(42))
        .unwrap()
        .unwrap();
    assert!(p.get("name").unwrap().as_str().unwrap().starts_with(MARKER));
}

#[test]
fn compaction_shrinks_the_file_and_keeps_data() {
    let t = TempRealm::new();
    compact_shrinks(t.config(people_schema()));
}

#[test]
fn compaction_keeps_encrypted_files_encrypted() {
    let t = TempRealm::new();
    compact_shrinks(encrypted(&t, &key(9)));
    assert!(!contains(
        &std::fs::read(&t.path).unwrap(),
        MARKER.as_bytes()
    ));
    assert_eq!(
        Realm::open(&t.config(people_schema())).unwrap_err().code(),
        ErrorCode::DecryptionFailed
    );
}

#[test]
fn compaction_refused_while_another_handle_is_open() {
    let t = TempRealm::new();
    let a = open_people(&t);
    let b = open_people(&t);
    assert_eq!(a.compact().unwrap_err().code(), ErrorCode::RealmInUse);
    drop(b);
    a.compact().unwrap();
    a.begin_write().unwrap();
    assert_eq!(
        a.compact().unwrap_err().code(),
        ErrorCode::AlreadyInWriteTransaction
    );
    a.cancel_write().unwrap();
}

#[test]
fn compact_on_open_rule_gets_sizes_and_compacts() {
    let t = TempRealm::new();
    {
        let realm = open_people(&t);
        fill(&realm, 20_000);
        realm.begin_write().unwrap();
        realm.objects("Person").unwrap().delete_all().unwrap();
        realm.commit().unwrap();
    }
    let big = std::fs::metadata(&t.path).unwrap().len();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let mut c = t.config(people_schema());
    let s = seen.clone();
    c.set_should_compact(move |total, used| {
        *s.lock().unwrap() = Some((total, used));
        used < total / 2
    });
    let realm = Realm::open(&c).unwrap();
    let (total, used) = seen.lock().unwrap().expect("rule was called");
    assert_eq!(total, big);
    assert!(used < total);
    assert!(std::fs::metadata(&t.path).unwrap().len() < big);
    assert!(realm.is_empty().unwrap());
}

fn file_size(t: &TempRealm) -> u64 {
    std::fs::metadata(&t.path).unwrap().len()
}

/// Commits `ids` with 2 KB photos, then deletes `gone`, in one transaction.
fn write_and_delete(realm: &Realm, ids: std::ops::Range<i64>, gone: std::ops::Range<i64>) {
    realm.begin_write().unwrap();
    for id in ids {
        let p = realm
            .create_object("Person", Some(&Value::Int(id)))
            .unwrap();
        p.set("photo", vec![id as u8; 2_000]).unwrap();
    }
    for id in gone {
        if let Some(p) = realm.find_object("Person", &Value::Int(id)).unwrap() {
            p.delete().unwrap();
        }
    }
    realm.commit().unwrap();
}

#[test]
fn a_file_of_many_writes_and_deletes_stays_bounded_and_compacts_to_its_fresh_size() {
    let t = TempRealm::new();
    let realm = open_people(&t);
    realm.compact().unwrap();
    let fresh = file_size(&t);

    // 5 MB in one transaction, then all of it deleted: compaction gives it all back.
    write_and_delete(&realm, 0..2_500, 0..0);
    write_and_delete(&realm, 0..0, 0..2_500);
    realm.compact().unwrap();
    let after_bulk = file_size(&t);

    // 400 transactions of 10 new objects each, deleting the previous 10: 8 MB written, never
    // more than 20 KB live. The file holds the live data and what redb keeps free for reuse,
    // not everything ever written.
    for round in 0..400 {
        let first = 10_000 + round * 10;
        write_and_delete(&realm, first..first + 10, first - 10..first);
    }
    let after_churn = file_size(&t);
    let (_, used) = realm.file_space().unwrap();
    write_and_delete(&realm, 0..0, 0..20_000);
    realm.compact().unwrap();
    let compacted = file_size(&t);
    println!(
        "fresh {fresh} B; 5 MB written, deleted, compacted: {after_bulk} B; after 8 MB of churn: \
         {after_churn} B ({used} B in use); all deleted and compacted: {compacted} B"
    );
    assert!(
        after_bulk < fresh + (64 << 10),
        "{after_bulk} vs fresh {fresh}"
    );
    assert!(used < 1 << 20, "{used} B in use after the churn");
    assert!(after_churn < 2 << 20, "{after_churn} B after the churn");
    assert!(
        compacted < fresh + (64 << 10),
        "{compacted} vs fresh {fresh}"
    );
    assert!(realm.is_empty().unwrap());
}

#[test]
fn a_second_process_refused_an_encrypted_realm_leaves_the_file_untouched() {
    // The refused open is in another process: run this test binary as the second process.
    if std::env::var("SHOAL_SECOND_OPENER").is_ok() {
        let path = std::env::var("SHOAL_SECOND_OPENER").unwrap();
        let mut config = Config::new(&path);
        config.set_schema(people_schema()).unwrap();
        config.set_encryption_key(Some(&key(3))).unwrap();
        let err = Realm::open(&config).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FileInUse, "{err}");
        return;
    }
    let t = TempRealm::new();
    let realm = Realm::open(&encrypted(&t, &key(3))).unwrap();
    fill(&realm, 10);
    let before = std::fs::read(&t.path).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_second_process_refused_an_encrypted_realm_leaves_the_file_untouched",
        ])
        .env("SHOAL_SECOND_OPENER", &t.path)
        .status()
        .unwrap();
    assert!(status.success(), "the second process got FILE_IN_USE");
    assert_eq!(
        std::fs::read(&t.path).unwrap(),
        before,
        "not one byte written"
    );
    realm.begin_write().unwrap();
    for i in 10..20 {
        realm.create_object("Person", Some(&Value::Int(i))).unwrap();
    }
    realm.commit().unwrap();
    drop(realm);
    assert_eq!(
        Realm::open(&encrypted(&t, &key(3)))
            .unwrap()
            .objects("Person")
            .unwrap()
            .count()
            .unwrap(),
        20
    );
}
