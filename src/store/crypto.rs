//! Encryption at rest: a redb storage backend that keeps every byte of the database encrypted
//! and authenticated on disk, and survives a crash at any instant.
//!
//! The database's byte space is cut into blocks of [`BLOCK`] bytes (redb's page size). Each
//! block is sealed on its own with XChaCha20-Poly1305 under a fresh 192-bit nonce (a random
//! 128-bit prefix drawn when the file is opened, then a 64-bit counter), so a nonce never
//! repeats for a key, and with the block's index as associated data, so a block cannot be moved
//! to another position unnoticed.
//!
//! Format 2 (`docs/DESIGN.md`, "Encryption at rest", has the crash argument):
//! ```text
//! offset   size   field
//! 0        8192   superblock slot 0
//! 8192     8192   superblock slot 1
//! 16384    ...    block i (i >= 1) at 16384 + (i-1) × 4136: nonce (24) ‖ ciphertext (4096) ‖ tag (16)
//!
//! superblock slot:
//! 0        8      magic "SHOALENC"
//! 8        4      format version (u32 LE) = 2
//! 12       4      block size (u32 LE) = 4096
//! 16       32     salt: random per file, the HKDF salt of the cipher key
//! 48       8      sequence (u64 LE): the newer of two valid slots wins
//! 56       24     nonce
//! 80       6176   sealed: logical length u64 ‖ written blocks u64 ‖ flags u32 (1 = closed
//!                 cleanly) ‖ hole count u32 ‖ 8 reserved ‖ block 0 (4096 bytes: redb's
//!                 header) ‖ up to 128 holes (first block u64 ‖ end block u64, zero-padded)
//! 6256     16     tag; associated data = bytes 0..56
//! ```
//! Block 0 holds redb's header with both of its commit slots, the one place redb writes in
//! place; it lives inside the superblock, which is written to the slot *not* holding the newest
//! valid copy and only together with an fsync, so a torn or lost superblock write leaves the
//! previous one. Every other block is written only where redb's copy-on-write puts pages that
//! the last durable commit does not use, so a torn data block can only belong to a commit whose
//! sync never returned. After an unclean shutdown (the newest superblock is not marked closed
//! cleanly) such a block reads as zeros while redb repairs the file: redb's page checksums then
//! reject the commit that referenced it and it falls back to the previous one, exactly as for a
//! torn page of a plain file. Outside that repair, a block that fails authentication is
//! [`DecryptionError`].
//!
//! Keys: the cipher key is HKDF-SHA256(ikm = the 64-byte user key, salt = the file salt,
//! info = "shoal encrypted realm v2"). Opening checks the superblock, so a wrong key fails at
//! once. Blocks at or past "written blocks", and those in a *hole* (a run below it that a write
//! further on skipped when the file grew), have never been written and read as zeros without
//! touching the disk; every other block must authenticate, so zeroing or truncating the file
//! is detected.
//!
//! Threat model: protects confidentiality and integrity of a file at rest against someone who
//! can read or modify it but does not know the key. It does not protect against rolling a
//! block or the whole file back to an older sealed version, nor, in a file that was not closed
//! cleanly, against damage to the last commit (indistinguishable from a torn write: the
//! previous commit is used), nor against an attacker inside the process.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use parking_lot::Mutex;
use redb::StorageBackend;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Plaintext bytes per block (redb's default page size).
pub(crate) const BLOCK: u64 = 4096;
const NONCE: u64 = 24;
const TAG: u64 = 16;
const SEALED_BLOCK: u64 = NONCE + BLOCK + TAG;
const MAGIC: &[u8; 8] = b"SHOALENC";
/// The format written by this version.
const FORMAT: u32 = 2;
/// The first format: one sealed header rewritten in place, block 0 sealed like any other. It
/// could lose the whole file in a crash; such files are upgraded (see `file.rs`).
pub(crate) const FORMAT_1: u32 = 1;

/// Each superblock slot takes two file pages, so that neither slot shares a page with the
/// other or with a data block.
const SLOT_LEN: u64 = 8192;
const SLOT_AAD: usize = 56;
const SLOT_NONCE_AT: usize = 56;
const SLOT_SEALED_AT: usize = 80;
/// Sealed superblock fields before block 0.
const SLOT_FIELDS: usize = 32;
/// The most runs of never-written blocks the superblock records; past it the smallest run is
/// filled with sealed zeros.
const MAX_HOLES: usize = 128;
const SLOT_SEALED_LEN: usize = SLOT_FIELDS + BLOCK as usize + MAX_HOLES * 16;
const SLOT_USED: usize = SLOT_SEALED_AT + SLOT_SEALED_LEN + TAG as usize;
/// Where block 1 starts.
const DATA_START: u64 = 2 * SLOT_LEN;
const FLAG_CLEAN: u32 = 1;

/// The error payload that marks a failed decryption inside an `io::Error`, so the realm layer
/// can report `DecryptionFailed` rather than a generic I/O error.
#[derive(Debug)]
pub(crate) struct DecryptionError(pub(crate) String);

impl std::fmt::Display for DecryptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecryptionError {}

pub(crate) fn decryption_error(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, DecryptionError(msg.into()))
}

