//! Conversions between C arguments and Rust values: strings, values, user data, out buffers.

use crate::error::{Error, ErrorCode, Result};
use crate::value::{ObjLink, Timestamp, Value};
use crate::Realm;
use std::ffi::{c_char, c_void, CStr};

/// Value kinds of `shoal_value_t.kind`.
pub const SHOAL_VALUE_NULL: i32 = 0;
/// `data.boolean` is set.
pub const SHOAL_VALUE_BOOL: i32 = 1;
/// `data.integer` is set.
pub const SHOAL_VALUE_INT: i32 = 2;
/// `data.fnum` is set.
pub const SHOAL_VALUE_FLOAT: i32 = 3;
/// `data.dnum` is set.
pub const SHOAL_VALUE_DOUBLE: i32 = 4;
/// `data.string` is set (UTF-8, `size` bytes, not necessarily NUL-terminated on input).
pub const SHOAL_VALUE_STRING: i32 = 5;
/// `data.binary` is set.
pub const SHOAL_VALUE_BINARY: i32 = 6;
/// `data.timestamp` is set.
pub const SHOAL_VALUE_TIMESTAMP: i32 = 7;
/// `data.link` is set.
pub const SHOAL_VALUE_LINK: i32 = 8;

/// A string of `size` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shoal_string_t {
    /// UTF-8 bytes (NUL-terminated when returned by Shoal).
    pub data: *const c_char,
    /// Byte count, without any terminating NUL.
    pub size: usize,
}

/// Bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shoal_binary_t {
    /// The bytes (may be NULL when `size` is 0).
    pub data: *const u8,
    /// Byte count.
    pub size: usize,
}

/// A point in time.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shoal_timestamp_t {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds added to `seconds`.
    pub nanos: i32,
}

/// A link to an object: its class name and its object key (see `shoal_object_key`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shoal_link_t {
    /// The target's class name (NUL-terminated).
    pub class_name: *const c_char,
    /// The target's object key.
    pub key: u64,
}

/// The payload of a `shoal_value_t`; which member is valid depends on `kind`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union shoal_value_data_t {
    /// For `SHOAL_VALUE_BOOL`.
    pub boolean: bool,
    /// For `SHOAL_VALUE_INT`.
    pub integer: i64,
    /// For `SHOAL_VALUE_FLOAT`.
    pub fnum: f32,
    /// For `SHOAL_VALUE_DOUBLE`.
    pub dnum: f64,
    /// For `SHOAL_VALUE_STRING`.
    pub string: shoal_string_t,
    /// For `SHOAL_VALUE_BINARY`.
    pub binary: shoal_binary_t,
    /// For `SHOAL_VALUE_TIMESTAMP`.
    pub timestamp: shoal_timestamp_t,
    /// For `SHOAL_VALUE_LINK`.
    pub link: shoal_link_t,
}

/// A tagged value: `kind` is one of `SHOAL_VALUE_*`. Values filled in by Shoal own their
/// strings and bytes: free them with `shoal_value_free`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct shoal_value_t {
    /// Which member of `data` is valid.
    pub kind: i32,
    /// The payload.
    pub data: shoal_value_data_t,
}

impl shoal_value_t {
    pub(crate) fn null() -> shoal_value_t {
        shoal_value_t {
            kind: SHOAL_VALUE_NULL,
            data: shoal_value_data_t { integer: 0 },
        }
    }
}

/// A borrowed C string as `&str`; NULL and invalid UTF-8 are `InvalidArgument` errors.
pub(crate) fn str_arg<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} must not be NULL"),
        ));
    }
    // Safety: the caller passes a NUL-terminated string that stays valid during the call
    // (the documented contract of every `const char*` argument).
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| {
        Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} is not valid UTF-8"),
        )
    })
}

/// Like [`str_arg`], with NULL allowed (`None`).
pub(crate) fn opt_str_arg<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        str_arg(ptr, what).map(Some)
    }
}

/// A borrowed byte buffer; NULL is allowed only for an empty buffer.
pub(crate) fn bytes_arg<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} is NULL but its length is {len}"),
        ));
    }
    // Safety: the caller passes `len` readable bytes at `ptr`, valid during the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Converts a C value to a Rust value. LINK values name their class, resolved in `realm`.
pub(crate) fn value_arg(v: *const shoal_value_t, realm: Option<&Realm>) -> Result<Value> {
    if v.is_null() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            "the value pointer must not be NULL",
        ));
    }
    // Safety: the caller passes a pointer to a valid `shoal_value_t`.
    let v = unsafe { &*v };
    // Safety (each union read below): `kind` says which member the caller initialized.
    Ok(match v.kind {
        SHOAL_VALUE_NULL => Value::Null,
        // Read the byte rather than the `bool` member: C may store any non-zero byte, and a
        // Rust `bool` other than 0 or 1 is undefined behaviour.
        SHOAL_VALUE_BOOL => Value::Bool(unsafe { *std::ptr::addr_of!(v.data).cast::<u8>() } != 0),
        SHOAL_VALUE_INT => Value::Int(unsafe { v.data.integer }),
        SHOAL_VALUE_FLOAT => Value::Float(unsafe { v.data.fnum }),
        SHOAL_VALUE_DOUBLE => Value::Double(unsafe { v.data.dnum }),
        SHOAL_VALUE_STRING => {
            let s = unsafe { v.data.string };
            let bytes = bytes_arg(s.data.cast(), s.size, "the string value")?;
            Value::String(
                std::str::from_utf8(bytes)
                    .map_err(|_| {
                        Error::new(
                            ErrorCode::InvalidArgument,
                            "the string value is not valid UTF-8",
                        )
                    })?
                    .to_owned(),
            )
        }
        SHOAL_VALUE_BINARY => {
            let b = unsafe { v.data.binary };
            Value::Binary(bytes_arg(b.data, b.size, "the binary value")?.to_vec())
        }
        SHOAL_VALUE_TIMESTAMP => {
            let t = unsafe { v.data.timestamp };
            Value::Timestamp(Timestamp::new(t.seconds, t.nanos))
        }
        SHOAL_VALUE_LINK => {
            let l = unsafe { v.data.link };
            let class = str_arg(l.class_name, "the link's class name")?;
            let realm = realm.ok_or_else(|| Error::invalid("a link value cannot be used here"))?;
            let class_id = realm.class_id(class)?;
            Value::Link(ObjLink {
                class_id,
                key: l.key,
            })
        }
        other => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("unknown value kind {other}"),
            ))
        }
    })
}

