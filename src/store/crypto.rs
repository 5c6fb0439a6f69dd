//! Encryption at rest: a redb storage backend that keeps every byte of the database encrypted
//! and authenticated on disk.
//!
//! The database's byte space is cut into blocks of [`BLOCK`] bytes (redb's page size). Each
//! block is sealed on its own with XChaCha20-Poly1305 under a fresh 192-bit nonce (a random
//! 128-bit prefix drawn when the file is opened, then a 64-bit counter), so a nonce never
//! repeats for a key, and with the block's index and the file's salt as associated data, so a
//! block cannot be moved to another position or another file unnoticed.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "SHOALENC"
//! 8       4     format version (u32 LE) = 1
//! 12      4     block size (u32 LE) = 4096
//! 16      32    salt: random per file; mixed into the key and the associated data
//! 48      24    header nonce
//! 72      32    sealed header: AEAD(logical length u64 LE ‖ written blocks u64 LE) + 16-byte tag,
//!               associated data = bytes 0..48
//! 104     24    reserved (zero)
//! 128     ...   block i at 128 + i × 4136: nonce (24) ‖ ciphertext (4096) ‖ tag (16)
//! ```
//! Keys: the 64-byte user key is turned into the cipher key with
//! SHA-256("shoal-encryption-v1" ‖ key ‖ salt), so equal keys give unrelated cipher keys in two
//! files. Opening checks the sealed header, so a wrong key fails at once; a tampered block fails
//! the read that meets it. Blocks at or past "written blocks" have never been written and read
//! as zeros (the count is sealed in the header, so truncating the file is detected).
//!
//! Threat model: protects confidentiality and integrity of a file at rest against someone who
//! can read or modify it but does not know the key. It does not protect against rolling one
//! block back to an older sealed version of itself, nor against an attacker inside the process.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use parking_lot::Mutex;
use redb::{BackendError, StorageBackend};
use sha2::{Digest, Sha256};
use std::fs::{File, TryLockError};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Plaintext bytes per block (redb's default page size).
pub(crate) const BLOCK: u64 = 4096;
const NONCE: u64 = 24;
const TAG: u64 = 16;
const SEALED_BLOCK: u64 = NONCE + BLOCK + TAG;
const HEADER: u64 = 128;
const MAGIC: &[u8; 8] = b"SHOALENC";
const FORMAT: u32 = 1;

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

fn decryption_error(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, DecryptionError(msg.into()))
}

/// Whether the file at `path` starts like an encrypted realm.
pub(crate) fn is_encrypted_file(file: &File) -> io::Result<bool> {
    let mut magic = [0u8; 8];
    match file.read_exact_at(&mut magic, 0) {
        Ok(()) => Ok(&magic == MAGIC),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

#[derive(Clone, Copy)]
struct HeaderState {
    /// The length redb sees.
    logical_len: u64,
    /// Blocks `0..written` exist on disk and must authenticate; later ones read as zeros.
    written: u64,
    /// The sealed header on disk is older than this state.
    dirty: bool,
}

/// A redb backend over an encrypted file.
pub(crate) struct EncryptedBackend {
    file: File,
    cipher: XChaCha20Poly1305,
    salt: [u8; 32],
    state: Mutex<HeaderState>,
    whole_file_locked: AtomicBool,
    read_only: bool,
    /// Nonces are this random 128-bit prefix (drawn at open) followed by a 64-bit counter:
    /// unique within an open, and across opens unless two random prefixes collide
    /// (negligible), without a system call per block.
    nonce_prefix: [u8; 16],
    nonce_counter: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for EncryptedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedBackend").finish_non_exhaustive()
    }
}

fn cipher_for(key: &[u8; 64], salt: &[u8; 32]) -> XChaCha20Poly1305 {
    let mut h = Sha256::new();
    h.update(b"shoal-encryption-v1");
    h.update(key);
    h.update(salt);
    XChaCha20Poly1305::new(&h.finalize())
}

fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| io::Error::other(format!("no randomness available: {e}")))?;
    Ok(b)
}

