use shoal::*;
fn main() {
    let n: i64 = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.realm").to_string_lossy().into_owned();
    let mut s = Schema::new();
    s.add_class("Person", Some("id")).unwrap();
    s.add_property("Person", "id", PropertyType::Int, PropertyFlags::NONE, None).unwrap();
    s.add_property("Person", "name", PropertyType::String, PropertyFlags::NONE, None).unwrap();
    s.add_property("Person", "age", PropertyType::Int, PropertyFlags::NONE, None).unwrap();
    s.add_property("Person", "score", PropertyType::Double, PropertyFlags::NONE, None).unwrap();
    let mut c = Config::new(path);
    c.set_schema(s).unwrap();
    let realm = Realm::open(&c).unwrap();
    let (kn, ka, ks) = (realm.property_key("Person", "name").unwrap(), realm.property_key("Person", "age").unwrap(), realm.property_key("Person", "score").unwrap());
    let t = std::time::Instant::now();
    realm.begin_write().unwrap();
    for id in 0..n {
        let o = realm.create_object("Person", Some(&Value::Int(id))).unwrap();
        o.set_by_key(kn, format!("name-{id}")).unwrap();
        o.set_by_key(ka, id % 100).unwrap();
        o.set_by_key(ks, id as f64 * 0.5).unwrap();
    }
    let t1 = t.elapsed();
    realm.commit().unwrap();
    eprintln!("ops {:?} total {:?}", t1, t.elapsed());
    if std::env::args().nth(2).is_some() { return; }
    let t = std::time::Instant::now();
    let mut rng = 12345u64;
    for _ in 0..100_000 {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        let k = (rng % n as u64) as i64;
        let o = realm.find_object("Person", &Value::Int(k)).unwrap().unwrap();
        let _ = o.get_by_key(kn).unwrap();
    }
    eprintln!("lookups {:?}", t.elapsed());
}
