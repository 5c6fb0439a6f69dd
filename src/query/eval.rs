//! Running a bound predicate over a class.
//!
//! Rows are visited chunk by chunk: for each chunk of [`CHUNK_ROWS`] objects the liveness
//! bitmap and every directly referenced column are fetched once, then each live row is tested.
//! A comparison of an INT column with a constant reads the integers straight from the encoded
//! chunk. Equality on an indexed property or primary key at the top of the predicate (alone or
//! in an AND) uses the index and tests only its candidates.

use crate::error::Result;
use crate::query::bind::{resolve, Pred, ResolvedPath, Side};
use crate::query::parser::{CollectionOp, CompareOp};
use crate::store::catalog::{Catalog, ClassInfo, PropInfo};
use crate::store::chunk::CHUNK_ROWS;
use crate::store::view::{chunk_of, ChunkData, View};
use crate::store::write::or_default;
use crate::value::{compare_values, ObjLink, Value, ValueRef};
use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// A predicate with every path resolved for one evaluation.
enum Node {
    True,
    False,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Cmp {
        left: Operand,
        op: CompareOp,
        right: Operand,
        ci: bool,
    },
}

enum Operand {
    Path(ResolvedPath),
    Const(Value),
}

fn prepare(catalog: &Catalog, class: &ClassInfo, pred: &Pred) -> Result<Node> {
    Ok(match pred {
        Pred::True => Node::True,
        Pred::False => Node::False,
        Pred::And(v) => Node::And(
            v.iter()
                .map(|p| prepare(catalog, class, p))
                .collect::<Result<_>>()?,
        ),
        Pred::Or(v) => Node::Or(
            v.iter()
                .map(|p| prepare(catalog, class, p))
                .collect::<Result<_>>()?,
        ),
        Pred::Not(p) => Node::Not(Box::new(prepare(catalog, class, p)?)),
        Pred::Cmp {
            left,
            op,
            right,
            ci,
        } => Node::Cmp {
            left: prepare_side(catalog, class, left)?,
            op: *op,
            right: prepare_side(catalog, class, right)?,
            ci: *ci,
        },
    })
}

fn prepare_side(catalog: &Catalog, class: &ClassInfo, side: &Side) -> Result<Operand> {
    Ok(match side {
        Side::Path(p) => Operand::Path(resolve(catalog, class, p)?),
        Side::Const(v) => Operand::Const(v.clone()),
    })
}

/// The columns of one chunk, fetched once for all its rows.
struct ChunkColumns<'a> {
    chunk: u64,
    data: HashMap<u32, ChunkData<'a>>,
}

struct Ctx<'a> {
    view: View<'a>,
    catalog: &'a Catalog,
    class: &'a ClassInfo,
}