/// What the first bytes of a file say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// Not an encrypted realm (a plain realm, or empty).
    Plain,
    /// An encrypted realm of this format.
    Encrypted,
    /// An encrypted realm of format 1.
    EncryptedFormat1,
}

/// Reads the magic and format of either superblock slot of `storage`.
pub(crate) fn file_kind(storage: &dyn StorageBackend) -> io::Result<FileKind> {
    let len = storage.len()?;
    let mut kind = FileKind::Plain;
    for slot in 0..2u64 {
        let at = slot * SLOT_LEN;
        if len < at + 12 {
            break;
        }
        let mut head = [0u8; 12];
        storage.read(at, &mut head)?;
        if &head[..8] != MAGIC {
            continue;
        }
        let format = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        if slot == 0 && format == FORMAT_1 {
            return Ok(FileKind::EncryptedFormat1);
        }
        kind = FileKind::Encrypted;
    }
    Ok(kind)
}

/// The cipher of a file: HKDF-SHA256 of the user key with the file's salt.
fn cipher_for(key: &[u8; 64], salt: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), key)
        .expand(b"shoal encrypted realm v2", &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    XChaCha20Poly1305::new(&okm.into())
}

fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| io::Error::other(format!("no randomness available: {e}")))?;
    Ok(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The superblock's contents (what one slot holds).
struct State {
    /// The length redb sees.
    logical_len: u64,
    /// Blocks `1..written` outside `holes` exist on disk and must authenticate; the others
    /// read as zeros. Block 0 always exists (in the superblock).
    written: u64,
    holes: Holes,
    /// redb's header page.
    block0: Box<[u8; BLOCK as usize]>,
    /// The sequence number of the newest slot on disk, and which slot holds it.
    seq: u64,
    slot: u64,
    /// The superblock on disk is older than this state.
    dirty: bool,
    /// The file is physically longer than `written` needs: cut it after the next sync, once
    /// a superblock that no longer counts those blocks is durable.
    truncate_pending: bool,
}

/// Shared between the backend (owned by redb) and the opener, which ends recovery once redb
/// has opened the file.
#[derive(Debug)]
struct Recovery {
    /// Set while redb opens a file that was not closed cleanly: a block that fails
    /// authentication then reads as zeros (a torn write of an unfinished commit).
    active: AtomicBool,
    /// Blocks read as zeros that way.
    torn_blocks: AtomicU64,
}

/// Ends the lenient reads of recovery; see [`EncryptedBackend::open`].
#[derive(Debug)]
pub(crate) struct RecoveryHandle(Arc<Recovery>);

impl RecoveryHandle {
    /// Ends recovery: from now on every block must authenticate. Returns how many blocks
    /// failed authentication during it (torn writes of commits that never completed).
    pub(crate) fn finish(&self) -> u64 {
        self.0.active.store(false, Ordering::Release);
        self.0.torn_blocks.load(Ordering::Acquire)
    }
}

/// A redb backend that encrypts everything it stores in an inner backend (the file).
pub(crate) struct EncryptedBackend {
    inner: Box<dyn StorageBackend>,
    cipher: XChaCha20Poly1305,
    salt: [u8; 32],
    state: Mutex<State>,
    read_only: bool,
    /// Whether this open has marked the file in use (a superblock without the "closed
    /// cleanly" flag, durable before the first data write). Nothing is written before redb
    /// holds its file lock, so a second process that fails to get it changes nothing.
    marked_in_use: AtomicBool,
    recovery: Arc<Recovery>,
    /// Nonces are this random 128-bit prefix (drawn at open) followed by a 64-bit counter:
    /// unique within an open, and across opens unless two random prefixes collide
    /// (negligible), without a system call per block.
    nonce_prefix: [u8; 16],
    nonce_counter: AtomicU64,
}

impl std::fmt::Debug for EncryptedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedBackend").finish_non_exhaustive()
    }
}

/// A slot that authenticated.
struct Slot {
    seq: u64,
    logical_len: u64,
    written: u64,
    holes: Holes,
    clean: bool,
    block0: Box<[u8; BLOCK as usize]>,
}

