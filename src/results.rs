//! [`Results`]: the live answer to a query.

use crate::db::Realm;
use crate::error::{Error, ErrorCode, Result};
use crate::object::Object;
use crate::query::bind::{self, Path, Pred};
use crate::query::eval;
use crate::query::parser::CollectionOp;
use crate::store::catalog::ClassInfo;
use crate::store::view::View;
use crate::value::{sort_order, PropertyType, Value};
use parking_lot::Mutex;
use std::sync::Arc;

/// The query entry points of a realm handle.
impl Realm {
    /// Every object of a class, as live results.
    pub fn objects(&self, class: &str) -> Result<Results> {
        self.query(class, "TRUEPREDICATE", &[])
    }

    /// The objects of `class` matching `predicate` (Realm's query language; `$0`.. refer to
    /// `args`), as live results.
    ///
    /// Fails with `InvalidQuery` for a predicate that does not parse or does not fit the
    /// schema, `NoSuchClass`.
    pub fn query(&self, class: &str, predicate: &str, args: &[Value]) -> Result<Results> {
        Results::new(self.clone(), class, predicate, args)
    }
}

/// The objects of a class that match a predicate, optionally sorted and made distinct.
///
/// Results are live: they run their query again on first access after the realm handle's
/// snapshot or transaction changed, so they always agree with what the handle sees.
#[derive(Clone)]
pub struct Results {
    realm: Realm,
    class: String,
    spec: Arc<Spec>,
    cache: Arc<Mutex<Option<CachedKeys>>>,
}

/// Matching keys and the realm generation they were computed at.
type CachedKeys = (u64, Arc<Vec<u64>>);

pub(crate) struct Spec {
    pub(crate) pred: Pred,
    /// Sorts, distincts and limits, applied in the order they were asked for (as Realm does):
    /// a distinct after a sort keeps the first object in sorted order.
    steps: Vec<Step>,
}

#[derive(Clone)]
enum Step {
    Sort(Vec<(Path, bool)>),
    Distinct(Vec<Path>),
    Limit(usize),
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Results")
            .field("class", &self.class)
            .finish_non_exhaustive()
    }
}

fn path(name: &str) -> Path {
    Path {
        names: name.split('.').map(str::to_owned).collect(),
        op: None,
        aggregate_property: None,
    }
}

impl Results {
    pub(crate) fn new(
        realm: Realm,
        class: &str,
        predicate: &str,
        args: &[Value],
    ) -> Result<Results> {
        let bind::BoundQuery {
            pred,
            sort,
            distinct,
            limit,
        } = realm.with_view(|v| {
            let info = v.catalog().require_class(class)?;
            bind::bind(v.catalog(), info, predicate, args)
        })?;
        // Clauses of the query string apply as SORT, then DISTINCT, then LIMIT.
        let mut steps = Vec::new();
        if !sort.is_empty() {
            steps.push(Step::Sort(sort));
        }
        if !distinct.is_empty() {
            steps.push(Step::Distinct(distinct));
        }
        if let Some(n) = limit {
            steps.push(Step::Limit(n));
        }
        Ok(Results {
            realm,
            class: class.to_owned(),
            spec: Arc::new(Spec { pred, steps }),
            cache: Arc::new(Mutex::new(None)),
        })
    }

