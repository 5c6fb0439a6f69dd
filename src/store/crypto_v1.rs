//! A read-only reader of encrypted format 1, kept only to upgrade such files to format 2
//! (`file.rs`). Format 1 sealed a 128-byte header in place and block `i` at `128 + i × 4136`
//! (`nonce ‖ ciphertext ‖ tag`, associated data `salt ‖ i`), with the cipher key
//! SHA-256("shoal-encryption-v1" ‖ key ‖ salt). Block 0 — redb's header with both commit
//! slots — was rewritten in place on every commit, so a torn write could lose the whole file:
//! that is why the format was replaced.

use crate::store::crypto::{decryption_error, BLOCK};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use redb::StorageBackend;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const NONCE: u64 = 24;
const TAG: u64 = 16;
const SEALED_BLOCK: u64 = NONCE + BLOCK + TAG;
const HEADER: u64 = 128;

/// Reads a format-1 file; every write is refused.
pub(crate) struct FormatOneReader {
    file: File,
    cipher: XChaCha20Poly1305,
    salt: [u8; 32],
    logical_len: u64,
    written: u64,
}

impl std::fmt::Debug for FormatOneReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatOneReader").finish_non_exhaustive()
    }
}

impl FormatOneReader {
    /// Opens `file` (already known to start with format 1's magic and version) with `key`.
    pub(crate) fn open(file: File, key: &[u8; 64]) -> io::Result<FormatOneReader> {
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| decryption_error("the file is too short to be an encrypted realm"))?;
        let salt: [u8; 32] = header[16..48].try_into().expect("32 bytes");
        let mut h = Sha256::new();
        h.update(b"shoal-encryption-v1");
        h.update(key);
        h.update(salt);
        let cipher = XChaCha20Poly1305::new(&h.finalize());
        let mut body: [u8; 16] = header[72..88].try_into().expect("16 bytes");
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(&header[48..72]),
                &header[..48],
                &mut body,
                Tag::from_slice(&header[88..104]),
            )
            .map_err(|_| {
                decryption_error("wrong encryption key (or the file header was tampered with)")
            })?;
        Ok(FormatOneReader {
            file,
            cipher,
            salt,
            logical_len: u64::from_le_bytes(body[..8].try_into().expect("8 bytes")),
            written: u64::from_le_bytes(body[8..].try_into().expect("8 bytes")),
        })
    }

    fn read_block(&self, index: u64, out: &mut [u8; BLOCK as usize]) -> io::Result<()> {
        if index >= self.written {
            out.fill(0);
            return Ok(());
        }
        let mut sealed = [0u8; SEALED_BLOCK as usize];
        self.file
            .read_exact_at(&mut sealed, HEADER + index * SEALED_BLOCK)?;
        let (nonce, rest) = sealed.split_at(NONCE as usize);
        let (body, tag) = rest.split_at(BLOCK as usize);
        out.copy_from_slice(body);
        let mut aad = [0u8; 40];
        aad[..32].copy_from_slice(&self.salt);
        aad[32..].copy_from_slice(&index.to_le_bytes());
        self.cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), &aad, out, Tag::from_slice(tag))
            .map_err(|_| {
                decryption_error(format!(
                    "block {index} of the format-1 encrypted file failed authentication"
                ))
            })
    }
}

fn refused() -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        "a format-1 encrypted file is only read, to upgrade it",
    )
}

impl StorageBackend for FormatOneReader {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.logical_len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|&end| end <= self.logical_len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let mut block = [0u8; BLOCK as usize];
        let mut pos = offset;
        while pos < end {
            let (index, within) = (pos / BLOCK, (pos % BLOCK) as usize);
            let n = (BLOCK as usize - within).min((end - pos) as usize);
            self.read_block(index, &mut block)?;
            let at = (pos - offset) as usize;
            out[at..at + n].copy_from_slice(&block[within..within + n]);
            pos += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, _len: u64) -> Result<(), io::Error> {
        Err(refused())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), io::Error> {
        Err(refused())
    }
}
