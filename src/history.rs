//! History: every write transaction appends one changeset, an ordered list of instructions that
//! replays the transaction on another copy of the realm.
//!
//! Objects are named by their [`GlobalId`] (the primary key, or an id generated when the object
//! was created), never by local row numbers, so a changeset means the same on every device.
//! Links are recorded as the target's global id.
//!
//! ## Encoding (format 2; format 1 still decodes)
//! ```text
//! changeset   := 0x53 ('S') 0x02 stamp:u64 LE origin:u64 LE instruction*
//!                (format 1: 0x53 0x01 instruction*, read as stamp 0, origin 0)
//! stamp       := hybrid logical clock of the writing transaction (physical ms << 16 | counter)
//! origin      := the replica id (file salt) of the realm that made the changeset
//! instruction := tag u8, fields:
//!   1  AddClass        name:str
//!   2  AddProperty     class:str name:str type:u8 flags:varint target:optstr
//!   3  SetPrimaryKey   class:str prop:optstr
//!   4  EraseClass      class:str
//!   5  EraseProperty   class:str name:str
//!   6  SetPropertyFlags class:str name:str flags:varint   -- NULLABLE/INDEXED only; values kept
//!   10 Select          class:str id:gid          -- the object of the following 20..26
//!   11 CreateObject    class:str id:gid          -- also selects it
//!   12 EraseObject     class:str id:gid
//!   20 Set             prop:str value
//!   21 AddInt          prop:str delta:zigzag
//!   22 ListInsert      prop:str index:varint value
//!   23 ListSet         prop:str index:varint value
//!   24 ListErase       prop:str index:varint
//!   25 ListMove        prop:str from:varint to:varint
//!   26 ListClear       prop:str
//!   27 ListInsertAfter prop:str after:elem value  -- merge realms (RGA): the new element's id
//!                                                      is this instruction's order key
//!   28 ListEraseElement prop:str elem:elem
//!   29 ListSetElement  prop:str elem:elem value
//! elem   := 0 (the head: only for `after`) | 1 stamp:u64 LE origin:u64 LE index:varint
//! str    := varint n; n = 0: a new string (varint len, UTF-8 bytes) that gets the next number;
//!           n > 0: the string numbered n-1 earlier in this changeset
//! optstr := 0 | 1 str
//! gid    := 0 zigzag (int key) | 1 varint len bytes (string key) | 2 u64 LE u64 LE (generated)
//! value  := 0 null | 1 false | 2 true | 3 zigzag int | 4 f32 LE | 5 f64 LE
//!         | 6 varint len UTF-8 | 7 varint len bytes | 8 zigzag seconds zigzag nanos | 9 gid (link)
//! ```
//! Decoding checks every length against the buffer: a hostile changeset is an error.

use crate::error::{Error, ErrorCode, Result};
use crate::protocol::varint::{self, put as put_varint, unzigzag64, zigzag64, VarintError};
use crate::schema::PropertyFlags;
use crate::value::{PropertyType, Timestamp, Value};

const MAGIC: u8 = 0x53;
const FORMAT: u8 = 2;
/// Bytes of a format-2 header: magic, format, stamp, origin.
pub(crate) const HEADER_LEN: usize = 18;

// Instruction tags (the encoding above).
const TAG_ADD_CLASS: u8 = 1;
const TAG_ADD_PROPERTY: u8 = 2;
const TAG_SET_PRIMARY_KEY: u8 = 3;
const TAG_ERASE_CLASS: u8 = 4;
const TAG_ERASE_PROPERTY: u8 = 5;
const TAG_SET_PROPERTY_FLAGS: u8 = 6;
const TAG_SELECT: u8 = 10;
const TAG_CREATE_OBJECT: u8 = 11;
const TAG_ERASE_OBJECT: u8 = 12;
/// The first of the object instructions (20..=29), which act on the selected object.
const TAG_SET: u8 = 20;
const TAG_ADD_INT: u8 = 21;
const TAG_LIST_INSERT: u8 = 22;
const TAG_LIST_SET: u8 = 23;
const TAG_LIST_ERASE: u8 = 24;
const TAG_LIST_MOVE: u8 = 25;
const TAG_LIST_CLEAR: u8 = 26;
const TAG_LIST_INSERT_AFTER: u8 = 27;
const TAG_LIST_ERASE_ELEMENT: u8 = 28;
/// The last of the object instructions.
const TAG_LIST_SET_ELEMENT: u8 = 29;

