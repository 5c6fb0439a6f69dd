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
use crate::store::catalog::LIVE_PROP;
use crate::store::catalog::{Catalog, ClassInfo, PropInfo};
use crate::store::chunk::ChunkView;
use crate::store::chunk::CHUNK_ROWS;
use crate::store::tables;
use crate::store::view::{chunk_of, decode_live, ChunkData, ChunkRef, LiveBits, View};
use crate::store::write::or_default;
use crate::value::{compare_values, ObjLink, Value, ValueRef};
use redb::{AccessGuard, Range};
use rustc_hash::FxHashMap as HashMap;
use std::cmp::Ordering;
use std::collections::hash_map::Entry;

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

/// A running min/max/sum/average (NULLs skipped). Sum of no values is 0; the others NULL.
pub(crate) struct Accumulator {
    op: CollectionOp,
    n: u64,
    int_sum: i64,
    float_sum: f64,
    all_int: bool,
    best: Option<Value>,
}

impl Accumulator {
    pub(crate) fn new(op: CollectionOp) -> Accumulator {
        Accumulator {
            op,
            n: 0,
            int_sum: 0,
            float_sum: 0.0,
            all_int: true,
            best: None,
        }
    }

    pub(crate) fn add(&mut self, v: ValueRef<'_>) {
        if v.is_null() {
            return;
        }
        // NaN has no order: min and max skip it, so the answer does not depend on which
        // object comes first.
        if matches!(self.op, CollectionOp::Min | CollectionOp::Max)
            && v.as_f64().is_some_and(f64::is_nan)
        {
            return;
        }
        self.n += 1;
        match self.op {
            CollectionOp::Min | CollectionOp::Max => {
                let better = self.best.as_ref().is_none_or(|b| {
                    let o = compare_values(v, b.as_ref());
                    if self.op == CollectionOp::Min {
                        o == Some(Ordering::Less)
                    } else {
                        o == Some(Ordering::Greater)
                    }
                });
                if better {
                    self.best = Some(v.to_owned());
                }
            }
            CollectionOp::Count => {}
            CollectionOp::Sum | CollectionOp::Avg => match v {
                ValueRef::Int(i) => {
                    self.int_sum = self.int_sum.wrapping_add(i);
                    self.float_sum += i as f64;
                }
                other => {
                    self.all_int = false;
                    self.float_sum += other.as_f64().unwrap_or(0.0);
                }
            },
        }
    }

    pub(crate) fn finish(self) -> Value {
        match self.op {
            CollectionOp::Count => Value::Int(self.n as i64),
            CollectionOp::Min | CollectionOp::Max => self.best.unwrap_or(Value::Null),
            CollectionOp::Sum if self.all_int => Value::Int(self.int_sum),
            CollectionOp::Sum => Value::Double(self.float_sum),
            CollectionOp::Avg if self.n == 0 => Value::Null,
            CollectionOp::Avg => Value::Double(self.float_sum / self.n as f64),
        }
    }
}

/// Min/max/sum/average of values (NULLs skipped).
pub(crate) fn aggregate<'v>(op: CollectionOp, values: impl Iterator<Item = ValueRef<'v>>) -> Value {
    let mut acc = Accumulator::new(op);
    values.for_each(|v| acc.add(v));
    acc.finish()
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

/// A chunk's row mask: bit `i` set = row `i` of the chunk is selected.
type Mask = LiveBits;

fn rows(mask: &Mask) -> impl Iterator<Item = usize> + '_ {
    mask.iter().enumerate().flat_map(|(w, word)| {
        let mut word = *word;
        std::iter::from_fn(move || {
            if word == 0 {
                return None;
            }
            let bit = word.trailing_zeros() as usize;
            word &= word - 1;
            Some(w * 64 + bit)
        })
    })
}

/// Every row of a chunk selected.
const FULL: Mask = [u64::MAX; 4];

fn is_empty(mask: &Mask) -> bool {
    mask.iter().all(|w| *w == 0)
}

/// Walks the chunks of one column in order with a single redb range read.
struct ColumnCursor {
    range: Range<'static, u128, &'static [u8]>,
    next: Option<(u64, AccessGuard<'static, &'static [u8]>)>,
    done: bool,
}

impl ColumnCursor {
    fn new(view: View<'_>, class: u32, prop: u32) -> Result<ColumnCursor> {
        Ok(ColumnCursor {
            range: view.snap.columns.range(tables::column_range(class, prop))?,
            next: None,
            done: false,
        })
    }

