//! A canonical JSON image of a realm's content, independent of local object keys: used to
//! check that two copies (a replayed history, two synced devices) hold the same data.

use crate::error::Result;
use crate::history::GlobalId;
use crate::store::view::View;
use crate::store::write::{gid_of, or_default};
use crate::value::Value;
use serde_json::{json, Map, Value as Json};

fn gid_json(id: &GlobalId) -> Json {
    match id {
        GlobalId::Int(i) => json!(i),
        GlobalId::String(s) => json!(s),
        GlobalId::Generated { file, seq } => json!(format!("{file:016x}-{seq}")),
    }
}

fn value_json(view: View<'_>, v: &Value) -> Result<Json> {
    Ok(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) => json!({"float": f}),
        Value::Double(d) => json!({"double": d}),
        Value::String(s) => json!(s),
        Value::Binary(b) => json!({"binary": b}),
        Value::Timestamp(t) => json!({"timestamp": [t.seconds, t.nanos]}),
        Value::Link(l) => {
            let class = view.catalog().class_by_id_required(l.class_id)?;
            json!({"link": gid_json(&gid_of(view, class, l.key)?)})
        }
    })
}

/// The content of every class: `{"Class": {"<gid>": {"prop": value, ...}}}` with keys sorted
/// (serde_json's map is ordered), plus the schema.
pub(crate) fn dump(view: View<'_>) -> Result<String> {
    let mut classes = Map::new();
    for class in &view.catalog().classes {
        let mut objects = Map::new();
        for key in view.live_keys(class.id)? {
            let gid = gid_of(view, class, key)?;
            let mut props = Map::new();
            for prop in &class.props {
                let value = if prop.is_list() {
                    let items = view.list(class.id, prop, key)?;
                    Json::Array(
                        items
                            .iter()
                            .map(|v| value_json(view, v))
                            .collect::<Result<_>>()?,
                    )
                } else {
                    let v = or_default(view.get(class, prop, key)?.as_ref(), prop).to_owned();
                    value_json(view, &v)?
                };
                props.insert(prop.name.clone(), value);
            }
            objects.insert(gid_json(&gid).to_string(), Json::Object(props));
        }
        classes.insert(class.name.clone(), Json::Object(objects));
    }
    let schema: Json =
        serde_json::from_str(&view.catalog().to_schema().to_json()).unwrap_or(Json::Null);
    Ok(json!({"schema": normalize_schema(schema), "objects": classes}).to_string())
}

/// Sorts classes and properties by name so that declaration order does not matter.
fn normalize_schema(mut schema: Json) -> Json {
    if let Some(classes) = schema.get_mut("classes").and_then(Json::as_array_mut) {
        for c in classes.iter_mut() {
            if let Some(props) = c.get_mut("properties").and_then(Json::as_array_mut) {
                props.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
            }
        }
        classes.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    schema
}