/// The device-independent identity of an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GlobalId {
    /// The object's integer primary key.
    Int(i64),
    /// The object's string primary key.
    String(String),
    /// An id generated at creation for classes without a primary key: the creating file's
    /// random salt and the object's key in that file.
    Generated {
        /// The creating file's salt.
        file: u64,
        /// The object key in the creating file.
        seq: u64,
    },
}

impl GlobalId {
    /// The 16-byte form stored in the hidden global-id column of classes without a primary key.
    pub(crate) fn generated_bytes(file: u64, seq: u64) -> Vec<u8> {
        let mut b = file.to_le_bytes().to_vec();
        b.extend_from_slice(&seq.to_le_bytes());
        b
    }

    /// Parses the 16-byte stored form.
    pub(crate) fn from_generated_bytes(b: &[u8]) -> Option<GlobalId> {
        if b.len() != 16 {
            return None;
        }
        Some(GlobalId::Generated {
            file: u64::from_le_bytes(b[..8].try_into().ok()?),
            seq: u64::from_le_bytes(b[8..].try_into().ok()?),
        })
    }
}

impl std::fmt::Display for GlobalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobalId::Int(i) => write!(f, "{i}"),
            GlobalId::String(s) => write!(f, "{s:?}"),
            GlobalId::Generated { file, seq } => write!(f, "{file:016x}-{seq}"),
        }
    }
}

/// A value as recorded in history: links name their target by global id.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeValue {
    /// Any non-link value (or NULL).
    Value(Value),
    /// A link to the object with this id (of the property's target class).
    Link(GlobalId),
}

impl ChangeValue {
    pub(crate) fn as_change_ref(&self) -> ChangeRef<'_> {
        match self {
            ChangeValue::Value(v) => ChangeRef::Value(v),
            ChangeValue::Link(id) => ChangeRef::Link(id),
        }
    }
}

/// One step of a changeset.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Instruction {
    AddClass {
        name: String,
    },
    AddProperty {
        class: String,
        name: String,
        ty: PropertyType,
        flags: PropertyFlags,
        target: Option<String>,
    },
    SetPrimaryKey {
        class: String,
        prop: Option<String>,
    },
    EraseClass {
        class: String,
    },
    EraseProperty {
        class: String,
        name: String,
    },
    SetPropertyFlags {
        class: String,
        name: String,
        flags: PropertyFlags,
    },
    CreateObject {
        class: String,
        id: GlobalId,
    },
    EraseObject {
        class: String,
        id: GlobalId,
    },
    Set {
        class: String,
        id: GlobalId,
        prop: String,
        value: ChangeValue,
    },
    AddInt {
        class: String,
        id: GlobalId,
        prop: String,
        delta: i64,
    },
    ListInsert {
        class: String,
        id: GlobalId,
        prop: String,
        index: u64,
        value: ChangeValue,
    },
    ListSet {
        class: String,
        id: GlobalId,
        prop: String,
        index: u64,
        value: ChangeValue,
    },
    ListErase {
        class: String,
        id: GlobalId,
        prop: String,
        index: u64,
    },
    ListMove {
        class: String,
        id: GlobalId,
        prop: String,
        from: u64,
        to: u64,
    },
    ListClear {
        class: String,
        id: GlobalId,
        prop: String,
    },
    /// Inserts an element after element `after` (`None`: at the head); the new element's id is
    /// this instruction's order key. Recorded by realms with merge metadata (RGA lists).
    ListInsertAfter {
        class: String,
        id: GlobalId,
        prop: String,
        after: Option<OrderKey>,
        value: ChangeValue,
    },
    /// Erases the list element with this id (merge realms).
    ListEraseElement {
        class: String,
        id: GlobalId,
        prop: String,
        element: OrderKey,
    },
    /// Sets the value of the list element with this id (merge realms).
    ListSetElement {
        class: String,
        id: GlobalId,
        prop: String,
        element: OrderKey,
        value: ChangeValue,
    },
}

/// The order key of instruction `index` of the changeset with this stamp and origin: a total
/// order every copy agrees on. List elements of realms with merge metadata are named by the
/// order key of the instruction that inserted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct OrderKey {
    /// The changeset's stamp.
    pub stamp: u64,
    /// The changeset's origin replica.
    pub origin: u64,
    /// The instruction's position in the changeset.
    pub index: u32,
}

impl OrderKey {
    /// Encoded size in merge metadata.
    pub(crate) const LEN: usize = 20;

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.stamp.to_le_bytes());
        out.extend_from_slice(&self.origin.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<OrderKey> {
        Some(OrderKey {
            stamp: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            origin: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
            index: u32::from_le_bytes(b.get(16..20)?.try_into().ok()?),
        })
    }
}

