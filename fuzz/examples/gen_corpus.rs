//! Writes the seed corpus, `fuzz/corpus/<target>/<name>`: a handful of valid inputs per
//! target, made with the real encoders (messages, changesets of real transactions, schema and
//! user JSON, auth bodies). Run from anywhere:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus
//! ```
//!
//! Existing seeds of the same name are overwritten; others (inputs the fuzzer found and
//! someone chose to keep) are left alone. Changesets carry clock stamps and random replica
//! ids, so their bytes change from one run to the next.

use std::path::{Path, PathBuf};

use shoal::protocol::auth::{encode_token_string, TokenData, ACCESS_REFRESH};
use shoal::protocol::sync::{
    DownloadChangeset, DownloadProgress, Message, UploadChangeset, UploadProgress,
};
use shoal::{Realm, Value};
use shoal_fuzz::changeset::join;
use shoal_fuzz::fixtures::{all_types_schema, in_memory_config, populate};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let (merge, plain) = changesets();
    let mut all_merge = merge.clone();
    all_merge.extend(plain.iter().cloned());

    let mut seeds = Seeds::new(root.join("changeset"));
    seeds.add("merge-all", join(&merge));
    seeds.add("plain-all", join(&plain));
    for (n, c) in merge.iter().enumerate() {
        seeds.add(&format!("merge-{n}"), c.clone());
    }
    seeds.add("twice", join(&[merge[0].clone(), merge[0].clone()]));

    let mut seeds = Seeds::new(root.join("sync_message"));
    for message in messages(&merge) {
        seeds.add(&message.name().to_ascii_lowercase(), message.encode());
    }

    let mut seeds = Seeds::new(root.join("query"));
    for (n, q) in QUERIES.iter().enumerate() {
        seeds.add(&format!("q{n:02}"), q.as_bytes().to_vec());
    }

    let mut seeds = Seeds::new(root.join("schema_json"));
    seeds.add("all-types", all_types_schema().to_json().into_bytes());
    seeds.add(
        "bare-array",
        br#"[{"name":"Person","primary_key":"name","properties":[{"name":"name","type":"string"},{"name":"born","type":"date","nullable":true},{"name":"photo","type":"data"},{"name":"pets","type":"object","target":"Pet","list":true}]},{"name":"Pet","properties":[{"name":"age","type":"int","indexed":true}]}]"#.to_vec(),
    );
    seeds.add("empty", br#"{"classes":[]}"#.to_vec());

    let mut seeds = Seeds::new(root.join("user_json"));
    let data = TokenData {
        identity: "0123abcd".into(),
        path: None,
        expires: 4_000_000_000,
        access: vec![ACCESS_REFRESH.into()],
        is_admin: false,
        app_id: "com.example".into(),
        token_id: Some("tid".into()),
        refresh_token_id: None,
    };
    let token = encode_token_string(&serde_json::to_vec(&data).expect("JSON"), &[7; 64]);
    seeds.add(
        "shoal",
        serde_json::json!({"authUrl": "http://127.0.0.1:9080/auth", "identity": "0123abcd",
            "isAdmin": false, "userToken": {"token": token, "token_data": data}})
        .to_string()
        .into_bytes(),
    );
    seeds.add("ros", br#"{"authUrl":"http:\/\/192.168.1.151:9080\/auth","userToken":{"token":"eyJ=:sig==","token_data":{"identity":"689d90c1422a202fd59c4603c4e4f6cc","path":"","expires":1816358184,"access":["unknown"],"is_admin":false}},"realms":[]}"#.to_vec());
    seeds.add("flat", br#"{"authUrl":"https://h:443/auth","userToken":{"value":"v","identity":"i","isAdmin":true,"expires":1}}"#.to_vec());

    let mut seeds = Seeds::new(root.join("auth_body"));
    for (name, selector, body) in AUTH_BODIES {
        let mut bytes = vec![*selector];
        bytes.extend_from_slice(body.as_bytes());
        seeds.add(name, bytes);
    }

    check_valid(&root);
}

/// The seeds are inputs the code under test accepts (else they would teach the fuzzer little):
/// the changesets integrate, the queries, schemas and users parse.
fn check_valid(root: &Path) {
    let read = |target: &str, name: &str| {
        std::fs::read(root.join(target).join(name)).expect("read a seed")
    };
    let realm = Realm::open(&in_memory_config(None, true)).expect("open");
    let merged = read("changeset", "merge-all");
    realm
        .integrate_changesets(&shoal_fuzz::changeset::split(&merged))
        .expect("the merge changesets integrate");

    let realm = Realm::open(&in_memory_config(Some(all_types_schema()), false)).expect("open");
    populate(&realm);
    let args = shoal_fuzz::query::arguments(&realm);
    for q in QUERIES {
        if let Err(e) = realm.query(shoal_fuzz::query::CLASS, q, &args) {
            panic!("the seed query {q:?} is refused: {e:?}");
        }
    }
    for name in ["all-types", "bare-array", "empty"] {
        let text = String::from_utf8(read("schema_json", name)).expect("UTF-8");
        shoal::Schema::from_json(&text).expect("the seed schema parses");
    }
    let dir = tempfile::tempdir().expect("a temporary folder");
    let app = shoal::App::new(dir.path(), "gen").expect("an app");
    for name in ["shoal", "ros", "flat"] {
        let text = String::from_utf8(read("user_json", name)).expect("UTF-8");
        if let Err(e) = app.user_from_json(&text) {
            panic!("the seed user {name} does not load: {e:?}");
        }
    }
}

/// Writes the seeds of one target.
struct Seeds(PathBuf);

impl Seeds {
    fn new(dir: PathBuf) -> Seeds {
        std::fs::create_dir_all(&dir).expect("create the corpus folder");
        Seeds(dir)
    }

    fn add(&mut self, name: &str, bytes: Vec<u8>) {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write a seed");
        println!("{}", path.display());
    }
}

/// The changesets of a realm with merge metadata and of a plain one, both of
/// `all_types_schema`, after filling them and editing them some more (lists, counters,
/// deletions, NULLs).
fn changesets() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut out = Vec::new();
    for merge in [true, false] {
        let realm = Realm::open(&in_memory_config(Some(all_types_schema()), merge)).expect("open");
        populate(&realm);
        edit(&realm);
        let changesets = realm
            .history_since(0)
            .expect("history")
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect();
        out.push(changesets);
    }
    let plain = out.pop().expect("plain");
    (out.pop().expect("merge"), plain)
}

fn edit(realm: &Realm) {
    realm.begin_write().expect("begin");
    let three = realm
        .find_object("AllTypes", &Value::Int(3))
        .expect("find")
        .expect("AllTypes 3");
    three.add_int("i", 5).expect("add_int");
    three.set("ns", Value::Null).expect("set");
    let list = three.list("li").expect("list");
    list.insert(0, 42_i64).expect("insert");
    list.set(1, -1_i64).expect("set");
    list.move_item(0, 2).expect("move");
    list.erase(1).expect("erase");
    three.list("ls").expect("list").clear().expect("clear");
    realm.commit().expect("commit");

    realm.begin_write().expect("begin");
    let dog = realm.objects("Dog").expect("dogs").get(1).expect("a dog");
    dog.delete().expect("delete");
    realm
        .find_object("AllTypes", &Value::Int(0))
        .expect("find")
        .expect("AllTypes 0")
        .delete()
        .expect("delete");
    realm
        .create_object("Tag", Some(&Value::from("z")))
        .expect("create");
    realm.commit().expect("commit");
}

/// One message of every kind.
fn messages(changesets: &[Vec<u8>]) -> Vec<Message> {
    let data = changesets.last().cloned().unwrap_or_default();
    vec![
        Message::Bind {
            session: 1,
            path: "/0123abcd/tasks".into(),
            access_token: "eyJ.c2ln".into(),
            client_file_ident: 0,
            client_file_salt: 0,
        },
        Message::Ident {
            session: 1,
            client_file_ident: 7,
            salt: 0x1234_5678_9abc_def0,
        },
        Message::Upload {
            session: 1,
            progress: UploadProgress {
                client_version: 3,
                last_integrated_server_version: 2,
            },
            changesets: vec![UploadChangeset {
                client_version: 3,
                stamp: 1 << 40,
                data: data.clone(),
            }],
        },
        Message::Download {
            session: 1,
            acked_client_version: 3,
            progress: DownloadProgress {
                server_version: 9,
                downloaded_bytes: 300,
                downloadable_bytes: 0,
            },
            changesets: vec![DownloadChangeset {
                server_version: 9,
                origin_file_ident: 2,
                origin_client_version: 5,
                stamp: 1 << 41,
                data,
            }],
        },
        Message::Mark {
            session: 1,
            request: 4,
        },
        Message::Refresh {
            session: 1,
            access_token: "eyJ.c2ln".into(),
        },
        Message::Unbind { session: 1 },
        Message::error(0, 104, "bad syntax", false),
        Message::Ping {
            timestamp: 1_700_000_000_000,
        },
        Message::Pong {
            timestamp: 1_700_000_000_000,
        },
        Message::UploadPart {
            session: 1,
            total_bytes: 1000,
            data: vec![b'S'; 64],
        },
        Message::DownloadPart {
            session: 1,
            total_bytes: 1000,
            data: vec![b'S'; 64],
        },
    ]
}

/// Queries of `AllTypes` using every operator, clause and argument type.
const QUERIES: &[&str] = &[
    "TRUEPREDICATE",
    "i > $0 AND s BEGINSWITH[c] 'a'",
    "ns == nil OR ni != NULL",
    "d >= 1.5 && f < $7 || NOT b == true",
    "s CONTAINS[c] $1 SORT(i DESC, id ASC) LIMIT(3)",
    "ns ENDSWITH 'b' DISTINCT(b)",
    "s LIKE '?b*'",
    "t > T1700000000:500 AND nt < 2024-01-02@03:04:05",
    "bin == B64\"AgI=\" OR nbin == $6",
    "dog == $8 OR dog.name == 'Rex'",
    "dogs.age > 2",
    "dogs.name != '' AND dogs.@max.age == 0x6 AND dogs.@min.age < 2.5e-3",
    "dogs.@count > 1 AND li.@count == 2",
    "li.@sum > 10 OR ld.@avg < 0 OR lf.@min == 0 OR lt.@max > $5",
    "ls ==[c] 'ab' AND ls.@size >= 1",
    "tag.name == 'x' OR tag.name = \"y\\u00e9\"",
    "!(i >= 0 AND i <= 10) SORT(s ASC) DISTINCT(s, b) LIMIT(1)",
    "FALSEPREDICATE",
    "(((i == 1)))",
];

/// Auth requests: (name, selector byte, body). See `shoal_fuzz::auth_body` for the selector.
const AUTH_BODIES: &[(&str, u8, &str)] = &[
    (
        "register",
        0,
        r#"{"provider":"password","data":"bob","app_id":"a","user_info":{"register":true,"password":"pw"}}"#,
    ),
    (
        "login",
        0,
        r#"{"provider":"password","data":"realm-admin","user_info":{"password":""}}"#,
    ),
    (
        "debug",
        0,
        r#"{"provider":"debug","data":"carol","user_info":{}}"#,
    ),
    (
        "realm",
        0,
        r#"{"provider":"realm","data":"$TOKEN","path":"/~/tasks","app_id":"a"}"#,
    ),
    (
        "realm-other",
        4,
        r#"{"provider":"realm","data":"$TOKEN","path":"/admin/x"}"#,
    ),
    ("revoke", 1, r#"{"token":"$TOKEN"}"#),
    ("revoke-by-alice", 5, r#"{"token":"$TOKEN"}"#),
    (
        "password",
        2,
        r#"{"new_password":"n","user_id":"realm-admin"}"#,
    ),
    ("password-own", 6, r#"{"new_password":"n"}"#),
    ("lookup", 3, "password/realm-admin"),
    ("not-json", 16, r#"{"provider":"debug","data":"x"}"#),
];