impl<'a> Ctx<'a> {
    fn column_value<'c>(
        &self,
        cols: &'c mut ChunkColumns<'a>,
        prop: &PropInfo,
        key: u64,
    ) -> Result<Value> {
        let (chunk, row) = chunk_of(key);
        if chunk != cols.chunk {
            return Ok(or_default(self.view.get(self.class, prop, key)?.as_ref(), prop).to_owned());
        }
        let data = match cols.data.entry(prop.id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.view.chunk(self.class.id, prop.id, chunk)?),
        };
        let view = data.view(prop.link_class())?;
        Ok(or_default(view.get(row)?, prop).to_owned())
    }

    /// Every value a path yields for object `key` (several when it crosses a list: ANY).
    fn path_values(
        &self,
        cols: &mut ChunkColumns<'a>,
        path: &ResolvedPath,
        key: u64,
    ) -> Result<Vec<Value>> {
        let mut objects = vec![ObjLink {
            class_id: self.class.id,
            key,
        }];
        let n = path.props.len();
        for (i, (class_id, prop)) in path.props.iter().enumerate() {
            let last = i + 1 == n;
            let class = self.catalog.class_by_id_required(*class_id)?;
            let mut values = Vec::new();
            for obj in &objects {
                if prop.is_list() {
                    let items = self.view.list(*class_id, prop, obj.key)?;
                    if last && path.op.is_some() {
                        values.push(self.collection_op(path, &items)?);
                    } else {
                        values.extend(items);
                    }
                } else if i == 0 {
                    values.push(self.column_value(cols, prop, obj.key)?);
                } else {
                    values.push(
                        or_default(self.view.get(class, prop, obj.key)?.as_ref(), prop).to_owned(),
                    );
                }
            }
            if last {
                return Ok(values);
            }
            objects = values
                .into_iter()
                .filter_map(|v| match v {
                    Value::Link(l) => Some(l),
                    _ => None,
                })
                .filter(|l| self.view.is_live(l.class_id, l.key).unwrap_or(false))
                .collect();
            if objects.is_empty() {
                // A NULL link: the path has no value, which compares like NULL.
                return Ok(vec![Value::Null]);
            }
        }
        Ok(Vec::new())
    }

    fn collection_op(&self, path: &ResolvedPath, items: &[Value]) -> Result<Value> {
        let op = path.op.expect("collection op");
        if op == CollectionOp::Count {
            return Ok(Value::Int(items.len() as i64));
        }
        let numbers: Vec<Value> = match &path.aggregate {
            Some((class_id, prop)) => {
                let class = self.catalog.class_by_id_required(*class_id)?;
                let mut out = Vec::new();
                for v in items {
                    if let Value::Link(l) = v {
                        out.push(
                            or_default(self.view.get(class, prop, l.key)?.as_ref(), prop)
                                .to_owned(),
                        );
                    }
                }
                out
            }
            None => items.to_vec(),
        };
        Ok(aggregate(op, numbers.iter().map(Value::as_ref)))
    }

    fn operand_values(
        &self,
        cols: &mut ChunkColumns<'a>,
        op: &Operand,
        key: u64,
    ) -> Result<Vec<Value>> {
        match op {
            Operand::Const(v) => Ok(vec![v.clone()]),
            Operand::Path(p) => self.path_values(cols, p, key),
        }
    }

    fn test(&self, cols: &mut ChunkColumns<'a>, node: &Node, key: u64) -> Result<bool> {
        Ok(match node {
            Node::True => true,
            Node::False => false,
            Node::And(items) => {
                for n in items {
                    if !self.test(cols, n, key)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Or(items) => {
                for n in items {
                    if self.test(cols, n, key)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::Not(n) => !self.test(cols, n, key)?,
            Node::Cmp {
                left,
                op,
                right,
                ci,
            } => {
                if let (Operand::Path(p), Operand::Const(Value::Int(c))) = (left, right) {
                    if let Some(prop) = p
                        .direct_column()
                        .filter(|p| p.ty == crate::value::PropertyType::Int)
                    {
                        if let Some(v) = self.fast_int(cols, prop, key)? {
                            return Ok(matches_ord(*op, v.cmp(c)));
                        }
                    }
                }
                let lv = self.operand_values(cols, left, key)?;
                let rv = self.operand_values(cols, right, key)?;
                lv.iter()
                    .any(|l| rv.iter().any(|r| compare(l.as_ref(), *op, r.as_ref(), *ci)))
            }
        })
    }

    /// Reads an INT column value straight from its encoded chunk (None: fall back).
    fn fast_int(
        &self,
        cols: &mut ChunkColumns<'a>,
        prop: &PropInfo,
        key: u64,
    ) -> Result<Option<i64>> {
        let (chunk, row) = chunk_of(key);
        if chunk != cols.chunk {
            return Ok(None);
        }
        let data = match cols.data.entry(prop.id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.view.chunk(self.class.id, prop.id, chunk)?),
        };
        let view = data.view(0)?;
        Ok(match view.int_at(row)? {
            Some(v) => Some(v),
            None if !prop.is_nullable() => Some(0),
            None => None,
        })
    }
}

fn matches_ord(op: CompareOp, ord: Ordering) -> bool {
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        _ => false,
    }
}

/// Compares two values with a query operator.
pub(crate) fn compare(l: ValueRef<'_>, op: CompareOp, r: ValueRef<'_>, ci: bool) -> bool {
    match op {
        CompareOp::Eq | CompareOp::Ne => {
            let equal = match (l, r) {
                (ValueRef::String(a), ValueRef::String(b)) if ci => {
                    a.to_lowercase() == b.to_lowercase()
                }
                (ValueRef::Null, ValueRef::Null) => true,
                (ValueRef::Null, _) | (_, ValueRef::Null) => false,
                _ => compare_values(l, r) == Some(Ordering::Equal),
            };
            equal == (op == CompareOp::Eq)
        }
        CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge => {
            if l.is_null() || r.is_null() {
                return false;
            }
            compare_values(l, r).is_some_and(|o| matches_ord(op, o))
        }
        CompareOp::BeginsWith | CompareOp::EndsWith | CompareOp::Contains | CompareOp::Like => {
            let (hay, needle): (Vec<u8>, Vec<u8>) = match (l, r) {
                (ValueRef::String(a), ValueRef::String(b)) if ci => {
                    (a.to_lowercase().into_bytes(), b.to_lowercase().into_bytes())
                }
                (ValueRef::String(a), ValueRef::String(b)) => {
                    (a.as_bytes().to_vec(), b.as_bytes().to_vec())
                }
                (ValueRef::Binary(a), ValueRef::Binary(b)) => (a.to_vec(), b.to_vec()),
                (ValueRef::String(a), ValueRef::Binary(b)) => (a.as_bytes().to_vec(), b.to_vec()),
                _ => return false,
            };
            match op {
                CompareOp::BeginsWith => hay.starts_with(&needle),
                CompareOp::EndsWith => hay.ends_with(&needle),
                CompareOp::Contains => {
                    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle.as_slice())
                }
                _ => match (std::str::from_utf8(&hay), std::str::from_utf8(&needle)) {
                    (Ok(h), Ok(n)) => like(
                        &h.chars().collect::<Vec<_>>(),
                        &n.chars().collect::<Vec<_>>(),
                    ),
                    _ => false,
                },
            }
        }
    }
}

