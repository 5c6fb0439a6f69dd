//! Token signing and verification with ed25519, and the signing key on disk.
//!
//! The token string format is defined in `shoal::protocol::auth` (base64url JSON payload, `.`,
//! base64url ed25519 signature over exactly those payload bytes). This module owns the key:
//!
//! ```text
//! DATA/auth-signing-key      64 lower-case hex chars + "\n": the 32-byte ed25519 secret seed.
//!                            Mode 0600. Generated on first start, never rewritten.
//! DATA/auth-signing-key.pub  64 lower-case hex chars + "\n": the 32-byte public key. Mode 0600
//!                            (as everything under DATA). Rewritten from the secret at every
//!                            start, for verifiers elsewhere.
//! ```
//!
//! A verifier needs only the public key ([`TokenVerifier`]): the sync service checks access
//! tokens without a database lookup. Revocation of refresh tokens is the auth service's job.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::files::write_private;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use shoal::protocol::auth::{encode_token_string, split_token, Token, TokenData, TokenFormatError};

/// The secret key file under the data directory.
pub const SIGNING_KEY_FILE: &str = "auth-signing-key";
/// The public key file under the data directory.
pub const PUBLIC_KEY_FILE: &str = "auth-signing-key.pub";

/// The server's signing key. Never leaves the process except in its 0600 file.
pub struct TokenKeys {
    /// The ed25519 secret; `Debug` is deliberately not derived so it cannot reach a log.
    signing: SigningKey,
}

