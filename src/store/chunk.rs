//! The byte layout of a column chunk: up to [`CHUNK_ROWS`] values of one property.
//!
//! A class's rows are numbered by object key; row `k` lives in chunk `k / CHUNK_ROWS` at
//! position `k % CHUNK_ROWS`. Each property of a class is stored as its own sequence of chunks,
//! so a scan or an aggregate reads only the columns it needs (Realm's columnar layout). The same
//! layout encodes the elements of one list.
//!
//! ```text
//! offset  size        field
//! 0       1           element type (PropertyType code)
//! 1       4           n: number of values (u32 LE)
//! 5       ceil(n/8)   presence bitmap: bit i set = value i is not NULL (LSB first)
//! ...                 payload, by type:
//!   BOOL       n × u8
//!   INT        n × i64 LE
//!   FLOAT      n × f32 LE
//!   DOUBLE     n × f64 LE
//!   TIMESTAMP  n × (i64 LE seconds, i32 LE nanos)
//!   LINK       n × u64 LE object key (target class from the schema)
//!   STRING,
//!   BINARY     (n + 1) × u32 LE end offsets into the data that follows (first is 0), then data
//! ```
//! NULL slots hold zeros in fixed-width payloads and an empty range in variable-width ones.
//! **Invariant:** all integers are little-endian whatever the host; readers never trust a length
//! without checking it against the buffer (a corrupt chunk is an error, never a panic).

use crate::error::{Error, ErrorCode, Result};
use crate::value::{ObjLink, PropertyType, Timestamp, Value, ValueRef};

/// Rows per column chunk. Small enough that a single-object write rewrites little, large
/// enough that a scan of a million rows touches only a few thousand chunks.
pub(crate) const CHUNK_ROWS: u64 = 256;

const HEADER: usize = 5;

fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorCode::IncompatibleFile,
        format!("corrupt column chunk: {what}"),
    )
}

fn fixed_width(ty: PropertyType) -> Option<usize> {
    match ty {
        PropertyType::Bool => Some(1),
        PropertyType::Int | PropertyType::Double | PropertyType::Link => Some(8),
        PropertyType::Float => Some(4),
        PropertyType::Timestamp => Some(12),
        PropertyType::String | PropertyType::Binary => None,
    }
}

/// Encodes `values` (each NULL or of type `ty`; links of `link_class`) as one chunk.
///
/// Fails with `WrongType` if a value does not match `ty`; nothing is written then.
pub(crate) fn encode(ty: PropertyType, values: &[Value]) -> Result<Vec<u8>> {
    let n = values.len();
    let mut out = Vec::with_capacity(HEADER + n.div_ceil(8) + n * fixed_width(ty).unwrap_or(12));
    out.push(ty as u8);
    out.extend_from_slice(
        &u32::try_from(n)
            .map_err(|_| Error::invalid("list too long"))?
            .to_le_bytes(),
    );
    let bitmap_at = out.len();
    out.resize(bitmap_at + n.div_ceil(8), 0);
    for (i, v) in values.iter().enumerate() {
        if !v.is_null() {
            out[bitmap_at + i / 8] |= 1 << (i % 8);
        }
    }
    let mismatch =
        |v: &Value| Error::wrong_type(format!("expected {} but got {}", ty.name(), v.type_name()));
    match ty {
        PropertyType::String | PropertyType::Binary => {
            let offsets_at = out.len();
            out.resize(offsets_at + (n + 1) * 4, 0);
            let mut end = 0u32;
            for (i, v) in values.iter().enumerate() {
                let bytes: &[u8] = match (ty, v) {
                    (_, Value::Null) => &[],
                    (PropertyType::String, Value::String(s)) => s.as_bytes(),
                    (PropertyType::Binary, Value::Binary(b)) => b,
                    _ => return Err(mismatch(v)),
                };
                out.extend_from_slice(bytes);
                end = u32::try_from(out.len() - offsets_at - (n + 1) * 4)
                    .map_err(|_| Error::invalid("chunk larger than 4 GiB"))?;
                let at = offsets_at + (i + 1) * 4;
                out[at..at + 4].copy_from_slice(&end.to_le_bytes());
            }
            let _ = end;
        }
        _ => {
            for v in values {
                match (ty, v) {
                    (PropertyType::Bool, Value::Null) => out.push(0),
                    (PropertyType::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
                    (PropertyType::Int, Value::Null) => out.extend_from_slice(&0i64.to_le_bytes()),
                    (PropertyType::Int, Value::Int(i)) => out.extend_from_slice(&i.to_le_bytes()),
                    (PropertyType::Float, Value::Null) => {
                        out.extend_from_slice(&0f32.to_le_bytes())
                    }
                    (PropertyType::Float, Value::Float(f)) => {
                        out.extend_from_slice(&f.to_le_bytes())
                    }
                    (PropertyType::Double, Value::Null) => {
                        out.extend_from_slice(&0f64.to_le_bytes())
                    }
                    (PropertyType::Double, Value::Double(d)) => {
                        out.extend_from_slice(&d.to_le_bytes())
                    }
                    (PropertyType::Timestamp, Value::Null) => out.extend_from_slice(&[0; 12]),
                    (PropertyType::Timestamp, Value::Timestamp(t)) => {
                        out.extend_from_slice(&t.seconds.to_le_bytes());
                        out.extend_from_slice(&t.nanos.to_le_bytes());
                    }
                    (PropertyType::Link, Value::Null) => out.extend_from_slice(&0u64.to_le_bytes()),
                    (PropertyType::Link, Value::Link(l)) => {
                        out.extend_from_slice(&l.key.to_le_bytes())
                    }
                    _ => return Err(mismatch(v)),
                }
            }
        }
    }
    Ok(out)
}

/// A validated, borrowed view of an encoded chunk; reads single values without decoding the rest.
#[derive(Clone, Copy)]
pub(crate) struct ChunkView<'a> {
    ty: PropertyType,
    len: usize,
    bitmap: &'a [u8],
    payload: &'a [u8],
    /// For STRING/BINARY: the end-offset table; empty otherwise.
    offsets: &'a [u8],
    /// Class of link targets, to build [`ObjLink`]s.
    link_class: u32,
}