/// `*` matches any run of characters, `?` exactly one.
fn like(text: &[char], pattern: &[char]) -> bool {
    // Iterative matcher with backtracking to the last '*': linear in practice, no recursion.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            t += 1;
            p += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Min/max/sum/average of values (NULLs skipped). Sum of no values is 0; the others NULL.
pub(crate) fn aggregate<'v>(op: CollectionOp, values: impl Iterator<Item = ValueRef<'v>>) -> Value {
    let mut best: Option<Value> = None;
    let mut int_sum: i64 = 0;
    let mut float_sum = 0.0f64;
    let mut all_int = true;
    let mut n = 0u64;
    for v in values {
        if v.is_null() {
            continue;
        }
        n += 1;
        match op {
            CollectionOp::Min | CollectionOp::Max => {
                let better = best.as_ref().is_none_or(|b| {
                    let o = compare_values(v, b.as_ref());
                    if op == CollectionOp::Min {
                        o == Some(Ordering::Less)
                    } else {
                        o == Some(Ordering::Greater)
                    }
                });
                if better {
                    best = Some(v.to_owned());
                }
            }
            _ => {
                if let ValueRef::Int(i) = v {
                    int_sum = int_sum.wrapping_add(i);
                } else {
                    all_int = false;
                }
                float_sum += v.as_f64().unwrap_or(0.0);
            }
        }
    }
    match op {
        CollectionOp::Count => Value::Int(n as i64),
        CollectionOp::Min | CollectionOp::Max => best.unwrap_or(Value::Null),
        CollectionOp::Sum => {
            if all_int {
                Value::Int(int_sum)
            } else {
                Value::Double(float_sum)
            }
        }
        CollectionOp::Avg => {
            if n == 0 {
                Value::Null
            } else {
                Value::Double(float_sum / n as f64)
            }
        }
    }
}

