//! Unsigned LEB128 varints and zigzag mapping: the one implementation behind both binary
//! codecs, the sync protocol's messages ([`super::sync`]) and the history's changesets
//! (`src/history.rs`).
//!
//! A varint holds 7 bits per byte, least significant group first; the high bit of a byte says
//! another one follows. A `u64` takes 1 to [`MAX_LEN`] bytes. Encoding always writes the
//! shortest form. The two codecs decode differently, and this module keeps both exactly:
//!
//! - [`decode`] (the sync protocol): canonical only. An overlong form (a last byte of `0x00`
//!   after others) is [`VarintError::Overlong`]; a 10th byte other than `0x00`/`0x01` (bits
//!   beyond 64) is [`VarintError::Overflow`]. Every value then has exactly one encoding.
//! - [`decode_lenient`] (changesets, formats 1 and 2, as they have always been read): any
//!   form of at most [`MAX_LEN`] bytes; bits beyond the 64th are dropped. Only a missing byte
//!   ([`VarintError::Truncated`]) or an 11th byte ([`VarintError::TooLong`]) is an error.
//!
//! Both are bounds-checked and never panic.

use std::fmt;

/// The most bytes a `u64` varint takes.
pub(crate) const MAX_LEN: usize = 10;

/// Why bytes are not a varint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    /// The input ended inside the varint (the missing byte is just past the input).
    Truncated,
    /// A canonical decoder met a longer form than needed.
    Overlong,
    /// A canonical decoder met a 10th byte carrying bits beyond 64.
    Overflow,
    /// A lenient decoder met more than [`MAX_LEN`] bytes.
    TooLong,
}

impl fmt::Display for VarintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VarintError::Truncated => "truncated",
            VarintError::Overlong => "overlong varint",
            VarintError::Overflow => "varint does not fit in 64 bits",
            VarintError::TooLong => "varint longer than 10 bytes",
        })
    }
}

/// An encoded varint, on the stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoded {
    bytes: [u8; MAX_LEN],
    len: u8,
}

