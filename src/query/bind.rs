//! Binding a parsed query to a class: property paths resolved against the catalog, `$n`
//! arguments and literals turned into values, types checked.
//!
//! Paths are kept by name and resolved again at each evaluation, so a query stays correct when
//! a migration or a synced schema change adds properties.

use crate::error::{Error, ErrorCode, Result};
use crate::query::parser::{self, CollectionOp, CompareOp, Expr, Literal, Operand};
use crate::store::catalog::{Catalog, ClassInfo, PropInfo};
use crate::value::{PropertyType, Timestamp, Value};

/// A comparison side.
#[derive(Debug, Clone)]
pub(crate) enum Side {
    Path(Path),
    Const(Value),
}

/// A property path from the queried class: zero or more link hops, then a property, then
/// optionally a collection operator.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub(crate) names: Vec<String>,
    pub(crate) op: Option<CollectionOp>,
    pub(crate) aggregate_property: Option<String>,
}

/// A resolved path: the properties along it, by class.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedPath {
    /// Link (or list of links) properties to follow, then the final property.
    pub(crate) props: Vec<(u32, PropInfo)>,
    pub(crate) op: Option<CollectionOp>,
    /// For `@min.age` style operators over a list of links: the target class and property.
    pub(crate) aggregate: Option<(u32, PropInfo)>,
}

impl ResolvedPath {
    /// The single direct column this path reads, if it is one (no hops, no operator, no list).
    pub(crate) fn direct_column(&self) -> Option<&PropInfo> {
        match (self.props.as_slice(), self.op) {
            ([(_, p)], None) if !p.is_list() => Some(p),
            _ => None,
        }
    }
}

/// A bound predicate.
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    True,
    False,
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Cmp {
        left: Side,
        op: CompareOp,
        right: Side,
        ci: bool,
    },
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidQuery, msg)
}

/// A parsed and bound query: the filter and its trailing clauses.
pub(crate) struct BoundQuery {
    pub(crate) pred: Pred,
    /// `SORT(...)` keys: path and ascending.
    pub(crate) sort: Vec<(Path, bool)>,
    pub(crate) distinct: Vec<Path>,
    pub(crate) limit: Option<usize>,
}