/// An equality on an indexed property (or the primary key) that every match must satisfy.
fn index_candidates(ctx: &Ctx<'_>, node: &Node) -> Result<Option<Vec<u64>>> {
    let cmp = match node {
        Node::Cmp { .. } => node,
        Node::And(items) => match items.iter().find(|n| indexable(ctx, n).is_some()) {
            Some(n) => n,
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    let Some((prop, value)) = indexable(ctx, cmp) else {
        return Ok(None);
    };
    let (mut keys, _) = ctx
        .view
        .index_lookup(ctx.class.id, prop.id, value.as_ref())?;
    keys.sort_unstable();
    Ok(Some(keys))
}

fn indexable<'n>(ctx: &Ctx<'_>, node: &'n Node) -> Option<(&'n PropInfo, &'n Value)> {
    let Node::Cmp {
        left,
        op: CompareOp::Eq,
        right,
        ci: false,
    } = node
    else {
        return None;
    };
    let (path, value) = match (left, right) {
        (Operand::Path(p), Operand::Const(v)) | (Operand::Const(v), Operand::Path(p)) => (p, v),
        _ => return None,
    };
    let prop = path.direct_column()?;
    let indexed = prop.is_indexed() || ctx.class.pk == Some(prop.id);
    // Index hashes are per type: only a value of the property's own type can use it.
    (indexed && !value.is_null() && value.property_type() == Some(prop.ty)).then_some((prop, value))
}

/// The keys of the live objects of `class` that match `pred`, in key order.
pub(crate) fn matching_keys(view: View<'_>, class: &ClassInfo, pred: &Pred) -> Result<Vec<u64>> {
    let catalog = view.catalog();
    let node = prepare(catalog, class, pred)?;
    let ctx = Ctx {
        view,
        catalog,
        class,
    };
    if let Node::True = node {
        return view.live_keys(class.id);
    }
    let mut out = Vec::new();
    if let Some(candidates) = index_candidates(&ctx, &node)? {
        for key in candidates {
            if !view.is_live(class.id, key)? {
                continue;
            }
            let mut cols = ChunkColumns {
                chunk: chunk_of(key).0,
                data: HashMap::new(),
            };
            if ctx.test(&mut cols, &node, key)? {
                out.push(key);
            }
        }
        return Ok(out);
    }
    let (next, _) = view.class_state(class.id)?;
    for chunk in 0..next.div_ceil(CHUNK_ROWS) {
        let bits = view.live_bits(class.id, chunk)?;
        if bits.iter().all(|w| *w == 0) {
            continue;
        }
        let mut cols = ChunkColumns {
            chunk,
            data: HashMap::new(),
        };
        for (w, word) in bits.iter().enumerate() {
            let mut word = *word;
            while word != 0 {
                let key = chunk * CHUNK_ROWS + w as u64 * 64 + u64::from(word.trailing_zeros());
                word &= word - 1;
                if ctx.test(&mut cols, &node, key)? {
                    out.push(key);
                }
            }
        }
    }
    Ok(out)
}

/// The value of `path` for each key, for sorting and distinct (the first value when a path
/// crosses a list).
pub(crate) fn values_for(
    view: View<'_>,
    class: &ClassInfo,
    path: &ResolvedPath,
    keys: &[u64],
) -> Result<Vec<Value>> {
    let catalog = view.catalog();
    let ctx = Ctx {
        view,
        catalog,
        class,
    };
    let mut out = Vec::with_capacity(keys.len());
    let mut cols = ChunkColumns {
        chunk: u64::MAX,
        data: HashMap::new(),
    };
    for &key in keys {
        let chunk = chunk_of(key).0;
        if chunk != cols.chunk {
            cols = ChunkColumns {
                chunk,
                data: HashMap::new(),
            };
        }
        out.push(
            ctx.path_values(&mut cols, path, key)?
                .into_iter()
                .next()
                .unwrap_or(Value::Null),
        );
    }
    Ok(out)
}

/// Min/max/sum/average of a direct numeric or timestamp property over `keys` (in key order),
/// reading each chunk once.
pub(crate) fn aggregate_keys(
    view: View<'_>,
    class: &ClassInfo,
    prop: &PropInfo,
    keys: &[u64],
    op: CollectionOp,
) -> Result<Value> {
    let mut values: Vec<Value> = Vec::new();
    let mut i = 0;
    let mut ints: Vec<i64> = Vec::new();
    let int_fast = prop.ty == crate::value::PropertyType::Int
        && matches!(op, CollectionOp::Sum | CollectionOp::Avg);
    while i < keys.len() {
        let chunk = chunk_of(keys[i]).0;
        let data = view.chunk(class.id, prop.id, chunk)?;
        let cv = data.view(prop.link_class())?;
        while i < keys.len() && chunk_of(keys[i]).0 == chunk {
            let row = chunk_of(keys[i]).1;
            if int_fast {
                match cv.int_at(row)? {
                    Some(v) => ints.push(v),
                    None if !prop.is_nullable() => ints.push(0),
                    None => {}
                }
            } else {
                let v = or_default(cv.get(row)?, prop);
                if !v.is_null() {
                    values.push(v.to_owned());
                }
            }
            i += 1;
        }
    }
    if int_fast {
        let sum = ints.iter().fold(0i64, |a, b| a.wrapping_add(*b));
        return Ok(match op {
            CollectionOp::Sum => Value::Int(sum),
            _ if ints.is_empty() => Value::Null,
            _ => Value::Double(ints.iter().map(|&v| v as f64).sum::<f64>() / ints.len() as f64),
        });
    }
    Ok(aggregate(op, values.iter().map(Value::as_ref)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_wildcards() {
        let m = |t: &str, p: &str| {
            like(
                &t.chars().collect::<Vec<_>>(),
                &p.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("hello", "h*o"));
        assert!(m("hello", "h?llo"));
        assert!(m("hello", "*"));
        assert!(!m("hello", "h?lo"));
        assert!(m("", "*"));
        assert!(!m("abc", "a*d"));
        assert!(m("a*c", "a*c"));
    }

    #[test]
    fn string_operators_honour_case_flag() {
        assert!(compare(
            ValueRef::String("Hello"),
            CompareOp::BeginsWith,
            ValueRef::String("he"),
            true
        ));
        assert!(!compare(
            ValueRef::String("Hello"),
            CompareOp::BeginsWith,
            ValueRef::String("he"),
            false
        ));
        assert!(compare(
            ValueRef::String("Hello"),
            CompareOp::Eq,
            ValueRef::String("HELLO"),
            true
        ));
        assert!(!compare(
            ValueRef::Null,
            CompareOp::Lt,
            ValueRef::Int(3),
            false
        ));
        assert!(compare(
            ValueRef::Null,
            CompareOp::Eq,
            ValueRef::Null,
            false
        ));
    }
}