impl EncryptedBackend {
    /// Opens the encrypted file stored in `inner` (empty: initializes a new one) with `key`.
    ///
    /// Fails with a [`DecryptionError`] if the key is wrong or the file is not an encrypted
    /// realm of this format. The returned handle ends the recovery reads once redb has opened
    /// the file.
    pub(crate) fn open(
        inner: Box<dyn StorageBackend>,
        key: &[u8; 64],
        read_only: bool,
    ) -> io::Result<(EncryptedBackend, RecoveryHandle)> {
        let len = inner.len()?;
        let fresh = |inner: Box<dyn StorageBackend>| -> io::Result<_> {
            if read_only {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the encrypted realm file is empty",
                ));
            }
            let salt = random_bytes::<32>()?;
            let backend = EncryptedBackend::new(
                inner,
                key,
                salt,
                State {
                    logical_len: 0,
                    written: 1,
                    holes: Holes::default(),
                    block0: Box::new([0u8; BLOCK as usize]),
                    seq: 0,
                    slot: 1,
                    dirty: true,
                    truncate_pending: false,
                },
                false,
                read_only,
            )?;
            let handle = RecoveryHandle(backend.recovery.clone());
            Ok((backend, handle))
        };
        if len == 0 {
            return fresh(inner);
        }
        let mut raw = [vec![0u8; SLOT_USED], vec![0u8; SLOT_USED]];
        for (i, buf) in raw.iter_mut().enumerate() {
            let at = i as u64 * SLOT_LEN;
            let n = len.saturating_sub(at).min(SLOT_USED as u64) as usize;
            if n > 0 {
                inner.read(at, &mut buf[..n])?;
            }
        }
        let salt = (0..2)
            .find(|&i| &raw[i][..8] == MAGIC)
            .map(|i| -> [u8; 32] { raw[i][16..48].try_into().expect("32 bytes") });
        let Some(salt) = salt else {
            return Err(decryption_error(
                "the file is not encrypted, but an encryption key was given",
            ));
        };
        for bytes in raw.iter().filter(|b| &b[..8] == MAGIC) {
            let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
            if format != FORMAT {
                // Format 1 is upgraded before it gets here (`file.rs`); anything else is newer.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the realm uses encrypted format {format}, which this version cannot open"
                    ),
                ));
            }
        }
        let cipher = cipher_for(key, &salt);
        let newest = raw
            .iter()
            .enumerate()
            .filter_map(|(i, bytes)| Self::parse_slot(&cipher, &salt, bytes).map(|s| (i, s)))
            .max_by_key(|(_, s)| s.seq);
        let Some((slot_index, slot)) = newest else {
            return Err(decryption_error(
                "wrong encryption key (or both copies of the file header were damaged)",
            ));
        };
        if len < DATA_START + slot.written.saturating_sub(1) * SEALED_BLOCK && slot.clean {
            return Err(decryption_error("the encrypted file was truncated"));
        }
        let backend = EncryptedBackend::new(
            inner,
            key,
            salt,
            State {
                logical_len: slot.logical_len,
                written: slot.written.max(1),
                holes: slot.holes,
                block0: slot.block0,
                seq: slot.seq,
                slot: slot_index as u64,
                dirty: false,
                truncate_pending: false,
            },
            !slot.clean,
            read_only,
        )?;
        let handle = RecoveryHandle(backend.recovery.clone());
        Ok((backend, handle))
    }

    fn new(
        inner: Box<dyn StorageBackend>,
        key: &[u8; 64],
        salt: [u8; 32],
        state: State,
        recovering: bool,
        read_only: bool,
    ) -> io::Result<EncryptedBackend> {
        Ok(EncryptedBackend {
            inner,
            cipher: cipher_for(key, &salt),
            salt,
            state: Mutex::new(state),
            read_only,
            marked_in_use: AtomicBool::new(false),
            recovery: Arc::new(Recovery {
                active: AtomicBool::new(recovering),
                torn_blocks: AtomicU64::new(0),
            }),
            nonce_prefix: random_bytes::<16>()?,
            nonce_counter: AtomicU64::new(0),
        })
    }

    /// The slot in `bytes` if it is one of this file's and authenticates.
    fn parse_slot(cipher: &XChaCha20Poly1305, salt: &[u8; 32], bytes: &[u8]) -> Option<Slot> {
        let format = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        let block = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        if &bytes[..8] != MAGIC
            || format != FORMAT
            || u64::from(block) != BLOCK
            || bytes[16..48] != salt[..]
        {
            return None;
        }
        let mut sealed = bytes[SLOT_SEALED_AT..SLOT_SEALED_AT + SLOT_SEALED_LEN].to_vec();
        let tag = &bytes[SLOT_SEALED_AT + SLOT_SEALED_LEN..SLOT_USED];
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(&bytes[SLOT_NONCE_AT..SLOT_SEALED_AT]),
                &bytes[..SLOT_AAD],
                &mut sealed,
                Tag::from_slice(tag),
            )
            .ok()?;
        let mut block0 = Box::new([0u8; BLOCK as usize]);
        block0.copy_from_slice(&sealed[SLOT_FIELDS..SLOT_FIELDS + BLOCK as usize]);
        let holes = Holes::decode(
            u32::from_le_bytes(sealed[20..24].try_into().expect("4 bytes")) as usize,
            &sealed[SLOT_FIELDS + BLOCK as usize..],
        )?;
        Some(Slot {
            seq: u64_at(bytes, 48),
            logical_len: u64_at(&sealed, 0),
            written: u64_at(&sealed, 8),
            holes,
            clean: u32::from_le_bytes(sealed[16..20].try_into().expect("4 bytes")) & FLAG_CLEAN
                != 0,
            block0,
        })
    }

    fn next_nonce(&self) -> [u8; 24] {
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        nonce[16..].copy_from_slice(&n.to_le_bytes());
        nonce
    }

    /// Writes the state into the slot that does not hold the newest superblock. The caller
    /// syncs before the next superblock write, so at most one slot is ever in flight.
    fn write_superblock(&self, clean: bool) -> io::Result<()> {
        let mut state = self.state.lock();
        let mut slot = vec![0u8; SLOT_USED];
        slot[..8].copy_from_slice(MAGIC);
        slot[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        slot[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        slot[16..48].copy_from_slice(&self.salt);
        let seq = state.seq + 1;
        slot[48..56].copy_from_slice(&seq.to_le_bytes());
        let nonce = self.next_nonce();
        slot[SLOT_NONCE_AT..SLOT_SEALED_AT].copy_from_slice(&nonce);
        {
            let body = &mut slot[SLOT_SEALED_AT..SLOT_SEALED_AT + SLOT_SEALED_LEN];
            body[..8].copy_from_slice(&state.logical_len.to_le_bytes());
            body[8..16].copy_from_slice(&state.written.to_le_bytes());
            let flags = if clean { FLAG_CLEAN } else { 0 };
            body[16..20].copy_from_slice(&flags.to_le_bytes());
            body[20..24].copy_from_slice(&(state.holes.0.len() as u32).to_le_bytes());
            body[SLOT_FIELDS..SLOT_FIELDS + BLOCK as usize].copy_from_slice(&state.block0[..]);
            state
                .holes
                .encode(&mut body[SLOT_FIELDS + BLOCK as usize..]);
        }
        let (aad, rest) = slot.split_at_mut(SLOT_AAD);
        let body =
            &mut rest[SLOT_SEALED_AT - SLOT_AAD..SLOT_SEALED_AT - SLOT_AAD + SLOT_SEALED_LEN];
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, body)
            .map_err(|_| io::Error::other("encryption failed"))?;
        slot[SLOT_SEALED_AT + SLOT_SEALED_LEN..].copy_from_slice(&tag);
        let target = 1 - state.slot;
        self.inner.write(target * SLOT_LEN, &slot)?;
        state.slot = target;
        state.seq = seq;
        state.dirty = false;
        Ok(())
    }

    fn aad(index: u64) -> [u8; 12] {
        let mut aad = [0u8; 12];
        aad[..4].copy_from_slice(b"blk2");
        aad[4..].copy_from_slice(&index.to_le_bytes());
        aad
    }

    fn block_offset(index: u64) -> u64 {
        debug_assert!(index >= 1, "block 0 lives in the superblock");
        DATA_START + (index - 1) * SEALED_BLOCK
    }

    /// Opens a sealed block in place; on success `sealed[NONCE..NONCE+BLOCK]` is plaintext.
    fn open_sealed(&self, index: u64, sealed: &mut [u8]) -> bool {
        let (nonce, rest) = sealed.split_at_mut(NONCE as usize);
        let (body, tag) = rest.split_at_mut(BLOCK as usize);
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                &Self::aad(index),
                body,
                Tag::from_slice(tag),
            )
            .is_ok()
    }

    /// What to read for a block that does not authenticate: zeros while recovering from an
    /// unclean shutdown (a torn write of a commit that never completed), else an error.
    fn unauthenticated(&self, index: u64, out: &mut [u8]) -> io::Result<()> {
        if self.recovery.active.load(Ordering::Acquire) {
            if self.recovery.torn_blocks.fetch_add(1, Ordering::AcqRel) == 0 {
                tracing::warn!(
                    block = index,
                    "an encrypted realm block torn by a crash reads as empty while the file is repaired"
                );
            }
            out.fill(0);
            return Ok(());
        }
        Err(decryption_error(format!(
            "block {index} of the encrypted file failed authentication: it was modified or damaged"
        )))
    }

    /// Reads blocks `first..first + out.len() / BLOCK` (all `>= 1`, below `written`).
    fn read_blocks(&self, first: u64, out: &mut [u8]) -> io::Result<()> {
        let count = out.len() as u64 / BLOCK;
        let mut sealed = vec![0u8; (count * SEALED_BLOCK) as usize];
        if self
            .inner
            .read(Self::block_offset(first), &mut sealed)
            .is_err()
        {
            // Past the physical end (or unreadable): one block at a time, so each gets its
            // own verdict.
            for i in 0..count {
                let chunk = &mut out[(i * BLOCK) as usize..((i + 1) * BLOCK) as usize];
                let mut one = vec![0u8; SEALED_BLOCK as usize];
                let index = first + i;
                match self.inner.read(Self::block_offset(index), &mut one) {
                    Ok(()) if self.open_sealed(index, &mut one) => {
                        chunk.copy_from_slice(&one[NONCE as usize..(NONCE + BLOCK) as usize])
                    }
                    Ok(()) => self.unauthenticated(index, chunk)?,
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        self.unauthenticated(index, chunk)?
                    }
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        for i in 0..count {
            let index = first + i;
            let one = &mut sealed[(i * SEALED_BLOCK) as usize..((i + 1) * SEALED_BLOCK) as usize];
            let chunk = &mut out[(i * BLOCK) as usize..((i + 1) * BLOCK) as usize];
            if self.open_sealed(index, one) {
                chunk.copy_from_slice(&one[NONCE as usize..(NONCE + BLOCK) as usize]);
            } else {
                self.unauthenticated(index, chunk)?;
            }
        }
        Ok(())
    }

    /// The plaintext of one block (zeros if never written).
    fn read_block(&self, index: u64, out: &mut [u8; BLOCK as usize]) -> io::Result<()> {
        {
            let s = self.state.lock();
            if index == 0 {
                out.copy_from_slice(&s.block0[..]);
                return Ok(());
            }
            if index >= s.written || s.holes.contains(index) {
                out.fill(0);
                return Ok(());
            }
        }
        self.read_blocks(index, out)
    }

    /// Seals one block under a fresh nonce into `out`: `nonce ‖ ciphertext ‖ tag`.
    fn seal_into(&self, index: u64, plain: &[u8], out: &mut [u8]) -> io::Result<()> {
        let nonce = self.next_nonce();
        out[..NONCE as usize].copy_from_slice(&nonce);
        let body_end = (NONCE + BLOCK) as usize;
        out[NONCE as usize..body_end].copy_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &Self::aad(index),
                &mut out[NONCE as usize..body_end],
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        out[body_end..].copy_from_slice(&tag);
        Ok(())
    }

    /// Makes a superblock without the "closed cleanly" flag durable, once per open, before
    /// the first write that reaches the file: from then on a crash is recognized as one.
    fn mark_in_use(&self) -> io::Result<()> {
        if self.marked_in_use.load(Ordering::Acquire) {
            return Ok(());
        }
        self.state.lock().dirty = true;
        self.write_superblock(false)?;
        self.inner.sync_data()?;
        self.marked_in_use.store(true, Ordering::Release);
        Ok(())
    }

    fn refuse_read_only(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the realm is read-only",
            ));
        }
        Ok(())
    }
}