/// Parses `predicate` and binds `args`; checks the paths against `class` in `catalog`.
pub(crate) fn bind(
    catalog: &Catalog,
    class: &ClassInfo,
    predicate: &str,
    args: &[Value],
) -> Result<BoundQuery> {
    let parsed = parser::parse(predicate).map_err(|e| invalid(format!("{e}")))?;
    let pred = bind_expr(catalog, class, &parsed.filter, args)?;
    let sort = parsed
        .sort
        .iter()
        .map(|k| {
            let p = Path {
                names: k.path.clone(),
                op: None,
                aggregate_property: None,
            };
            resolve(catalog, class, &p)?;
            Ok((p, k.ascending))
        })
        .collect::<Result<Vec<_>>>()?;
    let distinct = parsed
        .distinct
        .iter()
        .map(|names| {
            let p = Path {
                names: names.clone(),
                op: None,
                aggregate_property: None,
            };
            resolve(catalog, class, &p)?;
            Ok(p)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BoundQuery {
        pred,
        sort,
        distinct,
        limit: parsed.limit,
    })
}

fn bind_expr(catalog: &Catalog, class: &ClassInfo, expr: &Expr, args: &[Value]) -> Result<Pred> {
    Ok(match expr {
        Expr::True => Pred::True,
        Expr::False => Pred::False,
        Expr::And(items) => Pred::And(
            items
                .iter()
                .map(|e| bind_expr(catalog, class, e, args))
                .collect::<Result<_>>()?,
        ),
        Expr::Or(items) => Pred::Or(
            items
                .iter()
                .map(|e| bind_expr(catalog, class, e, args))
                .collect::<Result<_>>()?,
        ),
        Expr::Not(e) => Pred::Not(Box::new(bind_expr(catalog, class, e, args)?)),
        Expr::Compare(c) => {
            let left = bind_operand(&c.lhs, args)?;
            let right = bind_operand(&c.rhs, args)?;
            let mut types = Vec::new();
            for side in [&left, &right] {
                if let Side::Path(p) = side {
                    types.push(Some(result_type(&resolve(catalog, class, p)?)));
                } else {
                    types.push(None);
                }
            }
            if let (Side::Const(_), Side::Const(_)) = (&left, &right) {
                return Err(invalid("a comparison needs at least one property"));
            }
            check_types(&left, &right, &types, c.op)?;
            Pred::Cmp {
                left,
                op: c.op,
                right,
                ci: c.case_insensitive,
            }
        }
    })
}

fn bind_operand(op: &Operand, args: &[Value]) -> Result<Side> {
    Ok(match op {
        Operand::Property {
            path,
            collection_op,
            aggregate_property,
        } => Side::Path(Path {
            names: path.clone(),
            op: *collection_op,
            aggregate_property: aggregate_property.clone(),
        }),
        Operand::Argument(n) => Side::Const(args.get(*n).cloned().ok_or_else(|| {
            invalid(format!(
                "the query uses ${n} but only {} argument(s) were given",
                args.len()
            ))
        })?),
        Operand::Literal(l) => Side::Const(match l {
            Literal::Null => Value::Null,
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Int(i) => Value::Int(*i),
            Literal::Double(d) => Value::Double(*d),
            Literal::String(s) => Value::String(s.clone()),
            Literal::Timestamp { seconds, nanos } => {
                Value::Timestamp(Timestamp::new(*seconds, *nanos))
            }
            Literal::Binary(b) => Value::Binary(b.clone()),
        }),
    })
}

/// The type a path yields (for `@count`, INT).
fn result_type(p: &ResolvedPath) -> PropertyType {
    match (p.op, &p.aggregate) {
        (Some(CollectionOp::Count), _) => PropertyType::Int,
        (Some(CollectionOp::Avg), _) => PropertyType::Double,
        (Some(_), Some((_, prop))) => prop.ty,
        _ => p
            .props
            .last()
            .map_or(PropertyType::Int, |(_, prop)| prop.ty),
    }
}

fn check_types(
    left: &Side,
    right: &Side,
    types: &[Option<PropertyType>],
    op: CompareOp,
) -> Result<()> {
    let (ty, constant) = match (left, right) {
        (Side::Path(_), Side::Const(v)) => (types[0].expect("path"), v),
        (Side::Const(v), Side::Path(_)) => (types[1].expect("path"), v),
        _ => return Ok(()),
    };
    let string_op = matches!(
        op,
        CompareOp::BeginsWith | CompareOp::EndsWith | CompareOp::Contains | CompareOp::Like
    );
    if string_op && !matches!(ty, PropertyType::String | PropertyType::Binary) {
        return Err(invalid(format!(
            "string operators need a string or binary property, not {}",
            ty.name()
        )));
    }
    let ok = match constant {
        Value::Null => true,
        Value::Int(_) | Value::Float(_) | Value::Double(_) => ty.is_numeric(),
        Value::Bool(_) => ty == PropertyType::Bool,
        Value::String(_) => ty == PropertyType::String,
        Value::Binary(_) => matches!(ty, PropertyType::Binary | PropertyType::String),
        Value::Timestamp(_) => ty == PropertyType::Timestamp,
        Value::Link(_) => ty == PropertyType::Link,
    };
    if !ok {
        return Err(invalid(format!(
            "cannot compare a {} property with a {} value",
            ty.name(),
            constant.type_name()
        )));
    }
    if matches!(
        op,
        CompareOp::Lt | CompareOp::Le | CompareOp::Gt | CompareOp::Ge
    ) && matches!(
        ty,
        PropertyType::Bool | PropertyType::Link | PropertyType::Binary
    ) {
        return Err(invalid(format!(
            "{} properties cannot be ordered with <, <=, > or >=",
            ty.name()
        )));
    }
    Ok(())
}

/// Resolves a path against the current catalog.
pub(crate) fn resolve(catalog: &Catalog, class: &ClassInfo, path: &Path) -> Result<ResolvedPath> {
    let mut current = class;
    let mut props = Vec::new();
    for (i, name) in path.names.iter().enumerate() {
        let prop = current
            .prop(name)
            .ok_or_else(|| invalid(format!("class '{}' has no property '{name}'", current.name)))?
            .clone();
        let last = i + 1 == path.names.len();
        let class_id = current.id;
        if !last {
            if prop.ty != PropertyType::Link {
                return Err(invalid(format!(
                    "'{}.{name}' is not a link, so the path cannot continue",
                    current.name
                )));
            }
            current = catalog.class_by_id_required(prop.link_class())?;
        }
        props.push((class_id, prop));
    }
    let aggregate = match (&path.op, &path.aggregate_property) {
        (Some(_), Some(name)) => {
            let (_, list) = props.last().ok_or_else(|| invalid("empty path"))?;
            if !list.is_list() || list.ty != PropertyType::Link {
                return Err(invalid(format!("'@…{name}' needs a list of links")));
            }
            let target = catalog.class_by_id_required(list.link_class())?;
            let p = target.prop(name).ok_or_else(|| {
                invalid(format!("class '{}' has no property '{name}'", target.name))
            })?;
            Some((target.id, p.clone()))
        }
        _ => None,
    };
    if let Some(op) = path.op {
        let (_, last) = props.last().ok_or_else(|| invalid("empty path"))?;
        if !last.is_list() {
            return Err(invalid(format!(
                "collection operator {op:?} needs a list property, and '{}' is not one",
                last.name
            )));
        }
        if op != CollectionOp::Count
            && aggregate.is_none()
            && !last.ty.is_numeric()
            && last.ty != PropertyType::Timestamp
        {
            return Err(invalid(format!(
                "@min/@max/@sum/@avg need numbers, and '{}' holds {}",
                last.name,
                last.ty.name()
            )));
        }
    }
    Ok(ResolvedPath {
        props,
        op: path.op,
        aggregate,
    })
}