impl<'a> ChunkView<'a> {
    /// Checks the header and sizes of `bytes`. `link_class` is the target class for LINK chunks.
    pub(crate) fn new(bytes: &'a [u8], link_class: u32) -> Result<ChunkView<'a>> {
        if bytes.len() < HEADER {
            return Err(corrupt("shorter than its header"));
        }
        let ty =
            PropertyType::from_code(i32::from(bytes[0])).ok_or_else(|| corrupt("unknown type"))?;
        let len = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes")) as usize;
        let bitmap_end = HEADER
            .checked_add(len.div_ceil(8))
            .ok_or_else(|| corrupt("length"))?;
        let bitmap = bytes
            .get(HEADER..bitmap_end)
            .ok_or_else(|| corrupt("truncated bitmap"))?;
        let rest = &bytes[bitmap_end..];
        let (offsets, payload) = match fixed_width(ty) {
            Some(w) => {
                let need = len.checked_mul(w).ok_or_else(|| corrupt("length"))?;
                (
                    &rest[..0],
                    rest.get(..need)
                        .ok_or_else(|| corrupt("truncated payload"))?,
                )
            }
            None => {
                let table = (len + 1) * 4;
                let offsets = rest
                    .get(..table)
                    .ok_or_else(|| corrupt("truncated offsets"))?;
                let data = &rest[table..];
                let last =
                    u32::from_le_bytes(offsets[len * 4..].try_into().expect("4 bytes")) as usize;
                if last > data.len() {
                    return Err(corrupt("offset past the end"));
                }
                (offsets, data)
            }
        };
        Ok(ChunkView {
            ty,
            len,
            bitmap,
            payload,
            offsets,
            link_class,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn property_type(&self) -> PropertyType {
        self.ty
    }

    pub(crate) fn is_null(&self, i: usize) -> bool {
        self.bitmap[i / 8] & (1 << (i % 8)) == 0
    }

    fn fixed(&self, i: usize, w: usize) -> &'a [u8] {
        &self.payload[i * w..(i + 1) * w]
    }

    fn offset(&self, i: usize) -> usize {
        u32::from_le_bytes(self.offsets[i * 4..i * 4 + 4].try_into().expect("4 bytes")) as usize
    }

    /// The integer at `i` for INT chunks (NULL → `None`); a fast path for scans.
    pub(crate) fn int_at(&self, i: usize) -> Option<i64> {
        if self.ty != PropertyType::Int || i >= self.len || self.is_null(i) {
            return None;
        }
        Some(i64::from_le_bytes(
            self.fixed(i, 8).try_into().expect("8 bytes"),
        ))
    }

    /// A 256-row mask of the rows of a full INT chunk whose value satisfies `test`.
    #[inline]
    pub(crate) fn int_mask(&self, test: impl Fn(i64) -> bool) -> [u64; 4] {
        let mut out = [0u64; 4];
        for (i, b) in self.payload.chunks_exact(8).take(256).enumerate() {
            let v = i64::from_le_bytes(b.try_into().expect("8"));
            out[i / 64] |= u64::from(test(v)) << (i % 64);
        }
        out
    }

    /// Whether no value of the chunk is NULL.
    pub(crate) fn all_present(&self) -> bool {
        let full = self.len / 8;
        self.bitmap[..full].iter().all(|b| *b == 0xff)
            && (self.len.is_multiple_of(8) || self.bitmap[full] == (1u8 << (self.len % 8)) - 1)
    }

    /// `(exact integer sum, float sum)` of a chunk without NULLs, for INT, FLOAT or DOUBLE
    /// chunks: tight loops over the raw payload that the compiler can vectorize.
    pub(crate) fn sum_all(&self) -> (i64, f64) {
        match self.ty {
            PropertyType::Int => {
                let ints = self
                    .payload
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8")));
                ints.fold((0i64, 0.0f64), |(i, f), v| {
                    (i.wrapping_add(v), f + v as f64)
                })
            }
            PropertyType::Double => (
                0,
                self.payload
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8")))
                    .sum(),
            ),
            PropertyType::Float => (
                0,
                self.payload
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes(b.try_into().expect("4"))))
                    .sum(),
            ),
            _ => (0, 0.0),
        }
    }

    /// The number at `i` of an INT, FLOAT or DOUBLE chunk as `f64` (NULL or another type:
    /// `None`); the fast path of sums and averages.
    pub(crate) fn f64_at(&self, i: usize) -> Option<f64> {
        if i >= self.len || self.is_null(i) {
            return None;
        }
        match self.ty {
            PropertyType::Int => {
                Some(i64::from_le_bytes(self.fixed(i, 8).try_into().expect("8")) as f64)
            }
            PropertyType::Double => {
                Some(f64::from_le_bytes(self.fixed(i, 8).try_into().expect("8")))
            }
            PropertyType::Float => Some(f64::from(f32::from_le_bytes(
                self.fixed(i, 4).try_into().expect("4"),
            ))),
            _ => None,
        }
    }

    /// The value at `i`; past the end reads as NULL (rows never written).
    pub(crate) fn get(&self, i: usize) -> Result<ValueRef<'a>> {
        if i >= self.len || self.is_null(i) {
            return Ok(ValueRef::Null);
        }
        Ok(match self.ty {
            PropertyType::Bool => ValueRef::Bool(self.payload[i] != 0),
            PropertyType::Int => {
                ValueRef::Int(i64::from_le_bytes(self.fixed(i, 8).try_into().expect("8")))
            }
            PropertyType::Float => {
                ValueRef::Float(f32::from_le_bytes(self.fixed(i, 4).try_into().expect("4")))
            }
            PropertyType::Double => {
                ValueRef::Double(f64::from_le_bytes(self.fixed(i, 8).try_into().expect("8")))
            }
            PropertyType::Timestamp => {
                let b = self.fixed(i, 12);
                ValueRef::Timestamp(Timestamp {
                    seconds: i64::from_le_bytes(b[..8].try_into().expect("8")),
                    nanos: i32::from_le_bytes(b[8..].try_into().expect("4")),
                })
            }
            PropertyType::Link => ValueRef::Link(ObjLink {
                class_id: self.link_class,
                key: u64::from_le_bytes(self.fixed(i, 8).try_into().expect("8")),
            }),
            PropertyType::String | PropertyType::Binary => {
                let (start, end) = (self.offset(i), self.offset(i + 1));
                let bytes = self
                    .payload
                    .get(start..end)
                    .ok_or_else(|| corrupt("bad string offsets"))?;
                if self.ty == PropertyType::String {
                    ValueRef::String(
                        std::str::from_utf8(bytes).map_err(|_| corrupt("invalid UTF-8"))?,
                    )
                } else {
                    ValueRef::Binary(bytes)
                }
            }
        })
    }