/// Runs `[start, end)` of blocks below `written` that were never written, sorted and
/// disjoint (they read as zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Holes(Vec<(u64, u64)>);

impl Holes {
    /// The run holding `index`, as its position.
    fn find(&self, index: u64) -> Option<usize> {
        let i = self.0.partition_point(|&(_, end)| end <= index);
        (i < self.0.len() && self.0[i].0 <= index).then_some(i)
    }

    fn contains(&self, index: u64) -> bool {
        !self.0.is_empty() && self.find(index).is_some()
    }

    fn overlaps(&self, start: u64, end: u64) -> bool {
        let i = self.0.partition_point(|&(_, e)| e <= start);
        i < self.0.len() && self.0[i].0 < end
    }

    /// The start of the first run after `index`.
    fn next_start_after(&self, index: u64) -> Option<u64> {
        let i = self.0.partition_point(|&(start, _)| start <= index);
        self.0.get(i).map(|&(start, _)| start)
    }

    /// Adds `[start, end)`, which lies at or past every run (it is the new end of the file).
    fn add(&mut self, start: u64, end: u64) {
        match self.0.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.0.push((start, end)),
        }
    }

    fn remove(&mut self, start: u64, end: u64) {
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for &(a, b) in &self.0 {
            if b <= start || a >= end {
                kept.push((a, b));
                continue;
            }
            if a < start {
                kept.push((a, start));
            }
            if b > end {
                kept.push((end, b));
            }
        }
        self.0 = kept;
    }

    fn truncate(&mut self, blocks: u64) {
        self.remove(blocks, u64::MAX);
    }

    fn smallest(&self) -> (u64, u64) {
        *self
            .0
            .iter()
            .min_by_key(|(a, b)| b - a)
            .expect("called with holes")
    }

    fn encode(&self, out: &mut [u8]) {
        for (i, (a, b)) in self.0.iter().enumerate() {
            out[i * 16..i * 16 + 8].copy_from_slice(&a.to_le_bytes());
            out[i * 16 + 8..i * 16 + 16].copy_from_slice(&b.to_le_bytes());
        }
    }

    /// `None` unless the runs are sorted, disjoint and non-empty (the superblock authenticated,
    /// so this only guards against a bug).
    fn decode(count: usize, bytes: &[u8]) -> Option<Holes> {
        if count > MAX_HOLES {
            return None;
        }
        let runs: Vec<(u64, u64)> = (0..count)
            .map(|i| (u64_at(bytes, i * 16), u64_at(bytes, i * 16 + 8)))
            .collect();
        let valid =
            runs.iter().all(|&(a, b)| a >= 1 && a < b) && runs.windows(2).all(|w| w[0].1 < w[1].0);
        valid.then_some(Holes(runs))
    }
}