impl EncryptedBackend {
    /// Opens `file` (empty: initializes a new encrypted file) with `key`.
    ///
    /// Fails with a [`DecryptionError`] if the key is wrong or the file is not an encrypted
    /// realm.
    pub(crate) fn open(
        file: File,
        key: &[u8; 64],
        read_only: bool,
    ) -> io::Result<EncryptedBackend> {
        let len = file.metadata()?.len();
        if len == 0 {
            if read_only {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the encrypted realm file is empty",
                ));
            }
            let salt = random_bytes::<32>()?;
            let backend = EncryptedBackend {
                cipher: cipher_for(key, &salt),
                file,
                salt,
                state: Mutex::new(HeaderState {
                    logical_len: 0,
                    written: 0,
                    dirty: true,
                }),
                whole_file_locked: AtomicBool::new(false),
                read_only,
                nonce_prefix: random_bytes::<16>()?,
                nonce_counter: std::sync::atomic::AtomicU64::new(0),
            };
            backend.write_header()?;
            return Ok(backend);
        }
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| decryption_error("the file is too short to be an encrypted realm"))?;
        if &header[..8] != MAGIC {
            return Err(decryption_error(
                "the file is not encrypted, but an encryption key was given",
            ));
        }
        let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        let block = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if format != FORMAT || u64::from(block) != BLOCK {
            return Err(decryption_error(format!(
                "unsupported encrypted format {format} (block size {block})"
            )));
        }
        let salt: [u8; 32] = header[16..48].try_into().expect("32 bytes");
        let cipher = cipher_for(key, &salt);
        let nonce = XNonce::from_slice(&header[48..72]);
        let mut body: [u8; 16] = header[72..88].try_into().expect("16 bytes");
        let tag = Tag::from_slice(&header[88..104]);
        cipher
            .decrypt_in_place_detached(nonce, &header[..48], &mut body, tag)
            .map_err(|_| {
                decryption_error("wrong encryption key (or the file header was tampered with)")
            })?;
        let logical_len = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        let written = u64::from_le_bytes(body[8..].try_into().expect("8 bytes"));
        if len < HEADER + written * SEALED_BLOCK {
            return Err(decryption_error("the encrypted file was truncated"));
        }
        Ok(EncryptedBackend {
            file,
            cipher,
            salt,
            state: Mutex::new(HeaderState {
                logical_len,
                written,
                dirty: false,
            }),
            whole_file_locked: AtomicBool::new(false),
            read_only,
            nonce_prefix: random_bytes::<16>()?,
            nonce_counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn next_nonce(&self) -> [u8; 24] {
        let mut nonce = [0u8; 24];
        nonce[..16].copy_from_slice(&self.nonce_prefix);
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        nonce[16..].copy_from_slice(&n.to_le_bytes());
        nonce
    }

    fn write_header(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        if !state.dirty {
            return Ok(());
        }
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT.to_le_bytes());
        header[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        header[16..48].copy_from_slice(&self.salt);
        let nonce = self.next_nonce();
        header[48..72].copy_from_slice(&nonce);
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&state.logical_len.to_le_bytes());
        body[8..].copy_from_slice(&state.written.to_le_bytes());
        let (aad, rest) = header.split_at_mut(48);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut body)
            .map_err(|_| io::Error::other("encryption failed"))?;
        rest[24..40].copy_from_slice(&body);
        rest[40..56].copy_from_slice(&tag);
        self.file.write_all_at(&header, 0)?;
        state.dirty = false;
        Ok(())
    }

    fn aad(&self, index: u64) -> [u8; 40] {
        let mut aad = [0u8; 40];
        aad[..32].copy_from_slice(&self.salt);
        aad[32..].copy_from_slice(&index.to_le_bytes());
        aad
    }

    /// The plaintext of block `index` (zeros if never written).
    fn read_block(
        &self,
        index: u64,
        written: u64,
        out: &mut [u8; BLOCK as usize],
    ) -> io::Result<()> {
        if index >= written {
            out.fill(0);
            return Ok(());
        }
        let mut sealed = [0u8; SEALED_BLOCK as usize];
        self.file
            .read_exact_at(&mut sealed, HEADER + index * SEALED_BLOCK)?;
        let (nonce, rest) = sealed.split_at(NONCE as usize);
        let (body, tag) = rest.split_at(BLOCK as usize);
        out.copy_from_slice(body);
        self.cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), &self.aad(index), out, Tag::from_slice(tag))
            .map_err(|_| decryption_error(format!("block {index} of the encrypted file failed authentication: it was modified or the key is wrong")))
    }

    /// Seals one block under a fresh nonce: `nonce ‖ ciphertext ‖ tag`.
    fn seal(
        &self,
        index: u64,
        plain: &[u8; BLOCK as usize],
    ) -> io::Result<[u8; SEALED_BLOCK as usize]> {
        let nonce = self.next_nonce();
        let mut sealed = [0u8; SEALED_BLOCK as usize];
        sealed[..NONCE as usize].copy_from_slice(&nonce);
        let body_end = (NONCE + BLOCK) as usize;
        sealed[NONCE as usize..body_end].copy_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &self.aad(index),
                &mut sealed[NONCE as usize..body_end],
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        sealed[body_end..].copy_from_slice(&tag);
        Ok(sealed)
    }

    fn write_block(&self, index: u64, plain: &[u8; BLOCK as usize]) -> io::Result<()> {
        self.file
            .write_all_at(&self.seal(index, plain)?, HEADER + index * SEALED_BLOCK)
    }

    fn whole(start: Bound<u64>, end: Bound<u64>) -> bool {
        matches!(start, Bound::Unbounded | Bound::Included(0)) && end == Bound::Unbounded
    }

    fn lock_whole_file(&self, shared: bool) -> Result<bool, BackendError> {
        let result = if shared {
            self.file.try_lock_shared()
        } else {
            self.file.try_lock()
        };
        match result {
            Ok(()) => {
                self.whole_file_locked.store(true, Ordering::Release);
                Ok(true)
            }
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(BackendError::from(e)),
        }
    }
}