impl TokenKeys {
    /// Loads the key from `data_dir`, generating and persisting it on first start.
    ///
    /// # Errors
    /// An I/O error, or `InvalidData` if the key file is not 64 hex characters. After a
    /// failure no key file has been half-written (a new key is written to a temporary file
    /// and renamed into place).
    pub fn load_or_create(data_dir: &Path) -> io::Result<TokenKeys> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        let seed = match fs::read_to_string(&path) {
            Ok(text) => {
                restrict_permissions(&path)?;
                parse_hex_32(text.trim()).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not 64 hex characters", path.display()),
                    )
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).map_err(io::Error::other)?;
                write_private(&path, &format!("{}\n", hex(&seed)))?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                seed
            }
            Err(e) => return Err(e),
        };
        let keys = TokenKeys {
            signing: SigningKey::from_bytes(&seed),
        };
        let public = format!("{}\n", hex(keys.verifying_key().as_bytes()));
        let public_path = data_dir.join(PUBLIC_KEY_FILE);
        if fs::read_to_string(&public_path).ok().as_deref() != Some(public.as_str()) {
            write_private(&public_path, &public)?;
        }
        Ok(keys)
    }

    /// The public half, for verifiers.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// A verifier for tokens signed by this key.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(self.verifying_key())
    }

    /// Signs `data` into a token string.
    pub fn sign(&self, data: TokenData) -> Token {
        // Serializing a struct of strings, integers and bools cannot fail.
        let payload = serde_json::to_vec(&data).unwrap_or_default();
        let signature = self.signing.sign(&payload);
        Token {
            token: encode_token_string(&payload, &signature.to_bytes()),
            token_data: data,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The string is not a token at all.
    #[error("malformed token: {0}")]
    Malformed(#[from] TokenFormatError),
    /// The signature does not verify with this server's public key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The token is expired.
    #[error("the token expired at {expires}")]
    Expired {
        /// When it expired, in unix seconds.
        expires: i64,
    },
}

/// Verifies tokens with the server's public key alone. Cheap to clone and share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenVerifier {
    /// The server's ed25519 public key.
    key: VerifyingKey,
}

impl TokenVerifier {
    /// A verifier for `key`.
    pub fn new(key: VerifyingKey) -> TokenVerifier {
        TokenVerifier { key }
    }

    /// A verifier from the public key file a server wrote into `data_dir`.
    ///
    /// # Errors
    /// An I/O error, or `InvalidData` if the file does not hold a valid public key.
    pub fn from_data_dir(data_dir: &Path) -> io::Result<TokenVerifier> {
        let path = data_dir.join(PUBLIC_KEY_FILE);
        let bytes = parse_hex_32(fs::read_to_string(&path)?.trim());
        let key = bytes.and_then(|b| VerifyingKey::from_bytes(&b).ok());
        key.map(TokenVerifier::new).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not an ed25519 public key", path.display()),
            )
        })
    }

    /// The public key.
    pub fn key(&self) -> VerifyingKey {
        self.key
    }

    /// Checks the signature and decodes the payload, ignoring expiry.
    ///
    /// # Errors
    /// [`TokenError::Malformed`] or [`TokenError::BadSignature`].
    pub fn verify_signature(&self, token: &str) -> Result<TokenData, TokenError> {
        let parts = split_token(token)?;
        let signature =
            Signature::from_slice(&parts.signature).map_err(|_| TokenError::BadSignature)?;
        self.key
            .verify_strict(&parts.payload, &signature)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(parts.token_data()?)
    }

    /// Checks the signature and that the token is not expired at `now` (unix seconds).
    ///
    /// # Errors
    /// Any [`TokenError`].
    pub fn verify(&self, token: &str, now: i64) -> Result<TokenData, TokenError> {
        let data = self.verify_signature(token)?;
        if data.is_expired_at(now) {
            return Err(TokenError::Expired {
                expires: data.expires,
            });
        }
        Ok(data)
    }
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A fresh random id: 16 bytes from the OS as 32 lower-case hex characters. Used for user
/// identities and refresh token ids.
///
/// # Errors
/// The OS random source failed.
pub fn random_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(io::Error::other)?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Tightens a key file that someone made readable by others back to 0600.
fn restrict_permissions(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"),
                "signing key readable by others; resetting it to 0600");
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(expires: i64) -> TokenData {
        TokenData {
            identity: "alice".into(),
            path: Some("/alice/tasks".into()),
            expires,
            access: vec!["download".into(), "upload".into()],
            is_admin: false,
            app_id: "app".into(),
            token_id: None,
            refresh_token_id: None,
        }
    }

    #[test]
    fn signed_tokens_verify_and_survive_reloading_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = TokenKeys::load_or_create(dir.path()).unwrap();
        let token = keys.sign(data(unix_now() + 60));
        assert_eq!(
            keys.verifier().verify(&token.token, unix_now()).unwrap(),
            token.token_data
        );

        let again = TokenKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(again.verifying_key(), keys.verifying_key());
        let from_file = TokenVerifier::from_data_dir(dir.path()).unwrap();
        assert!(from_file.verify(&token.token, unix_now()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(dir.path().join(SIGNING_KEY_FILE)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let keys = TokenKeys::load_or_create(dir.path()).unwrap();
        let verifier = keys.verifier();
        let expired = keys.sign(data(100));
        assert_eq!(
            verifier.verify(&expired.token, 100),
            Err(TokenError::Expired { expires: 100 })
        );
        assert!(verifier.verify(&expired.token, 99).is_ok());

        let foreign = TokenKeys::load_or_create(other.path())
            .unwrap()
            .sign(data(i64::MAX));
        assert_eq!(
            verifier.verify(&foreign.token, 0),
            Err(TokenError::BadSignature)
        );

        let mut forged = data(i64::MAX);
        forged.is_admin = true;
        let forged_payload = serde_json::to_vec(&forged).unwrap();
        let genuine = keys.sign(data(i64::MAX)).token;
        let signature = split_token(&genuine).unwrap().signature;
        let tampered = encode_token_string(&forged_payload, &signature);
        assert_eq!(verifier.verify(&tampered, 0), Err(TokenError::BadSignature));
        assert!(matches!(
            verifier.verify("garbage", 0),
            Err(TokenError::Malformed(_))
        ));
    }
}