impl StorageBackend for EncryptedBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.state.lock().logical_len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let (logical_len, written, holes) = {
            let s = self.state.lock();
            // Usually empty: no allocation.
            (s.logical_len, s.written, s.holes.clone())
        };
        let end = offset
            .checked_add(out.len() as u64)
            .ok_or_else(|| io::Error::other("read past the end"))?;
        if end > logical_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the encrypted file",
            ));
        }
        let mut pos = offset;
        while pos < end {
            let index = pos / BLOCK;
            let within = pos % BLOCK;
            let at = (pos - offset) as usize;
            if within == 0
                && index >= 1
                && index < written
                && end - pos >= BLOCK
                && !holes.contains(index)
            {
                // Whole blocks on disk straight into `out`, with one read of the file.
                let whole = ((end - pos) / BLOCK)
                    .min(written - index)
                    .min(holes.next_start_after(index).unwrap_or(u64::MAX) - index);
                let n = (whole * BLOCK) as usize;
                self.read_blocks(index, &mut out[at..at + n])?;
                pos += n as u64;
                continue;
            }
            let mut block = [0u8; BLOCK as usize];
            self.read_block(index, &mut block)?;
            let n = ((BLOCK - within) as usize).min((end - pos) as usize);
            out[at..at + n].copy_from_slice(&block[within as usize..within as usize + n]);
            pos += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.refuse_read_only()?;
        let blocks = len.div_ceil(BLOCK).max(1);
        let mut block = [0u8; BLOCK as usize];
        let tail = {
            let s = self.state.lock();
            len < s.logical_len && !len.is_multiple_of(BLOCK) && s.written > len / BLOCK
        };
        if tail {
            // The tail of the last block must read as zeros if the file grows again.
            let index = len / BLOCK;
            self.read_block(index, &mut block)?;
            block[(len % BLOCK) as usize..].fill(0);
            self.write(index * BLOCK, &block)?;
        }
        let mut s = self.state.lock();
        if blocks < s.written {
            s.written = blocks;
            s.holes.truncate(blocks);
            s.truncate_pending = true;
        }
        s.logical_len = len;
        s.dirty = true;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        if self.read_only {
            return Ok(());
        }
        self.mark_in_use()?;
        let dirty = self.state.lock().dirty;
        if dirty {
            self.write_superblock(false)?;
        }
        self.inner.sync_data()?;
        let mut s = self.state.lock();
        if s.truncate_pending {
            // Safe now: the durable superblock no longer counts the blocks cut off. If this
            // cut is lost in a crash the file is only longer than it needs to be.
            s.truncate_pending = false;
            let physical = DATA_START + (s.written - 1) * SEALED_BLOCK;
            drop(s);
            self.inner.set_len(physical)?;
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.refuse_read_only()?;
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("write past the end"))?;
        let (mut first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        if first == 0 {
            // redb's header: kept in memory, written with the superblock at the next sync.
            let n = (BLOCK.min(end) - offset) as usize;
            let mut s = self.state.lock();
            s.block0[offset as usize..offset as usize + n].copy_from_slice(&data[..n]);
            s.dirty = true;
            if end > s.logical_len {
                s.logical_len = end;
            }
            drop(s);
            if last == 0 {
                return Ok(());
            }
            first = 1;
        }
        self.mark_in_use()?;
        let (written, in_hole) = {
            let s = self.state.lock();
            (s.written, s.holes.overlaps(first, last + 1))
        };
        let mut out = vec![0u8; ((last + 1 - first) * SEALED_BLOCK) as usize];
        let mut block = [0u8; BLOCK as usize];
        for index in first..=last {
            let sealed = &mut out[((index - first) * SEALED_BLOCK) as usize
                ..((index - first + 1) * SEALED_BLOCK) as usize];
            let block_start = index * BLOCK;
            let (lo, hi) = (offset.max(block_start), end.min(block_start + BLOCK));
            let piece = &data[(lo - offset) as usize..(hi - offset) as usize];
            if hi - lo == BLOCK {
                self.seal_into(index, piece, sealed)?;
            } else {
                if index < written && !(in_hole && self.state.lock().holes.contains(index)) {
                    self.read_blocks(index, &mut block)?;
                } else {
                    block.fill(0);
                }
                block[(lo - block_start) as usize..(hi - block_start) as usize]
                    .copy_from_slice(piece);
                self.seal_into(index, &block, sealed)?;
            }
        }
        self.inner.write(Self::block_offset(first), &out)?;
        let mut s = self.state.lock();
        if first > s.written {
            // Skipped blocks were never written: a hole, not sealed zeros (a file grows in
            // big steps and redb writes near their ends early).
            let from = s.written;
            s.holes.add(from, first);
            s.dirty = true;
        }
        if in_hole {
            s.holes.remove(first, last + 1);
            s.dirty = true;
        }
        if last + 1 > s.written {
            s.written = last + 1;
            s.dirty = true;
        }
        if end > s.logical_len {
            s.logical_len = end;
            s.dirty = true;
        }
        if s.holes.0.len() > MAX_HOLES {
            // Too many runs to record: fill the smallest with sealed zeros.
            let (a, b) = s.holes.smallest();
            let mut zeros = vec![0u8; ((b - a) * SEALED_BLOCK) as usize];
            for index in a..b {
                let at = ((index - a) * SEALED_BLOCK) as usize;
                self.seal_into(
                    index,
                    &[0u8; BLOCK as usize],
                    &mut zeros[at..at + SEALED_BLOCK as usize],
                )?;
            }
            self.inner.write(Self::block_offset(a), &zeros)?;
            s.holes.remove(a, b);
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        if !self.read_only && self.marked_in_use.load(Ordering::Acquire) {
            // Everything durable first, then the mark that the file was closed cleanly.
            self.sync_data()?;
            self.state.lock().dirty = true;
            self.write_superblock(true)?;
            self.inner.sync_data()?;
        }
        self.inner.close()
    }

    forward_range_locks!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_backend(path: &std::path::Path) -> Box<dyn StorageBackend> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        Box::new(redb::backends::FileBackend::new(f).unwrap())
    }

    fn open(
        path: &std::path::Path,
        key: &[u8; 64],
    ) -> io::Result<(EncryptedBackend, RecoveryHandle)> {
        EncryptedBackend::open(file_backend(path), key, false)
    }

    fn is_decryption_error(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|e| e.is::<DecryptionError>())
    }

    /// A file with 10,000 bytes at 3000 (blocks 0–3), closed cleanly or not.
    fn make(path: &std::path::Path, key: &[u8; 64], clean: bool) -> Vec<u8> {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (b, _) = open(path, key).unwrap();
        b.set_len(20_000).unwrap();
        b.write(3000, &data).unwrap();
        b.sync_data().unwrap();
        if clean {
            b.close().unwrap();
        }
        data
    }

    #[test]
    fn bytes_round_trip_across_block_boundaries_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [7u8; 64];
        let data = make(&path, &key, true);
        let (b, recovery) = open(&path, &key).unwrap();
        assert_eq!(recovery.finish(), 0);
        assert_eq!(b.len().unwrap(), 20_000);
        let mut out = vec![0u8; 10_000];
        b.read(3000, &mut out).unwrap();
        assert_eq!(out, data);
        let mut zeros = vec![1u8; 100];
        b.read(19_000, &mut zeros).unwrap();
        assert!(
            zeros.iter().all(|&z| z == 0),
            "unwritten space reads as zeros"
        );
        let raw = std::fs::read(&path).unwrap();
        assert!(
            !raw.windows(16).any(|w| w == &data[100..116]),
            "no plaintext on disk"
        );
        assert_eq!(&raw[..8], MAGIC);
        assert_eq!(u32::from_le_bytes(raw[8..12].try_into().unwrap()), FORMAT);
    }

    #[test]
    fn wrong_key_and_tampering_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        make(&path, &[1u8; 64], true);
        let err = open(&path, &[2u8; 64]).unwrap_err();
        assert!(is_decryption_error(&err), "{err}");
        // One byte of block 1's ciphertext in a file closed cleanly: that block fails, its
        // neighbour does not.
        let mut raw = std::fs::read(&path).unwrap();
        raw[(DATA_START + NONCE + 10) as usize] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let (b, _) = open(&path, &[1u8; 64]).unwrap();
        let mut out = [0u8; 10];
        let err = b.read(4096, &mut out).unwrap_err();
        assert!(is_decryption_error(&err), "{err}");
        b.read(8192, &mut out).unwrap();
    }

    #[test]
    fn a_torn_superblock_leaves_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [3u8; 64];
        {
            let (b, _) = open(&path, &key).unwrap();
            b.write(0, &[0xAA; 320]).unwrap();
            b.sync_data().unwrap();
            b.write(0, &[0xBB; 320]).unwrap();
            b.sync_data().unwrap();
        }
        let raw = std::fs::read(&path).unwrap();
        let newest = (0..2)
            .max_by_key(|&i| u64_at(&raw, i * SLOT_LEN as usize + 48))
            .unwrap();
        // Tear the newest slot after its first file page.
        let mut torn = raw.clone();
        let from = newest * SLOT_LEN as usize + 4096;
        torn[from..from + 200].fill(0);
        std::fs::write(&path, &torn).unwrap();
        let (b, recovery) = EncryptedBackend::open(file_backend(&path), &key, true).unwrap();
        let mut header = [0u8; 320];
        b.read(0, &mut header).unwrap();
        assert_eq!(header, [0xAA; 320], "the previous sync's header");
        assert_eq!(recovery.finish(), 0);
        // Both slots damaged: nothing to trust.
        torn[(1 - newest) * SLOT_LEN as usize + 100] ^= 1;
        std::fs::write(&path, &torn).unwrap();
        let err = EncryptedBackend::open(file_backend(&path), &key, true).unwrap_err();
        assert!(is_decryption_error(&err), "{err}");
    }

    #[test]
    fn torn_blocks_read_as_zeros_only_while_an_unclean_file_is_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [9u8; 64];
        let data = make(&path, &key, false);
        let mut raw = std::fs::read(&path).unwrap();
        // Block 2 torn at a file-page boundary: its second part is from another write.
        let at = (DATA_START + SEALED_BLOCK + 4096 - DATA_START % 4096) as usize;
        raw[at..at + 40].fill(0x5C);
        std::fs::write(&path, &raw).unwrap();
        let (b, recovery) = open(&path, &key).unwrap();
        let mut out = vec![0u8; BLOCK as usize];
        b.read(2 * BLOCK, &mut out).unwrap();
        assert!(
            out.iter().all(|&z| z == 0),
            "a torn block reads as zeros during repair"
        );
        // Its neighbours are intact.
        b.read(3 * BLOCK, &mut out).unwrap();
        assert_eq!(&out[..712], &data[(3 * BLOCK - 3000) as usize..]);
        assert_eq!(recovery.finish(), 1);
        let err = b.read(2 * BLOCK, &mut out).unwrap_err();
        assert!(is_decryption_error(&err), "strict after the repair: {err}");
    }

    #[test]
    fn a_clean_file_is_strict_from_the_start_and_truncation_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [4u8; 64];
        make(&path, &key, true);
        let mut raw = std::fs::read(&path).unwrap();
        raw[(DATA_START + SEALED_BLOCK + 500) as usize] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let (b, _) = open(&path, &key).unwrap();
        let mut out = vec![0u8; BLOCK as usize];
        assert!(is_decryption_error(
            &b.read(2 * BLOCK, &mut out).unwrap_err()
        ));
        drop(b);
        make(&path.with_extension("2"), &key, true);
        let len = std::fs::metadata(path.with_extension("2")).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(path.with_extension("2"))
            .unwrap()
            .set_len(len - SEALED_BLOCK)
            .unwrap();
        let err = open(&path.with_extension("2"), &key).unwrap_err();
        assert!(is_decryption_error(&err), "{err}");
    }

    #[test]
    fn shrinking_cuts_the_file_only_after_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [5u8; 64];
        let (b, _) = open(&path, &key).unwrap();
        b.write(0, &vec![1u8; 10 * BLOCK as usize]).unwrap();
        b.sync_data().unwrap();
        let long = std::fs::metadata(&path).unwrap().len();
        b.set_len(2 * BLOCK).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            long,
            "not cut before the sync"
        );
        b.sync_data().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            DATA_START + SEALED_BLOCK
        );
        b.set_len(4 * BLOCK).unwrap();
        let mut out = vec![9u8; 2 * BLOCK as usize];
        b.read(2 * BLOCK, &mut out).unwrap();
        assert!(out.iter().all(|&z| z == 0), "regrown space reads as zeros");
    }
}