/// A decoded changeset: its header and instructions.
#[derive(Debug, Clone, PartialEq)]
pub struct Changeset {
    /// The hybrid-logical-clock stamp of the transaction (0 for format 1).
    pub stamp: u64,
    /// The replica id of the realm that wrote it (0 for format 1).
    pub origin: u64,
    /// The instructions, in order; instruction `i` is ordered by `(stamp, origin, i)`.
    pub instructions: Vec<Instruction>,
}

/// The `(stamp, origin)` header of an encoded changeset without decoding the rest
/// (`(0, 0)` for format 1).
pub fn changeset_header(bytes: &[u8]) -> Result<(u64, u64)> {
    match bytes {
        [MAGIC, 1, ..] => Ok((0, 0)),
        [MAGIC, 2, rest @ ..] if rest.len() >= 16 => Ok((
            u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")),
        )),
        _ => Err(bad("not a changeset")),
    }
}

/// A value to record, borrowed (the hot path records without cloning values).
#[derive(Clone, Copy)]
pub(crate) enum ChangeRef<'a> {
    Value(&'a Value),
    Link(&'a GlobalId),
}

/// Records the instructions of one write transaction.
pub(crate) struct ChangesetBuilder {
    buf: Vec<u8>,
    /// Class and property names in order of first use; a schema has few, so a linear search
    /// beats hashing.
    strings: Vec<String>,
    /// The selected object: class name number and id.
    selected: Option<(u64, GlobalId)>,
    instructions: usize,
}

impl Default for ChangesetBuilder {
    fn default() -> Self {
        ChangesetBuilder {
            buf: {
                let mut b = Vec::with_capacity(64);
                b.extend_from_slice(&[MAGIC, FORMAT]);
                b.extend_from_slice(&[0; 16]);
                b
            },
            strings: Vec::new(),
            selected: None,
            instructions: 0,
        }
    }
}

impl ChangesetBuilder {
    /// Whether nothing was recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.instructions == 0
    }

    /// The encoded changeset, stamped.
    pub(crate) fn finish(mut self, stamp: u64, origin: u64) -> Vec<u8> {
        self.buf[2..10].copy_from_slice(&stamp.to_le_bytes());
        self.buf[10..18].copy_from_slice(&origin.to_le_bytes());
        self.buf
    }

    fn elem(&mut self, e: Option<&OrderKey>) {
        match e {
            None => self.buf.push(0),
            Some(k) => {
                self.buf.push(1);
                self.buf.extend_from_slice(&k.stamp.to_le_bytes());
                self.buf.extend_from_slice(&k.origin.to_le_bytes());
                put_varint(&mut self.buf, u64::from(k.index));
            }
        }
    }

    /// How many instructions were recorded (the index the next one gets).
    pub(crate) fn len(&self) -> usize {
        self.instructions
    }

    /// Writes a string reference and returns its number.
    fn str(&mut self, s: &str) -> u64 {
        if let Some(n) = self.string_number(s) {
            put_varint(&mut self.buf, n + 1);
            n
        } else {
            put_varint(&mut self.buf, 0);
            put_varint(&mut self.buf, s.len() as u64);
            self.buf.extend_from_slice(s.as_bytes());
            self.strings.push(s.to_owned());
            self.strings.len() as u64 - 1
        }
    }

    fn string_number(&self, s: &str) -> Option<u64> {
        self.strings.iter().position(|x| x == s).map(|n| n as u64)
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.buf.push(0),
            Some(s) => {
                self.buf.push(1);
                self.str(s);
            }
        }
    }

    fn gid(&mut self, id: &GlobalId) {
        match id {
            GlobalId::Int(i) => {
                self.buf.push(0);
                put_varint(&mut self.buf, zigzag64(*i));
            }
            GlobalId::String(s) => {
                self.buf.push(1);
                put_varint(&mut self.buf, s.len() as u64);
                self.buf.extend_from_slice(s.as_bytes());
            }
            GlobalId::Generated { file, seq } => {
                self.buf.push(2);
                self.buf.extend_from_slice(&file.to_le_bytes());
                self.buf.extend_from_slice(&seq.to_le_bytes());
            }
        }
    }

    fn value(&mut self, v: ChangeRef<'_>) {
        let b = &mut self.buf;
        match v {
            ChangeRef::Link(id) => {
                b.push(9);
                self.gid(id);
            }
            ChangeRef::Value(v) => match v {
                Value::Null | Value::Link(_) => b.push(0),
                Value::Bool(false) => b.push(1),
                Value::Bool(true) => b.push(2),
                Value::Int(i) => {
                    b.push(3);
                    put_varint(b, zigzag64(*i));
                }
                Value::Float(f) => {
                    b.push(4);
                    b.extend_from_slice(&f.to_le_bytes());
                }
                Value::Double(d) => {
                    b.push(5);
                    b.extend_from_slice(&d.to_le_bytes());
                }
                Value::String(s) => {
                    b.push(6);
                    put_varint(b, s.len() as u64);
                    b.extend_from_slice(s.as_bytes());
                }
                Value::Binary(bytes) => {
                    b.push(7);
                    put_varint(b, bytes.len() as u64);
                    b.extend_from_slice(bytes);
                }
                Value::Timestamp(t) => {
                    b.push(8);
                    put_varint(b, zigzag64(t.seconds));
                    put_varint(b, zigzag64(i64::from(t.nanos)));
                }
            },
        }
    }

    fn select(&mut self, class: &str, id: &GlobalId) {
        if let (Some((c, g)), Some(n)) = (&self.selected, self.string_number(class)) {
            if *c == n && g == id {
                return;
            }
        }
        self.buf.push(TAG_SELECT);
        let n = self.str(class);
        self.gid(id);
        self.selected = Some((n, id.clone()));
    }

    fn begin(&mut self, tag: u8) {
        self.instructions += 1;
        self.buf.push(tag);
    }

    /// Records the creation of an object (and selects it).
    pub(crate) fn create(&mut self, class: &str, id: &GlobalId) {
        self.begin(TAG_CREATE_OBJECT);
        let n = self.str(class);
        self.gid(id);
        self.selected = Some((n, id.clone()));
    }

    /// Records setting a property of an object.
    pub(crate) fn set(&mut self, class: &str, id: &GlobalId, prop: &str, value: ChangeRef<'_>) {
        self.select(class, id);
        self.begin(TAG_SET);
        self.str(prop);
        self.value(value);
    }

    /// Records an addition to a counter.
    pub(crate) fn add_int(&mut self, class: &str, id: &GlobalId, prop: &str, delta: i64) {
        self.select(class, id);
        self.begin(TAG_ADD_INT);
        self.str(prop);
        put_varint(&mut self.buf, zigzag64(delta));
    }

    /// Records the deletion of an object.
    pub(crate) fn erase(&mut self, class: &str, id: &GlobalId) {
        self.begin(TAG_ERASE_OBJECT);
        self.str(class);
        self.gid(id);
        self.selected = None;
    }

    fn object_op(&mut self, tag: u8, class: &str, id: &GlobalId, prop: &str) {
        self.select(class, id);
        self.begin(tag);
        self.str(prop);
    }

    /// Appends one instruction.
    pub(crate) fn push(&mut self, ins: &Instruction) {
        match ins {
            Instruction::AddClass { name } => {
                self.begin(TAG_ADD_CLASS);
                self.str(name);
            }
            Instruction::AddProperty {
                class,
                name,
                ty,
                flags,
                target,
            } => {
                self.begin(TAG_ADD_PROPERTY);
                self.str(class);
                self.str(name);
                self.buf.push(*ty as u8);
                put_varint(&mut self.buf, u64::from(flags.bits()));
                self.opt_str(target.as_deref());
            }
            Instruction::SetPrimaryKey { class, prop } => {
                self.begin(TAG_SET_PRIMARY_KEY);
                self.str(class);
                self.opt_str(prop.as_deref());
            }
            Instruction::EraseClass { class } => {
                self.selected = None;
                self.begin(TAG_ERASE_CLASS);
                self.str(class);
            }
            Instruction::EraseProperty { class, name } => {
                self.begin(TAG_ERASE_PROPERTY);
                self.str(class);
                self.str(name);
            }
            Instruction::SetPropertyFlags { class, name, flags } => {
                self.begin(TAG_SET_PROPERTY_FLAGS);
                self.str(class);
                self.str(name);
                put_varint(&mut self.buf, u64::from(flags.bits()));
            }
            Instruction::CreateObject { class, id } => self.create(class, id),
            Instruction::EraseObject { class, id } => self.erase(class, id),
            Instruction::Set {
                class,
                id,
                prop,
                value,
            } => self.set(class, id, prop, value.as_change_ref()),
            Instruction::AddInt {
                class,
                id,
                prop,
                delta,
            } => self.add_int(class, id, prop, *delta),
            Instruction::ListInsert {
                class,
                id,
                prop,
                index,
                value,
            } => {
                self.object_op(TAG_LIST_INSERT, class, id, prop);
                put_varint(&mut self.buf, *index);
                self.value(value.as_change_ref());
            }
            Instruction::ListSet {
                class,
                id,
                prop,
                index,
                value,
            } => {
                self.object_op(TAG_LIST_SET, class, id, prop);
                put_varint(&mut self.buf, *index);
                self.value(value.as_change_ref());
            }
            Instruction::ListErase {
                class,
                id,
                prop,
                index,
            } => {
                self.object_op(TAG_LIST_ERASE, class, id, prop);
                put_varint(&mut self.buf, *index);
            }
            Instruction::ListMove {
                class,
                id,
                prop,
                from,
                to,
            } => {
                self.object_op(TAG_LIST_MOVE, class, id, prop);
                put_varint(&mut self.buf, *from);
                put_varint(&mut self.buf, *to);
            }
            Instruction::ListClear { class, id, prop } => {
                self.object_op(TAG_LIST_CLEAR, class, id, prop)
            }
            Instruction::ListInsertAfter {
                class,
                id,
                prop,
                after,
                value,
            } => {
                self.object_op(TAG_LIST_INSERT_AFTER, class, id, prop);
                self.elem(after.as_ref());
                self.value(value.as_change_ref());
            }
            Instruction::ListEraseElement {
                class,
                id,
                prop,
                element,
            } => {
                self.object_op(TAG_LIST_ERASE_ELEMENT, class, id, prop);
                self.elem(Some(element));
            }
            Instruction::ListSetElement {
                class,
                id,
                prop,
                element,
                value,
            } => {
                self.object_op(TAG_LIST_SET_ELEMENT, class, id, prop);
                self.elem(Some(element));
                self.value(value.as_change_ref());
            }
        }
    }
}