impl Encoded {
    /// The encoded bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The shortest encoding of `v`.
pub(crate) fn encode(mut v: u64) -> Encoded {
    let mut out = Encoded {
        bytes: [0; MAX_LEN],
        len: 0,
    };
    let mut i = 0;
    while v >= 0x80 {
        out.bytes[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out.bytes[i] = v as u8;
    out.len = (i + 1) as u8;
    out
}

/// Appends the shortest encoding of `v`.
pub(crate) fn put(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(encode(v).as_slice());
}

/// Decodes the canonical varint at the start of `bytes`: the value and the bytes it took.
///
/// # Errors
/// [`VarintError::Truncated`], [`VarintError::Overlong`] or [`VarintError::Overflow`].
pub(crate) fn decode(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
    decode_with(bytes, true)
}

/// Decodes the varint at the start of `bytes` in any form of at most [`MAX_LEN`] bytes,
/// dropping bits beyond 64: the value and the bytes it took.
///
/// # Errors
/// [`VarintError::Truncated`] or [`VarintError::TooLong`].
pub(crate) fn decode_lenient(bytes: &[u8]) -> Result<(u64, usize), VarintError> {
    decode_with(bytes, false)
}

fn decode_with(bytes: &[u8], canonical: bool) -> Result<(u64, usize), VarintError> {
    let mut value = 0u64;
    for (i, shift) in (0..64).step_by(7).enumerate() {
        let b = *bytes.get(i).ok_or(VarintError::Truncated)?;
        if canonical && shift == 63 && b > 1 {
            return Err(VarintError::Overflow);
        }
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            if canonical && b == 0 && shift > 0 {
                return Err(VarintError::Overlong);
            }
            return Ok((value, i + 1));
        }
    }
    // Canonical: unreachable (a 10th byte of 0 or 1 ends the varint).
    Err(VarintError::TooLong)
}

/// Zigzag-maps an `i64` so that small magnitudes of either sign encode short.
pub(crate) fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag64`].
pub(crate) fn unzigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Zigzag-maps an `i32`: `(n << 1) ^ (n >> 31)`.
pub(crate) fn zigzag32(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

/// The inverse of [`zigzag32`].
pub(crate) fn unzigzag32(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 byte per started group of 7 significant bits, at least 1.
    fn encoded_len(v: u64) -> usize {
        (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
    }

    const EDGES: [u64; 16] = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        300,
        0x3fff,
        0x4000,
        0x1f_ffff,
        0x20_0000,
        u32::MAX as u64,
        1 << 56,
        (1 << 63) - 1,
        1 << 63,
        u64::MAX - 1,
        u64::MAX,
    ];

    #[test]
    fn round_trips_in_both_decoders() {
        for v in EDGES.into_iter().chain((0..64).map(|s| 1u64 << s)) {
            let e = encode(v);
            assert_eq!(e.as_slice().len(), encoded_len(v), "{v}");
            assert_eq!(decode(e.as_slice()), Ok((v, encoded_len(v))), "{v}");
            assert_eq!(decode_lenient(e.as_slice()), Ok((v, encoded_len(v))), "{v}");
            let mut buf = vec![0xaa];
            put(&mut buf, v);
            buf.push(0x55);
            assert_eq!(&buf[1..buf.len() - 1], e.as_slice());
            // Decoding stops at the varint's end.
            assert_eq!(decode(&buf[1..]).map(|(v, _)| v), Ok(v));
        }
    }

    #[test]
    fn golden_bytes() {
        assert_eq!(encode(0).as_slice(), [0]);
        assert_eq!(encode(0x7f).as_slice(), [0x7f]);
        assert_eq!(encode(0x80).as_slice(), [0x80, 0x01]);
        assert_eq!(encode(300).as_slice(), [0xac, 0x02]);
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(encode(u64::MAX).as_slice(), max);
        assert_eq!(encoded_len(u64::MAX), MAX_LEN);
    }

    #[test]
    fn truncated_inputs_are_refused_by_both() {
        for bytes in [&[][..], &[0x80], &[0xff, 0xff], &[0xff; 9]] {
            assert_eq!(decode(bytes), Err(VarintError::Truncated), "{bytes:?}");
            assert_eq!(
                decode_lenient(bytes),
                Err(VarintError::Truncated),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn overlong_forms_are_refused_canonically_and_read_leniently() {
        for (bytes, value) in [
            (&[0x80, 0x00][..], 0),
            (&[0x81, 0x00], 1),
            (&[0xff, 0x80, 0x00], 0x7f),
            (
                &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
                0,
            ),
        ] {
            assert_eq!(decode(bytes), Err(VarintError::Overlong), "{bytes:?}");
            assert_eq!(decode_lenient(bytes), Ok((value, bytes.len())), "{bytes:?}");
        }
        // A lone zero is the canonical zero.
        assert_eq!(decode(&[0x00]), Ok((0, 1)));
    }

    #[test]
    fn bits_beyond_64_are_refused_canonically_and_dropped_leniently() {
        // Only the low bit of a 10th byte lands in the u64 (bit 63).
        for (last, value) in [(0x02u8, u64::MAX >> 1), (0x7f, u64::MAX)] {
            let mut bytes = vec![0xff; 9];
            bytes.push(last);
            assert_eq!(decode(&bytes), Err(VarintError::Overflow), "{last}");
            assert_eq!(decode_lenient(&bytes), Ok((value, MAX_LEN)), "{last}");
        }
        // A continuation bit on the 10th byte: overflow canonically, too long leniently.
        let mut bytes = vec![0x80; 10];
        bytes.push(0x00);
        assert_eq!(decode(&bytes), Err(VarintError::Overflow));
        assert_eq!(decode_lenient(&bytes), Err(VarintError::TooLong));
        assert_eq!(decode_lenient(&bytes[..10]), Err(VarintError::TooLong));
    }

    #[test]
    fn zigzag_maps_small_magnitudes_short() {
        for (v, z) in [
            (0i64, 0u64),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
        ] {
            assert_eq!(zigzag64(v), z);
            assert_eq!(unzigzag64(z), v);
        }
        assert_eq!(zigzag64(i64::MIN), u64::MAX);
        assert_eq!(unzigzag64(u64::MAX), i64::MIN);
        for (v, z) in [
            (0i32, 0u32),
            (-1, 1),
            (1, 2),
            (103, 206),
            (i32::MIN, u32::MAX),
        ] {
            assert_eq!(zigzag32(v), z);
            assert_eq!(unzigzag32(z), v);
        }
        assert_eq!(unzigzag32(u32::MAX - 1), i32::MAX);
    }
}