#[cfg(test)]
mod hole_tests {
    use super::*;

    #[test]
    fn holes_split_merge_and_round_trip() {
        let mut h = Holes::default();
        h.add(1, 10);
        h.add(10, 20);
        assert_eq!(h.0, [(1, 20)]);
        h.remove(5, 7);
        assert_eq!(h.0, [(1, 5), (7, 20)]);
        assert!(h.contains(4) && !h.contains(5) && !h.contains(6) && h.contains(7));
        assert!(h.overlaps(4, 6) && !h.overlaps(5, 7) && h.overlaps(6, 8));
        assert_eq!(h.next_start_after(5), Some(7));
        assert_eq!(h.next_start_after(7), None);
        h.truncate(9);
        assert_eq!(h.0, [(1, 5), (7, 9)]);
        assert_eq!(h.smallest(), (7, 9));
        let mut bytes = vec![0u8; MAX_HOLES * 16];
        h.encode(&mut bytes);
        assert_eq!(Holes::decode(2, &bytes), Some(h));
        assert_eq!(Holes::decode(MAX_HOLES + 1, &bytes), None);
    }

    #[test]
    fn a_write_past_the_end_leaves_a_hole_that_reads_zeros_and_fills_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [6u8; 64];
        let raw = || {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap();
            Box::new(redb::backends::FileBackend::new(f).unwrap()) as Box<dyn StorageBackend>
        };
        {
            let (b, _) = EncryptedBackend::open(raw(), &key, false).unwrap();
            b.set_len(100 * BLOCK).unwrap();
            b.write(90 * BLOCK, &[7u8; BLOCK as usize]).unwrap();
            b.sync_data().unwrap();
            assert_eq!(
                b.state.lock().holes.0,
                [(1, 90)],
                "nothing sealed for the gap"
            );
            b.close().unwrap();
        }
        // Only block 90 was sealed: the file holds no 89 blocks of sealed zeros.
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            DATA_START + 90 * SEALED_BLOCK
        );
        let (b, recovery) = EncryptedBackend::open(raw(), &key, false).unwrap();
        assert_eq!(recovery.finish(), 0);
        let mut out = vec![1u8; 3 * BLOCK as usize];
        b.read(88 * BLOCK, &mut out).unwrap();
        assert!(out[..2 * BLOCK as usize].iter().all(|&z| z == 0));
        assert!(out[2 * BLOCK as usize..].iter().all(|&z| z == 7));
        b.write(40 * BLOCK + 10, &[9u8; 5]).unwrap();
        assert_eq!(b.state.lock().holes.0, [(1, 40), (41, 90)]);
        let mut one = [0u8; 20];
        b.read(40 * BLOCK, &mut one).unwrap();
        assert_eq!(one[..15], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9]);
    }

    #[test]
    fn too_many_holes_fill_the_smallest_with_sealed_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("enc"))
            .unwrap();
        let backend = Box::new(redb::backends::FileBackend::new(f).unwrap());
        let (b, _) = EncryptedBackend::open(backend, &[2u8; 64], false).unwrap();
        // Every other block: one hole per write.
        for i in 0..(MAX_HOLES as u64 + 5) {
            b.write((2 + 2 * i) * BLOCK, &[1u8; BLOCK as usize])
                .unwrap();
        }
        assert!(b.state.lock().holes.0.len() <= MAX_HOLES);
        let mut out = vec![1u8; BLOCK as usize];
        for i in 0..(MAX_HOLES as u64 + 5) {
            b.read((1 + 2 * i) * BLOCK, &mut out).unwrap();
            assert!(
                out.iter().all(|&z| z == 0),
                "block {} reads zeros",
                1 + 2 * i
            );
        }
    }
}