    /// The stored chunk `n` (chunks are requested in increasing order).
    fn seek(&mut self, n: u64) -> Result<Option<&AccessGuard<'static, &'static [u8]>>> {
        loop {
            if self.next.is_none() && !self.done {
                match self.range.next() {
                    Some(item) => {
                        let (k, v) = item?;
                        self.next = Some((k.value() as u64, v));
                    }
                    None => self.done = true,
                }
            }
            match &self.next {
                Some((c, _)) if *c < n => self.next = None,
                Some((c, _)) if *c == n => return Ok(self.next.as_ref().map(|(_, g)| g)),
                _ => return Ok(None),
            }
        }
    }
}

/// Chunk-at-a-time evaluation over one class.
struct Scan<'a> {
    ctx: Ctx<'a>,
    cursors: HashMap<u32, ColumnCursor>,
}

/// A comparison of one direct column with a constant, oriented as `column op constant`.
struct Leaf<'n> {
    prop: &'n PropInfo,
    op: CompareOp,
    constant: &'n Value,
    ci: bool,
}

fn flip(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
        other => other,
    }
}

fn direct_leaf(node: &Node) -> Option<Leaf<'_>> {
    let Node::Cmp {
        left,
        op,
        right,
        ci,
    } = node
    else {
        return None;
    };
    match (left, right) {
        (Operand::Path(p), Operand::Const(c)) => Some(Leaf {
            prop: p.direct_column()?,
            op: *op,
            constant: c,
            ci: *ci,
        }),
        (Operand::Const(c), Operand::Path(p))
            if !matches!(
                op,
                CompareOp::BeginsWith | CompareOp::EndsWith | CompareOp::Contains | CompareOp::Like
            ) =>
        {
            Some(Leaf {
                prop: p.direct_column()?,
                op: flip(*op),
                constant: c,
                ci: *ci,
            })
        }
        _ => None,
    }
}