    fn derive(&self, step: Step) -> Results {
        let mut spec = Spec {
            pred: self.spec.pred.clone(),
            steps: self.spec.steps.clone(),
        };
        spec.steps.push(step);
        Results {
            realm: self.realm.clone(),
            class: self.class.clone(),
            spec: Arc::new(spec),
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// The queried class.
    pub fn class_name(&self) -> &str {
        &self.class
    }

    /// The realm handle the results read through.
    pub fn realm(&self) -> &Realm {
        &self.realm
    }

    fn with_class<R>(&self, f: impl FnOnce(View<'_>, &ClassInfo) -> Result<R>) -> Result<R> {
        self.realm
            .with_view(|v| f(v, v.catalog().require_class(&self.class)?))
    }

    /// Checks a property path given to `sort`/`distinct`: an unknown property is
    /// `NoSuchProperty`, as for every other API call that names one.
    fn check_path(&self, p: &Path) -> Result<()> {
        self.with_class(|v, c| {
            let resolved = bind::resolve(v.catalog(), c, p);
            if let Ok(r) = &resolved {
                if r.props.last().is_some_and(|(_, prop)| prop.is_list()) {
                    return Err(Error::wrong_type(format!(
                        "'{}' is a list: results can only be sorted or made distinct by a single value",
                        p.names.join(".")
                    )));
                }
            }
            resolved.map(|_| ()).map_err(|e| {
                if e.code() == ErrorCode::InvalidQuery && e.message().contains("has no property") {
                    Error::new(ErrorCode::NoSuchProperty, e.message())
                } else {
                    e
                }
            })
        })
    }

    /// New results sorted by one property (a dotted path through links is allowed); the new
    /// sort applies after the earlier steps (a stable sort, so earlier order breaks ties).
    pub fn sort(&self, property: &str, ascending: bool) -> Result<Results> {
        self.sort_by(&[(property, ascending)])
    }

    /// New results sorted by several keys, the first most significant.
    pub fn sort_by(&self, keys: &[(&str, bool)]) -> Result<Results> {
        let mut sort = Vec::new();
        for (name, asc) in keys {
            let p = path(name);
            self.check_path(&p)?;
            sort.push((p, *asc));
        }
        Ok(self.derive(Step::Sort(sort)))
    }

    /// New results keeping the first object of each distinct value of `property`.
    pub fn distinct(&self, property: &str) -> Result<Results> {
        let p = path(property);
        self.check_path(&p)?;
        Ok(self.derive(Step::Distinct(vec![p])))
    }

    /// The matching object keys in result order, from the cache when still current.
    pub(crate) fn keys(&self) -> Result<Arc<Vec<u64>>> {
        let generation = self.realm.generation();
        if let Some((g, keys)) = &*self.cache.lock() {
            if *g == generation {
                return Ok(keys.clone());
            }
        }
        let keys = Arc::new(self.with_class(|v, c| self.evaluate(v, c))?);
        *self.cache.lock() = Some((generation, keys.clone()));
        Ok(keys)
    }

    fn evaluate(&self, v: View<'_>, class: &ClassInfo) -> Result<Vec<u64>> {
        self.spec.evaluate(v, class)
    }

    /// What a notification observer needs of these results: the class and the query.
    pub(crate) fn observed(&self) -> (Realm, String, Arc<Spec>) {
        (self.realm.clone(), self.class.clone(), self.spec.clone())
    }
}

impl Spec {
    /// The matching keys in result order, evaluated in `v`.
    pub(crate) fn evaluate(&self, v: View<'_>, class: &ClassInfo) -> Result<Vec<u64>> {
        let mut keys = eval::matching_keys(v, class, &self.pred)?;
        for step in &self.steps {
            keys = match step {
                Step::Sort(by) => sort_keys(v, class, keys, by)?,
                Step::Distinct(by) => distinct_keys(v, class, keys, by)?,
                Step::Limit(n) => {
                    keys.truncate(*n);
                    keys
                }
            };
        }
        Ok(keys)
    }

    /// Whether the keys are the filter's matches in key order, and whether an object matches
    /// depends on its own properties only: then a commit's changes can be applied to the keys
    /// by testing just the objects it created or modified.
    pub(crate) fn is_incremental(&self) -> bool {
        self.steps.is_empty() && reads_only_own_properties(&self.pred)
    }

    /// Whether the keys are the filter's matches sorted by the objects' own properties (no
    /// distinct, no limit), the filter reading only their own properties: then a commit's
    /// changes can be applied by placing the created and changed objects that match.
    pub(crate) fn is_sorted_incremental(&self) -> bool {
        reads_only_own_properties(&self.pred)
            && !self.steps.is_empty()
            && self.steps.iter().all(|step| match step {
                Step::Sort(by) => by.iter().all(|(p, _)| p.names.len() == 1),
                _ => false,
            })
    }

    /// Places `add` (keys of matching objects absent from `sorted`) into `sorted` (keys in
    /// result order) where a full evaluation would put them: by binary search under the
    /// order the sort steps give (the last sort first, earlier ones breaking its ties, then the
    /// key, as the stable sorts of a key-ordered match list do). Only for
    /// [`is_sorted_incremental`](Self::is_sorted_incremental) results.
    pub(crate) fn place_sorted(
        &self,
        v: View<'_>,
        class: &ClassInfo,
        mut sorted: Vec<u64>,
        add: &[u64],
    ) -> Result<Vec<u64>> {
        let mut columns = Vec::new();
        for step in self.steps.iter().rev() {
            if let Step::Sort(by) = step {
                for (p, asc) in by {
                    columns.push((bind::resolve(v.catalog(), class, p)?, *asc));
                }
            }
        }
        let sort_values = |key: u64| -> Result<Vec<Value>> {
            columns
                .iter()
                .map(|(path, _)| {
                    let mut one = eval::values_for(v, class, path, &[key])?;
                    Ok(one.pop().unwrap_or(Value::Null))
                })
                .collect()
        };
        let compare = |a: &(Vec<Value>, u64), b: &(Vec<Value>, u64)| {
            for ((x, y), (_, asc)) in a.0.iter().zip(&b.0).zip(&columns) {
                let o = sort_order(x.as_ref(), y.as_ref());
                let o = if *asc { o } else { o.reverse() };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            a.1.cmp(&b.1)
        };
        for &key in add {
            let new = (sort_values(key)?, key);
            let (mut lo, mut hi) = (0, sorted.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                let probe = (sort_values(sorted[mid])?, sorted[mid]);
                if compare(&probe, &new) == std::cmp::Ordering::Less {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            sorted.insert(lo, key);
        }
        Ok(sorted)
    }

    /// Whether the filter, sorts and distincts read only the objects' own properties: then
    /// only changes to the queried class can change the results.
    pub(crate) fn reads_only_own_objects(&self) -> bool {
        reads_only_own_properties(&self.pred)
            && self.steps.iter().all(|step| match step {
                Step::Sort(by) => by.iter().all(|(p, _)| p.names.len() == 1),
                Step::Distinct(by) => by.iter().all(|p| p.names.len() == 1),
                Step::Limit(_) => true,
            })
    }
}

/// Whether `pred` reads no property of another object (no link hops, no aggregates over linked
/// objects): whether an object matches then changes only when the object itself changes.
fn reads_only_own_properties(pred: &Pred) -> bool {
    let own = |side: &bind::Side| match side {
        bind::Side::Const(_) => true,
        bind::Side::Path(p) => p.names.len() == 1 && p.aggregate_property.is_none(),
    };
    match pred {
        Pred::True | Pred::False => true,
        Pred::And(ps) | Pred::Or(ps) => ps.iter().all(reads_only_own_properties),
        Pred::Not(p) => reads_only_own_properties(p),
        Pred::Cmp { left, right, .. } => own(left) && own(right),
    }
}

impl Results {
    /// Whether the results are exactly the matches of the filter (order aside): then counts
    /// and aggregates scan the columns without listing the objects.
    fn is_plain_filter(&self) -> bool {
        self.spec.steps.iter().all(|s| matches!(s, Step::Sort(_)))
    }

    fn cached_keys(&self) -> Option<Arc<Vec<u64>>> {
        let generation = self.realm.generation();
        self.cache
            .lock()
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, k)| k.clone())
    }

    /// The number of matching objects.
    pub fn count(&self) -> Result<usize> {
        if let Some(keys) = self.cached_keys() {
            return Ok(keys.len());
        }
        if self.is_plain_filter() {
            if matches!(self.spec.pred, Pred::True) {
                return self.with_class(|v, c| {
                    Ok(usize::try_from(v.class_state(c.id)?.1).unwrap_or(usize::MAX))
                });
            }
            return self.with_class(|v, c| eval::count_matching(v, c, &self.spec.pred));
        }
        Ok(self.keys()?.len())
    }

    /// Whether nothing matches.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.count()? == 0)
    }

    /// The object at `index` in result order.
    pub fn get(&self, index: usize) -> Result<Object> {
        let keys = self.keys()?;
        let key = *keys.get(index).ok_or_else(|| {
            Error::new(
                ErrorCode::IndexOutOfBounds,
                format!("index {index} is out of bounds for {} results", keys.len()),
            )
        })?;
        let class_id = self.realm.class_id(&self.class)?;
        Ok(Object::new(self.realm.clone(), class_id, key))
    }

    /// Every matching object.
    pub fn to_vec(&self) -> Result<Vec<Object>> {
        let class_id = self.realm.class_id(&self.class)?;
        Ok(self
            .keys()?
            .iter()
            .map(|k| Object::new(self.realm.clone(), class_id, *k))
            .collect())
    }

    fn aggregate(&self, property: &str, op: CollectionOp) -> Result<Value> {
        let keys = if self.is_plain_filter() {
            None
        } else {
            Some(self.keys_in_key_order()?)
        };
        self.with_class(|v, class| {
            let prop = class.require_prop(property)?;
            if prop.is_list() {
                return Err(Error::wrong_type(format!(
                    "'{}.{property}' is a list",
                    class.name
                )));
            }
            let numeric = prop.ty.is_numeric();
            let ordered = numeric || prop.ty == PropertyType::Timestamp;
            if (matches!(op, CollectionOp::Sum | CollectionOp::Avg) && !numeric) || !ordered {
                return Err(Error::wrong_type(format!(
                    "cannot compute {op:?} of '{}.{property}', a {} property",
                    class.name,
                    prop.ty.name()
                )));
            }
            let result = match &keys {
                Some(keys) => eval::aggregate_keys(v, class, prop, keys, op)?,
                None => eval::aggregate_matching(v, class, &self.spec.pred, prop, op)?,
            };
            Ok(match (op, prop.ty, result) {
                // The sum of floats and doubles is a double even when there is nothing to add.
                (CollectionOp::Sum, PropertyType::Float | PropertyType::Double, Value::Int(i)) => {
                    Value::Double(i as f64)
                }
                (_, _, r) => r,
            })
        })
    }

    fn keys_in_key_order(&self) -> Result<Vec<u64>> {
        let mut keys = self.keys()?.to_vec();
        keys.sort_unstable();
        Ok(keys)
    }

    /// The smallest value of a numeric or timestamp property (NULL when empty).
    pub fn min(&self, property: &str) -> Result<Value> {
        self.aggregate(property, CollectionOp::Min)
    }

    /// The largest value (NULL when empty).
    pub fn max(&self, property: &str) -> Result<Value> {
        self.aggregate(property, CollectionOp::Max)
    }

    /// The sum of a numeric property: INT for int properties, DOUBLE otherwise; 0 when empty.
    pub fn sum(&self, property: &str) -> Result<Value> {
        self.aggregate(property, CollectionOp::Sum)
    }

    /// The mean of a numeric property as DOUBLE (NULL when empty).
    pub fn average(&self, property: &str) -> Result<Value> {
        self.aggregate(property, CollectionOp::Avg)
    }

    /// Deletes every matching object; returns how many. Needs a write transaction.
    pub fn delete_all(&self) -> Result<usize> {
        let keys = self.keys_in_key_order()?;
        let class_id = self.realm.class_id(&self.class)?;
        self.realm
            .with_write(|w| w.delete_objects(class_id, &keys))?;
        Ok(keys.len())
    }
}

fn sort_keys(
    v: View<'_>,
    class: &ClassInfo,
    keys: Vec<u64>,
    by: &[(Path, bool)],
) -> Result<Vec<u64>> {
    let mut columns = Vec::new();
    for (p, asc) in by {
        columns.push((
            eval::values_for(v, class, &bind::resolve(v.catalog(), class, p)?, &keys)?,
            *asc,
        ));
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        for (col, asc) in &columns {
            let o = sort_order(col[a].as_ref(), col[b].as_ref());
            let o = if *asc { o } else { o.reverse() };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(order.into_iter().map(|i| keys[i]).collect())
}

fn distinct_keys(v: View<'_>, class: &ClassInfo, keys: Vec<u64>, by: &[Path]) -> Result<Vec<u64>> {
    let mut columns = Vec::new();
    for p in by {
        columns.push(eval::values_for(
            v,
            class,
            &bind::resolve(v.catalog(), class, p)?,
            &keys,
        )?);
    }
    let mut seen = std::collections::HashSet::new();
    Ok(keys
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            seen.insert(
                columns
                    .iter()
                    .map(|c| format!("{:?}|", c[*i]))
                    .collect::<String>(),
            )
        })
        .map(|(_, k)| *k)
        .collect())
}