fn bad(what: &str) -> Error {
    Error::new(
        ErrorCode::InvalidArgument,
        format!("malformed changeset: {what}"),
    )
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    strings: Vec<String>,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| bad("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A varint as changesets have always been read: overlong forms are accepted, bits beyond
    /// 64 dropped ([`varint::decode_lenient`]).
    fn varint(&mut self) -> Result<u64> {
        match varint::decode_lenient(self.buf.get(self.pos..).unwrap_or_default()) {
            Ok((v, len)) => {
                self.pos += len;
                Ok(v)
            }
            Err(VarintError::Truncated) => Err(bad("truncated")),
            Err(_) => Err(bad("varint too long")),
        }
    }

    fn bytes(&mut self, n: u64) -> Result<&[u8]> {
        let n = usize::try_from(n).map_err(|_| bad("length"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad("length past the end"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn fixed_u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.bytes(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String> {
        let n = self.varint()?;
        let b = self.bytes(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("invalid UTF-8"))
    }

    fn str(&mut self) -> Result<String> {
        match self.varint()? {
            0 => {
                let s = self.string()?;
                self.strings.push(s.clone());
                Ok(s)
            }
            n => self
                .strings
                .get((n - 1) as usize)
                .cloned()
                .ok_or_else(|| bad("unknown string reference")),
        }
    }

    fn opt_str(&mut self) -> Result<Option<String>> {
        match self.byte()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            _ => Err(bad("bad optional string")),
        }
    }

    fn elem(&mut self) -> Result<Option<OrderKey>> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(OrderKey {
                stamp: self.fixed_u64()?,
                origin: self.fixed_u64()?,
                index: u32::try_from(self.varint()?).map_err(|_| bad("element index"))?,
            })),
            _ => Err(bad("bad element id")),
        }
    }

    fn some_elem(&mut self) -> Result<OrderKey> {
        self.elem()?.ok_or_else(|| bad("missing element id"))
    }

    fn gid(&mut self) -> Result<GlobalId> {
        Ok(match self.byte()? {
            0 => GlobalId::Int(unzigzag64(self.varint()?)),
            1 => GlobalId::String(self.string()?),
            2 => GlobalId::Generated {
                file: self.fixed_u64()?,
                seq: self.fixed_u64()?,
            },
            _ => return Err(bad("bad object id")),
        })
    }

    fn value(&mut self) -> Result<ChangeValue> {
        Ok(ChangeValue::Value(match self.byte()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(unzigzag64(self.varint()?)),
            4 => Value::Float(f32::from_le_bytes(
                self.bytes(4)?.try_into().expect("4 bytes"),
            )),
            5 => Value::Double(f64::from_le_bytes(
                self.bytes(8)?.try_into().expect("8 bytes"),
            )),
            6 => Value::String(self.string()?),
            7 => {
                let n = self.varint()?;
                Value::Binary(self.bytes(n)?.to_vec())
            }
            8 => {
                let seconds = unzigzag64(self.varint()?);
                let nanos =
                    i32::try_from(unzigzag64(self.varint()?)).map_err(|_| bad("nanoseconds"))?;
                Value::Timestamp(Timestamp { seconds, nanos })
            }
            9 => return Ok(ChangeValue::Link(self.gid()?)),
            _ => return Err(bad("bad value tag")),
        }))
    }
}

/// Encodes a changeset in the current format (2), as a write transaction records it:
/// [`decode_changeset_full`] gives it back. For tools and tests that build changesets by hand
/// (a server's tests play a hostile client with it); nothing checks that the instructions
/// make sense — integration does.
pub fn encode_changeset(changeset: &Changeset) -> Vec<u8> {
    let mut builder = ChangesetBuilder::default();
    for ins in &changeset.instructions {
        builder.push(ins);
    }
    builder.finish(changeset.stamp, changeset.origin)
}

/// Decodes a changeset into its instructions.
///
/// Fails with `InvalidArgument` on any malformed input; never panics.
pub fn decode_changeset(bytes: &[u8]) -> Result<Vec<Instruction>> {
    decode_changeset_full(bytes).map(|c| c.instructions)
}

/// Decodes a changeset with its header (format 1 gives stamp and origin 0).
///
/// Fails with `InvalidArgument` on any malformed input; never panics.
pub fn decode_changeset_full(bytes: &[u8]) -> Result<Changeset> {
    if bytes.len() < 2 || bytes[0] != MAGIC {
        return Err(bad("not a changeset"));
    }
    if bytes[1] != 1 && bytes[1] != FORMAT {
        return Err(bad(&format!("unknown changeset format {}", bytes[1])));
    }
    let (stamp, origin) = changeset_header(bytes)?;
    let mut r = Reader {
        buf: bytes,
        pos: if bytes[1] == 1 { 2 } else { HEADER_LEN },
        strings: Vec::new(),
    };
    let mut out = Vec::new();
    let mut selected: Option<(String, GlobalId)> = None;
    while r.pos < bytes.len() {
        let tag = r.byte()?;
        let ins = match tag {
            TAG_ADD_CLASS => Instruction::AddClass { name: r.str()? },
            TAG_ADD_PROPERTY => Instruction::AddProperty {
                class: r.str()?,
                name: r.str()?,
                ty: PropertyType::from_code(i32::from(r.byte()?))
                    .ok_or_else(|| bad("property type"))?,
                flags: PropertyFlags::from_bits(
                    u32::try_from(r.varint()?).map_err(|_| bad("flags"))?,
                )
                .map_err(|_| bad("flags"))?,
                target: r.opt_str()?,
            },
            TAG_SET_PRIMARY_KEY => Instruction::SetPrimaryKey {
                class: r.str()?,
                prop: r.opt_str()?,
            },
            TAG_ERASE_CLASS => {
                selected = None;
                Instruction::EraseClass { class: r.str()? }
            }
            TAG_ERASE_PROPERTY => Instruction::EraseProperty {
                class: r.str()?,
                name: r.str()?,
            },
            TAG_SET_PROPERTY_FLAGS => Instruction::SetPropertyFlags {
                class: r.str()?,
                name: r.str()?,
                flags: PropertyFlags::from_bits(
                    u32::try_from(r.varint()?).map_err(|_| bad("flags"))?,
                )
                .map_err(|_| bad("flags"))?,
            },
            TAG_SELECT => {
                selected = Some((r.str()?, r.gid()?));
                continue;
            }
            TAG_CREATE_OBJECT => {
                let (class, id) = (r.str()?, r.gid()?);
                selected = Some((class.clone(), id.clone()));
                Instruction::CreateObject { class, id }
            }
            TAG_ERASE_OBJECT => {
                selected = None;
                Instruction::EraseObject {
                    class: r.str()?,
                    id: r.gid()?,
                }
            }
            TAG_SET..=TAG_LIST_SET_ELEMENT => {
                let (class, id) = selected
                    .clone()
                    .ok_or_else(|| bad("object instruction before any object"))?;
                let prop = r.str()?;
                match tag {
                    TAG_SET => Instruction::Set {
                        class,
                        id,
                        prop,
                        value: r.value()?,
                    },
                    TAG_ADD_INT => Instruction::AddInt {
                        class,
                        id,
                        prop,
                        delta: unzigzag64(r.varint()?),
                    },
                    TAG_LIST_INSERT => Instruction::ListInsert {
                        class,
                        id,
                        prop,
                        index: r.varint()?,
                        value: r.value()?,
                    },
                    TAG_LIST_SET => Instruction::ListSet {
                        class,
                        id,
                        prop,
                        index: r.varint()?,
                        value: r.value()?,
                    },
                    TAG_LIST_ERASE => Instruction::ListErase {
                        class,
                        id,
                        prop,
                        index: r.varint()?,
                    },
                    TAG_LIST_MOVE => Instruction::ListMove {
                        class,
                        id,
                        prop,
                        from: r.varint()?,
                        to: r.varint()?,
                    },
                    TAG_LIST_CLEAR => Instruction::ListClear { class, id, prop },
                    TAG_LIST_INSERT_AFTER => Instruction::ListInsertAfter {
                        class,
                        id,
                        prop,
                        after: r.elem()?,
                        value: r.value()?,
                    },
                    TAG_LIST_ERASE_ELEMENT => Instruction::ListEraseElement {
                        class,
                        id,
                        prop,
                        element: r.some_elem()?,
                    },
                    // TAG_LIST_SET_ELEMENT, the last of the range.
                    _ => Instruction::ListSetElement {
                        class,
                        id,
                        prop,
                        element: r.some_elem()?,
                        value: r.value()?,
                    },
                }
            }
            _ => return Err(bad(&format!("unknown instruction {tag}"))),
        };
        out.push(ins);
    }
    Ok(Changeset {
        stamp,
        origin,
        instructions: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Instruction> {
        let id = GlobalId::Int(-42);
        let gen = GlobalId::Generated { file: 7, seq: 9 };
        vec![
            Instruction::AddClass {
                name: "Person".into(),
            },
            Instruction::AddProperty {
                class: "Person".into(),
                name: "dog".into(),
                ty: PropertyType::Link,
                flags: PropertyFlags::NONE,
                target: Some("Dog".into()),
            },
            Instruction::SetPrimaryKey {
                class: "Person".into(),
                prop: Some("id".into()),
            },
            Instruction::CreateObject {
                class: "Person".into(),
                id: id.clone(),
            },
            Instruction::Set {
                class: "Person".into(),
                id: id.clone(),
                prop: "name".into(),
                value: ChangeValue::Value("Ann".into()),
            },
            Instruction::Set {
                class: "Person".into(),
                id: id.clone(),
                prop: "dog".into(),
                value: ChangeValue::Link(gen.clone()),
            },
            Instruction::AddInt {
                class: "Person".into(),
                id: id.clone(),
                prop: "n".into(),
                delta: -3,
            },
            Instruction::ListInsert {
                class: "Person".into(),
                id: id.clone(),
                prop: "l".into(),
                index: 0,
                value: ChangeValue::Value(Value::Double(1.5)),
            },
            Instruction::ListSet {
                class: "Person".into(),
                id: id.clone(),
                prop: "l".into(),
                index: 0,
                value: ChangeValue::Value(Value::Null),
            },
            Instruction::ListMove {
                class: "Person".into(),
                id: id.clone(),
                prop: "l".into(),
                from: 0,
                to: 1,
            },
            Instruction::ListErase {
                class: "Person".into(),
                id: id.clone(),
                prop: "l".into(),
                index: 1,
            },
            Instruction::ListClear {
                class: "Person".into(),
                id: GlobalId::String("s".into()),
                prop: "l".into(),
            },
            Instruction::Set {
                class: "Person".into(),
                id: id.clone(),
                prop: "t".into(),
                value: ChangeValue::Value(Value::Timestamp(Timestamp::new(-5, -7))),
            },
            Instruction::EraseObject {
                class: "Person".into(),
                id,
            },
            Instruction::EraseProperty {
                class: "Person".into(),
                name: "l".into(),
            },
            Instruction::SetPropertyFlags {
                class: "Person".into(),
                name: "n".into(),
                flags: PropertyFlags::INDEXED,
            },
            Instruction::ListInsertAfter {
                class: "Person".into(),
                id: GlobalId::Int(3),
                prop: "l".into(),
                after: None,
                value: ChangeValue::Value(Value::Int(1)),
            },
            Instruction::ListInsertAfter {
                class: "Person".into(),
                id: GlobalId::Int(3),
                prop: "l".into(),
                after: Some(OrderKey {
                    stamp: 9,
                    origin: 8,
                    index: 300,
                }),
                value: ChangeValue::Link(GlobalId::String("x".into())),
            },
            Instruction::ListSetElement {
                class: "Person".into(),
                id: GlobalId::Int(3),
                prop: "l".into(),
                element: OrderKey {
                    stamp: 1,
                    origin: 2,
                    index: 3,
                },
                value: ChangeValue::Value(Value::Null),
            },
            Instruction::ListEraseElement {
                class: "Person".into(),
                id: GlobalId::Int(3),
                prop: "l".into(),
                element: OrderKey {
                    stamp: 1,
                    origin: 2,
                    index: 3,
                },
            },
            Instruction::EraseClass {
                class: "Dog".into(),
            },
        ]
    }

    #[test]
    fn changesets_round_trip() {
        let mut b = ChangesetBuilder::default();
        for i in sample() {
            b.push(&i);
        }
        let bytes = b.finish(0x1234_0005, 77);
        assert_eq!(decode_changeset(&bytes).unwrap(), sample());
        let full = decode_changeset_full(&bytes).unwrap();
        assert_eq!((full.stamp, full.origin), (0x1234_0005, 77));
        assert_eq!(changeset_header(&bytes).unwrap(), (0x1234_0005, 77));
    }

    #[test]
    fn format_1_still_decodes() {
        // AddClass "A" in format 1.
        let c = decode_changeset_full(&[MAGIC, 1, 1, 0, 1, b'A']).unwrap();
        assert_eq!((c.stamp, c.origin), (0, 0));
        assert_eq!(
            c.instructions,
            vec![Instruction::AddClass { name: "A".into() }]
        );
        assert!(decode_changeset(&[MAGIC, 2, 0, 0]).is_err(), "short header");
    }

    #[test]
    fn malformed_changesets_are_errors() {
        let mut b = ChangesetBuilder::default();
        for i in sample() {
            b.push(&i);
        }
        let bytes = b.finish(1, 2);
        for cut in 2..bytes.len() {
            // Every truncation either decodes a prefix or fails cleanly.
            let _ = decode_changeset(&bytes[..cut]);
        }
        assert!(decode_changeset(&[]).is_err());
        assert!(decode_changeset(&[MAGIC, 9]).is_err());
        assert!(
            decode_changeset(&[MAGIC, 1, 20, 0]).is_err(),
            "Set without a selected object"
        );
        assert!(
            decode_changeset(&[MAGIC, 1, 1, 5]).is_err(),
            "reference to an unknown string"
        );
        assert!(decode_changeset(&[MAGIC, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    /// Changeset varints are read as they always were: an overlong form is accepted, a varint
    /// cut short is "truncated", an 11th byte is "varint too long".
    #[test]
    fn changeset_varints_are_read_leniently() {
        let message = |bytes: &[u8]| decode_changeset(bytes).unwrap_err().to_string();
        // AddClass "A" with its string header as overlong varints (0 as 80 00, 1 as 81 00).
        let c = decode_changeset(&[MAGIC, 1, 1, 0x80, 0x00, 0x81, 0x80, 0x00, b'A']).unwrap();
        assert_eq!(c, vec![Instruction::AddClass { name: "A".into() }]);
        assert!(message(&[MAGIC, 1, 1, 0x80]).contains("malformed changeset: truncated"));
        let mut long = vec![MAGIC, 1, 1];
        long.extend_from_slice(&[0x80; 10]);
        long.push(0);
        assert!(message(&long).contains("malformed changeset: varint too long"));
    }

    #[test]
    fn instruction_tags_are_never_renumbered() {
        let tags = [
            (TAG_ADD_CLASS, 1),
            (TAG_ADD_PROPERTY, 2),
            (TAG_SET_PRIMARY_KEY, 3),
            (TAG_ERASE_CLASS, 4),
            (TAG_ERASE_PROPERTY, 5),
            (TAG_SET_PROPERTY_FLAGS, 6),
            (TAG_SELECT, 10),
            (TAG_CREATE_OBJECT, 11),
            (TAG_ERASE_OBJECT, 12),
            (TAG_SET, 20),
            (TAG_ADD_INT, 21),
            (TAG_LIST_INSERT, 22),
            (TAG_LIST_SET, 23),
            (TAG_LIST_ERASE, 24),
            (TAG_LIST_MOVE, 25),
            (TAG_LIST_CLEAR, 26),
            (TAG_LIST_INSERT_AFTER, 27),
            (TAG_LIST_ERASE_ELEMENT, 28),
            (TAG_LIST_SET_ELEMENT, 29),
        ];
        for (tag, number) in tags {
            assert_eq!(tag, number);
        }
    }
}