impl<'a> Scan<'a> {
    fn new(view: View<'a>, class: &'a ClassInfo) -> Scan<'a> {
        Scan {
            ctx: Ctx {
                view,
                catalog: view.catalog(),
                class,
            },
            cursors: HashMap::default(),
        }
    }

    /// The chunk of a column: the overlay's version, else the stored one.
    fn with_chunk<R>(
        &mut self,
        prop: &PropInfo,
        chunk: u64,
        f: impl FnOnce(ChunkRef<'_>) -> Result<R>,
    ) -> Result<R> {
        let view = self.ctx.view;
        if let Some(values) = view.overlay.and_then(|o| {
            o.columns
                .get(&tables::column_key(self.ctx.class.id, prop.id, chunk))
        }) {
            return f(ChunkRef::Dirty(values));
        }
        let cursor = match self.cursors.entry(prop.id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(ColumnCursor::new(view, self.ctx.class.id, prop.id)?),
        };
        match cursor.seek(chunk)? {
            Some(guard) => f(ChunkRef::Stored(ChunkView::new(
                guard.value(),
                prop.link_class(),
            )?)),
            None => f(ChunkRef::Missing),
        }
    }

    fn live(&mut self, chunk: u64) -> Result<Mask> {
        if let Some(bits) = self
            .ctx
            .view
            .overlay
            .and_then(|o| o.live.get(&(self.ctx.class.id, chunk)))
        {
            return Ok(*bits);
        }
        let live_prop = PropInfo {
            id: LIVE_PROP,
            name: String::new(),
            ty: crate::value::PropertyType::Binary,
            flags: crate::schema::PropertyFlags::NONE,
            target: None,
        };
        let view = self.ctx.view;
        let cursor = match self.cursors.entry(LIVE_PROP) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(ColumnCursor::new(view, self.ctx.class.id, live_prop.id)?),
        };
        Ok(cursor
            .seek(chunk)?
            .map_or([0; 4], |g| decode_live(g.value())))
    }

    /// The rows of `candidates` in `chunk` that satisfy `node`.
    fn eval(&mut self, node: &Node, chunk: u64, candidates: Mask) -> Result<Mask> {
        if is_empty(&candidates) {
            return Ok(candidates);
        }
        Ok(match node {
            Node::True => candidates,
            Node::False => [0; 4],
            Node::And(items) => {
                let mut m = candidates;
                for item in items {
                    m = self.eval(item, chunk, m)?;
                    if is_empty(&m) {
                        break;
                    }
                }
                m
            }
            Node::Or(items) => {
                let mut selected = [0u64; 4];
                let mut rest = candidates;
                for item in items {
                    let r = self.eval(item, chunk, rest)?;
                    for w in 0..4 {
                        selected[w] |= r[w];
                        rest[w] &= !r[w];
                    }
                }
                selected
            }
            Node::Not(inner) => {
                let r = self.eval(inner, chunk, candidates)?;
                std::array::from_fn(|w| candidates[w] & !r[w])
            }
            Node::Cmp { .. } => match direct_leaf(node) {
                Some(leaf) => self.eval_leaf(&leaf, chunk, candidates)?,
                None => {
                    let mut out = [0u64; 4];
                    let mut cols = ChunkColumns {
                        chunk,
                        data: HashMap::default(),
                    };
                    for row in rows(&candidates) {
                        if self
                            .ctx
                            .test(&mut cols, node, chunk * CHUNK_ROWS + row as u64)?
                        {
                            out[row / 64] |= 1 << (row % 64);
                        }
                    }
                    out
                }
            },
        })
    }

    fn eval_leaf(&mut self, leaf: &Leaf<'_>, chunk: u64, candidates: Mask) -> Result<Mask> {
        let prop = leaf.prop;
        self.with_chunk(prop, chunk, |data| {
            let mut out = [0u64; 4];
            let mut set = |row: usize| out[row / 64] |= 1 << (row % 64);
            match (&data, leaf.constant) {
                // A full chunk of integers without NULLs: one tight loop per operator.
                (ChunkRef::Stored(view), Value::Int(c))
                    if prop.ty == crate::value::PropertyType::Int
                        && candidates == FULL
                        && view.len() == CHUNK_ROWS as usize
                        && view.all_present()
                        && matches!(
                            leaf.op,
                            CompareOp::Eq
                                | CompareOp::Ne
                                | CompareOp::Lt
                                | CompareOp::Le
                                | CompareOp::Gt
                                | CompareOp::Ge
                        ) =>
                {
                    out = view.int_mask(|v| matches_ord(leaf.op, v.cmp(c)));
                }
                // Integers straight from the encoded bytes: the common scan.
                (ChunkRef::Stored(view), Value::Int(c))
                    if prop.ty == crate::value::PropertyType::Int =>
                {
                    for row in rows(&candidates) {
                        let v = match view.int_at(row) {
                            Some(v) => Some(v),
                            None if !prop.is_nullable() => Some(0),
                            None => None,
                        };
                        let hit = match v {
                            Some(v) => matches_ord(leaf.op, v.cmp(c)),
                            None => compare(ValueRef::Null, leaf.op, ValueRef::Int(*c), leaf.ci),
                        };
                        if hit {
                            set(row);
                        }
                    }
                }
                _ => {
                    let constant = leaf.constant.as_ref();
                    for row in rows(&candidates) {
                        let v = or_default(data.get(row)?, prop);
                        if compare(v, leaf.op, constant, leaf.ci) {
                            set(row);
                        }
                    }
                }
            }
            Ok(out)
        })
    }

    /// Calls `f(chunk, mask)` for every chunk with matching rows, in key order.
    fn for_each(
        &mut self,
        node: &Node,
        mut f: impl FnMut(&mut Scan<'a>, u64, Mask) -> Result<()>,
    ) -> Result<()> {
        if let Some(candidates) = index_candidates(&self.ctx, node)? {
            let mut i = 0;
            while i < candidates.len() {
                let chunk = candidates[i] / CHUNK_ROWS;
                let mut mask = [0u64; 4];
                while i < candidates.len() && candidates[i] / CHUNK_ROWS == chunk {
                    let row = (candidates[i] % CHUNK_ROWS) as usize;
                    mask[row / 64] |= 1 << (row % 64);
                    i += 1;
                }
                let live = self.ctx.view.live_bits(self.ctx.class.id, chunk)?;
                let m = self.eval(node, chunk, std::array::from_fn(|w| mask[w] & live[w]))?;
                if !is_empty(&m) {
                    f(self, chunk, m)?;
                }
            }
            return Ok(());
        }
        let (next, _) = self.ctx.view.class_state(self.ctx.class.id)?;
        for chunk in 0..next.div_ceil(CHUNK_ROWS) {
            let live = self.live(chunk)?;
            let m = self.eval(node, chunk, live)?;
            if !is_empty(&m) {
                f(self, chunk, m)?;
            }
        }
        Ok(())
    }
}

/// The keys of the live objects of `class` that match `pred`, in key order.
pub(crate) fn matching_keys(view: View<'_>, class: &ClassInfo, pred: &Pred) -> Result<Vec<u64>> {
    let node = prepare(view.catalog(), class, pred)?;
    if let Node::True = node {
        return view.live_keys(class.id);
    }
    let mut out = Vec::new();
    Scan::new(view, class).for_each(&node, |_, chunk, mask| {
        out.extend(rows(&mask).map(|r| chunk * CHUNK_ROWS + r as u64));
        Ok(())
    })?;
    Ok(out)
}