    /// Decodes every value.
    pub(crate) fn to_values(self) -> Result<Vec<Value>> {
        (0..self.len)
            .map(|i| self.get(i).map(|v| v.to_owned()))
            .collect()
    }
}

/// Decodes a whole encoded chunk.
pub(crate) fn decode(bytes: &[u8], link_class: u32) -> Result<Vec<Value>> {
    ChunkView::new(bytes, link_class)?.to_values()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_with_nulls() {
        let cases: Vec<(PropertyType, Vec<Value>)> = vec![
            (
                PropertyType::Bool,
                vec![Value::Bool(true), Value::Null, Value::Bool(false)],
            ),
            (
                PropertyType::Int,
                vec![Value::Int(-5), Value::Null, Value::Int(i64::MAX)],
            ),
            (PropertyType::Float, vec![Value::Float(1.5), Value::Null]),
            (
                PropertyType::Double,
                vec![Value::Null, Value::Double(-2.25)],
            ),
            (
                PropertyType::String,
                vec![Value::from("héllo"), Value::Null, Value::from("")],
            ),
            (
                PropertyType::Binary,
                vec![Value::Binary(vec![0, 1, 2]), Value::Null],
            ),
            (
                PropertyType::Timestamp,
                vec![Value::Timestamp(Timestamp::new(-3, -5)), Value::Null],
            ),
            (
                PropertyType::Link,
                vec![
                    Value::Link(ObjLink {
                        class_id: 9,
                        key: 42,
                    }),
                    Value::Null,
                ],
            ),
        ];
        for (ty, values) in cases {
            let bytes = encode(ty, &values).unwrap();
            assert_eq!(decode(&bytes, 9).unwrap(), values, "{ty:?}");
        }
    }

    #[test]
    fn wrong_type_is_refused() {
        assert_eq!(
            encode(PropertyType::Int, &[Value::from("x")])
                .unwrap_err()
                .code(),
            ErrorCode::WrongType
        );
    }

    #[test]
    fn truncated_or_garbage_chunks_are_errors_not_panics() {
        let bytes = encode(
            PropertyType::String,
            &[Value::from("abc"), Value::from("defg")],
        )
        .unwrap();
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], 0); // must not panic
        }
        let mut evil = bytes.clone();
        evil[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&evil, 0).is_err());
        let mut bad_utf8 = bytes;
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert!(decode(&bad_utf8, 0).is_err());
    }
}