/// Copies `bytes` into a new `malloc` buffer with a NUL after them (free with `shoal_free`).
pub(crate) fn malloc_bytes(bytes: &[u8]) -> *mut u8 {
    // Safety: malloc returns either NULL or a buffer of the requested size, which we fill
    // within bounds.
    unsafe {
        let p = libc::malloc(bytes.len() + 1).cast::<u8>();
        if p.is_null() {
            return p;
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
        p
    }
}

/// A new `malloc` C string (free with `shoal_free`).
pub(crate) fn malloc_string(s: &str) -> *mut c_char {
    malloc_bytes(s.as_bytes()).cast()
}

/// Converts a Rust value to a C value that owns its buffers.
pub(crate) fn value_out(v: &Value, realm: &Realm) -> Result<shoal_value_t> {
    let (kind, data) = match v {
        Value::Null => (SHOAL_VALUE_NULL, shoal_value_data_t { integer: 0 }),
        Value::Bool(b) => (SHOAL_VALUE_BOOL, shoal_value_data_t { boolean: *b }),
        Value::Int(i) => (SHOAL_VALUE_INT, shoal_value_data_t { integer: *i }),
        Value::Float(f) => (SHOAL_VALUE_FLOAT, shoal_value_data_t { fnum: *f }),
        Value::Double(d) => (SHOAL_VALUE_DOUBLE, shoal_value_data_t { dnum: *d }),
        Value::String(s) => (
            SHOAL_VALUE_STRING,
            shoal_value_data_t {
                string: shoal_string_t {
                    data: malloc_string(s),
                    size: s.len(),
                },
            },
        ),
        Value::Binary(b) => (
            SHOAL_VALUE_BINARY,
            shoal_value_data_t {
                binary: shoal_binary_t {
                    data: malloc_bytes(b),
                    size: b.len(),
                },
            },
        ),
        Value::Timestamp(t) => (
            SHOAL_VALUE_TIMESTAMP,
            shoal_value_data_t {
                timestamp: shoal_timestamp_t {
                    seconds: t.seconds,
                    nanos: t.nanos,
                },
            },
        ),
        Value::Link(l) => {
            let name = realm
                .with_view(|v| Ok(v.catalog().class_by_id_required(l.class_id)?.name.clone()))?;
            (
                SHOAL_VALUE_LINK,
                shoal_value_data_t {
                    link: shoal_link_t {
                        class_name: malloc_string(&name),
                        key: l.key,
                    },
                },
            )
        }
    };
    Ok(shoal_value_t { kind, data })
}

/// Writes `v` to the caller's `out` (which must not be NULL).
pub(crate) fn write_value(out: *mut shoal_value_t, v: &Value, realm: &Realm) -> Result<()> {
    let out = out_arg(out, "the out value")?;
    *out = value_out(v, realm)?;
    Ok(())
}

/// A required out-parameter as a mutable reference.
pub(crate) fn out_arg<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T> {
    if ptr.is_null() {
        return Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("{what} pointer must not be NULL"),
        ));
    }
    // Safety: the caller passes a valid, writable, exclusive pointer for the call's duration.
    Ok(unsafe { &mut *ptr })
}

/// Frees the buffers a Shoal-filled value owns and resets it to NULL.
pub(crate) fn free_value(v: &mut shoal_value_t) {
    // Safety: values filled by Shoal own malloc'd buffers in the member `kind` names.
    unsafe {
        match v.kind {
            SHOAL_VALUE_STRING => libc::free(v.data.string.data as *mut c_void),
            SHOAL_VALUE_BINARY => libc::free(v.data.binary.data as *mut c_void),
            SHOAL_VALUE_LINK => libc::free(v.data.link.class_name as *mut c_void),
            _ => {}
        }
    }
    *v = shoal_value_t::null();
}

/// A C callback's user data and its free function, freed exactly once when dropped.
pub(crate) struct UserData {
    pub(crate) ptr: *mut c_void,
    free: Option<unsafe extern "C" fn(*mut c_void)>,
}

// Safety: the header documents that userdata and callbacks may be used from library threads;
// the pointer is only handed back to the caller's own functions.
unsafe impl Send for UserData {}
// Safety: as above; Shoal never dereferences the pointer itself.
unsafe impl Sync for UserData {}

impl UserData {
    pub(crate) fn new(
        ptr: *mut c_void,
        free: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> UserData {
        UserData { ptr, free }
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // Safety: the caller supplied `free` for exactly this pointer; it runs once.
            unsafe { free(self.ptr) }
        }
    }
}