impl StorageBackend for EncryptedBackend {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.state.lock().logical_len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let (logical_len, written) = {
            let s = self.state.lock();
            (s.logical_len, s.written)
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
        let mut block = [0u8; BLOCK as usize];
        let mut pos = offset;
        while pos < end {
            let index = pos / BLOCK;
            let within = (pos % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - pos) as usize);
            self.read_block(index, written, &mut block)?;
            let at = (pos - offset) as usize;
            out[at..at + n].copy_from_slice(&block[within..within + n]);
            pos += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the realm is read-only",
            ));
        }
        let mut s = self.state.lock();
        let blocks = len.div_ceil(BLOCK);
        if blocks < s.written {
            s.written = blocks;
            self.file.set_len(HEADER + blocks * SEALED_BLOCK)?;
        }
        if len < s.logical_len && !len.is_multiple_of(BLOCK) && s.written > len / BLOCK {
            // The tail of the last block must read as zeros if the file grows again.
            let index = len / BLOCK;
            drop(s);
            let mut block = [0u8; BLOCK as usize];
            let written = self.state.lock().written;
            self.read_block(index, written, &mut block)?;
            block[(len % BLOCK) as usize..].fill(0);
            self.write_block(index, &block)?;
            s = self.state.lock();
        }
        s.logical_len = len;
        s.dirty = true;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        if self.read_only {
            return Ok(());
        }
        self.write_header()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the realm is read-only",
            ));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::other("write past the end"))?;
        if data.is_empty() {
            return Ok(());
        }
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let written = self.state.lock().written;
        // Blocks between the old end and this write were never written: they are sealed as
        // zeros too, so that every block below `written` authenticates. The whole run goes to
        // disk in one write.
        let start = first.min(written);
        let mut out = Vec::with_capacity(((last + 1 - start) * SEALED_BLOCK) as usize);
        for index in start..=last {
            let mut block = [0u8; BLOCK as usize];
            if index >= first {
                let block_start = index * BLOCK;
                let (lo, hi) = (offset.max(block_start), end.min(block_start + BLOCK));
                if hi - lo < BLOCK {
                    self.read_block(index, written, &mut block)?;
                }
                block[(lo - block_start) as usize..(hi - block_start) as usize]
                    .copy_from_slice(&data[(lo - offset) as usize..(hi - offset) as usize]);
            }
            out.extend_from_slice(&self.seal(index, &block)?);
        }
        self.file
            .write_all_at(&out, HEADER + start * SEALED_BLOCK)?;
        let mut s = self.state.lock();
        if last + 1 > s.written {
            s.written = last + 1;
            s.dirty = true;
        }
        if end > s.logical_len {
            s.logical_len = end;
            s.dirty = true;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        if !self.read_only {
            self.write_header()?;
        }
        if self.whole_file_locked.swap(false, Ordering::AcqRel) {
            self.file.unlock()?;
        }
        Ok(())
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        if Self::whole(start, end) {
            self.lock_whole_file(false)
        } else {
            Err(BackendError::Unsupported)
        }
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        if Self::whole(start, end) {
            self.lock_whole_file(true)
        } else {
            Err(BackendError::Unsupported)
        }
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        if !Self::whole(start, end) {
            return Err(BackendError::Unsupported);
        }
        if self.whole_file_locked.swap(false, Ordering::AcqRel) {
            self.file.unlock().map_err(BackendError::from)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(file: &std::path::Path, key: &[u8; 64]) -> io::Result<EncryptedBackend> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)?;
        EncryptedBackend::open(f, key, false)
    }

    #[test]
    fn bytes_round_trip_across_block_boundaries_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        let key = [7u8; 64];
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        {
            let b = backend(&path, &key).unwrap();
            b.set_len(20_000).unwrap();
            b.write(3000, &data).unwrap();
            b.sync_data().unwrap();
            b.close().unwrap();
        }
        let b = backend(&path, &key).unwrap();
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
    }

    #[test]
    fn wrong_key_and_tampering_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc");
        {
            let b = backend(&path, &[1u8; 64]).unwrap();
            b.write(0, &[42u8; 5000]).unwrap();
            b.sync_data().unwrap();
        }
        let err = backend(&path, &[2u8; 64]).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<DecryptionError>()));
        let mut raw = std::fs::read(&path).unwrap();
        raw[(HEADER + NONCE + 10) as usize] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let b = backend(&path, &[1u8; 64]).unwrap();
        let mut out = [0u8; 10];
        let err = b.read(0, &mut out).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<DecryptionError>()));
        // The second block is intact.
        b.read(4096, &mut out).unwrap();
        assert_eq!(out, [42u8; 10]);
    }
}