/// The keys among `candidates` (ascending) of live objects of `class` that match `pred`, in
/// key order: each chunk with candidates is evaluated once, for those rows only.
pub(crate) fn matching_among(
    view: View<'_>,
    class: &ClassInfo,
    pred: &Pred,
    candidates: &[u64],
) -> Result<Vec<u64>> {
    let node = prepare(view.catalog(), class, pred)?;
    let mut scan = Scan::new(view, class);
    let mut out = Vec::new();
    let mut i = 0;
    while i < candidates.len() {
        let chunk = candidates[i] / CHUNK_ROWS;
        let mut mask = [0u64; 4];
        while i < candidates.len() && candidates[i] / CHUNK_ROWS == chunk {
            let row = (candidates[i] % CHUNK_ROWS) as usize;
            mask[row / 64] |= 1 << (row % 64);
            i += 1;
        }
        let live = view.live_bits(class.id, chunk)?;
        let m = scan.eval(&node, chunk, std::array::from_fn(|w| mask[w] & live[w]))?;
        out.extend(rows(&m).map(|r| chunk * CHUNK_ROWS + r as u64));
    }
    Ok(out)
}

/// How many live objects of `class` match `pred`, without listing them.
pub(crate) fn count_matching(view: View<'_>, class: &ClassInfo, pred: &Pred) -> Result<usize> {
    let node = prepare(view.catalog(), class, pred)?;
    let mut n = 0usize;
    Scan::new(view, class).for_each(&node, |_, _, mask| {
        n += mask.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        Ok(())
    })?;
    Ok(n)
}

/// Min/max/sum/average of a direct property over the objects matching `pred`, reading each
/// chunk of the property once.
pub(crate) fn aggregate_matching(
    view: View<'_>,
    class: &ClassInfo,
    pred: &Pred,
    prop: &PropInfo,
    op: CollectionOp,
) -> Result<Value> {
    let node = prepare(view.catalog(), class, pred)?;
    let mut acc = Accumulator::new(op);
    // Sums and averages add raw numbers straight from the encoded chunks: floats into an
    // f64, integers into an exact (wrapping) i64 plus an f64 for the mean.
    let numeric_sum = matches!(op, CollectionOp::Sum | CollectionOp::Avg) && prop.ty.is_numeric();
    let is_int = prop.ty == crate::value::PropertyType::Int;
    let (mut fsum, mut isum, mut n) = (0.0f64, 0i64, 0u64);
    Scan::new(view, class).for_each(&node, |scan, chunk, mask| {
        scan.with_chunk(prop, chunk, |data| {
            match &data {
                ChunkRef::Stored(v) if numeric_sum => {
                    let mut add = |row: usize| {
                        let found = if is_int {
                            v.int_at(row).map(|i| {
                                isum = isum.wrapping_add(i);
                                i as f64
                            })
                        } else {
                            v.f64_at(row)
                        };
                        match found {
                            Some(x) => {
                                fsum += x;
                                n += 1;
                            }
                            // An unwritten required slot reads as 0.
                            None if !prop.is_nullable() => n += 1,
                            None => {}
                        }
                    };
                    if mask == FULL && v.len() == CHUNK_ROWS as usize && v.all_present() {
                        let (i, f) = v.sum_all();
                        isum = isum.wrapping_add(i);
                        fsum += f;
                        n += CHUNK_ROWS;
                    } else if mask == FULL && v.len() == CHUNK_ROWS as usize {
                        (0..CHUNK_ROWS as usize).for_each(&mut add);
                    } else {
                        rows(&mask).for_each(&mut add);
                    }
                }
                _ => {
                    for row in rows(&mask) {
                        let v = or_default(data.get(row)?, prop);
                        if numeric_sum {
                            if let Some(x) = v.as_f64() {
                                if let ValueRef::Int(i) = v {
                                    isum = isum.wrapping_add(i);
                                }
                                fsum += x;
                                n += 1;
                            }
                        } else {
                            acc.add(v);
                        }
                    }
                }
            }
            Ok(())
        })
    })?;
    if numeric_sum {
        return Ok(match op {
            CollectionOp::Avg if n == 0 => Value::Null,
            CollectionOp::Avg => Value::Double(fsum / n as f64),
            _ if is_int => Value::Int(isum),
            _ => Value::Double(fsum),
        });
    }
    Ok(acc.finish())
}

/// Min/max/sum/average of a direct property over explicit `keys` (results with a limit or
/// distinct).
pub(crate) fn aggregate_keys(
    view: View<'_>,
    class: &ClassInfo,
    prop: &PropInfo,
    keys: &[u64],
    op: CollectionOp,
) -> Result<Value> {
    let mut acc = Accumulator::new(op);
    for &key in keys {
        acc.add(or_default(view.get(class, prop, key)?.as_ref(), prop));
    }
    Ok(acc.finish())
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
        data: HashMap::default(),
    };
    for &key in keys {
        let chunk = chunk_of(key).0;
        if chunk != cols.chunk {
            cols = ChunkColumns {
                chunk,
                data: HashMap::default(),
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
