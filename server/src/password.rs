//! Password hashing with argon2id into memory the hasher owns, and generated passwords.
//!
//! Stored hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), the format
//! of the `argon2` crate's `PasswordHasher`, so hashes written before this module verify, and
//! each hash carries its own parameters.
//!
//! **Why own memory:** `argon2`'s `PasswordHasher` allocates its 19 MiB work area for every
//! hash. Freed memory stays with the allocator's per-thread arenas, and under a flood of logins
//! the fragments added up (250 MiB resident with two hashing threads). A [`Hasher`] allocates
//! its area once and reuses it: the hashing threads of `limits.rs` hold exactly
//! `threads × m_cost` KiB. A stored hash with a higher memory cost than the hasher's gets a
//! temporary area of its own.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Random bytes in a generated password (32 base64url characters, 192 bits).
const GENERATED_PASSWORD_BYTES: usize = 24;
/// Bytes of salt per hash.
const SALT_BYTES: usize = 16;

/// Hashes new passwords with fixed parameters and verifies stored hashes, in its own memory.
pub(crate) struct Hasher {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    /// The work area: `params.block_count()` blocks of 1 KiB.
    memory: Vec<Block>,
}

impl Hasher {
    /// A hasher for new hashes with `params` (argon2id, version 0x13). The work area is
    /// allocated by the first hash.
    pub(crate) fn new(params: Params) -> Hasher {
        Hasher {
            algorithm: Algorithm::Argon2id,
            version: Version::V0x13,
            memory: Vec::new(),
            params,
        }
    }

    /// The PHC string of `password` with a fresh random salt.
    ///
    /// # Errors
    /// The OS random source or argon2 failed (neither happens with valid parameters).
    pub(crate) fn hash(&mut self, password: &str) -> Result<String, String> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        let mut out = vec![
            0u8;
            self.params
                .output_len()
                .unwrap_or(Params::DEFAULT_OUTPUT_LEN)
        ];
        let argon2 = Argon2::new(self.algorithm, self.version, self.params.clone());
        let mut raw_salt = [0u8; SALT_BYTES];
        let raw_salt = salt
            .as_salt()
            .decode_b64(&mut raw_salt)
            .map_err(|e| e.to_string())?;
        self.compute(&argon2, password, raw_salt, &mut out)?;
        let hash = PasswordHash {
            algorithm: self.algorithm.ident(),
            version: Some(self.version.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| e.to_string())?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
        };
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `stored`, computed with the parameters
    /// stored in it and compared in constant time. A string that does not parse, or of
    /// another algorithm family, never matches (and is logged).
    pub(crate) fn verify(&mut self, password: &str, stored: &str) -> bool {
        match self.try_verify(password, stored) {
            Ok(matches) => matches,
            Err(e) => {
                tracing::error!(error = %e, "a stored password hash is unusable");
                false
            }
        }
    }

    fn try_verify(&mut self, password: &str, stored: &str) -> Result<bool, String> {
        let parsed = PasswordHash::new(stored).map_err(|e| e.to_string())?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err("no salt or no hash".into());
        };
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| e.to_string())?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
        let argon2 = Argon2::new(algorithm, version, params);
        let mut raw_salt = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut raw_salt).map_err(|e| e.to_string())?;
        let mut out = vec![0u8; expected.len()];
        self.compute(&argon2, password, raw_salt, &mut out)?;
        let computed = Output::new(&out).map_err(|e| e.to_string())?;
        // `Output`'s equality is constant-time.
        Ok(computed == expected)
    }

    /// Runs argon2 in the work area (allocated on first use, the size of this hasher's
    /// parameters), or in a temporary area if `argon2`'s parameters need more.
    fn compute(
        &mut self,
        argon2: &Argon2<'_>,
        password: &str,
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), String> {
        let needed = argon2.params().block_count();
        let own = self.params.block_count();
        if self.memory.len() < needed && needed <= own {
            self.memory.resize(own, Block::default());
        }
        let result = match self.memory.get_mut(..needed) {
            Some(area) => {
                argon2.hash_password_into_with_memory(password.as_bytes(), salt, out, area)
            }
            None => argon2.hash_password_into(password.as_bytes(), salt, out),
        };
        result.map_err(|e| e.to_string())
    }
}

/// A password of [`GENERATED_PASSWORD_BYTES`] random bytes from the OS, base64url (32
/// characters, no padding).
///
/// # Errors
/// The OS random source failed.
pub(crate) fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; GENERATED_PASSWORD_BYTES];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(password_text(&bytes))
}

/// The password text of random bytes: base64url without padding.
fn password_text(bytes: &[u8; GENERATED_PASSWORD_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    fn small() -> Params {
        Params::new(64, 2, 1, None).unwrap()
    }

    #[test]
    fn hashes_verify_both_ways_with_the_argon2_crate() {
        let mut hasher = Hasher::new(small());
        let ours = hasher.hash("s3cret").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=64,t=2,p=1$"), "{ours}");
        assert!(hasher.verify("s3cret", &ours));
        assert!(!hasher.verify("s3cret!", &ours));
        assert!(!hasher.verify("", &ours));
        let crate_hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, small());
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(crate_hasher.verify_password(b"s3cret", &parsed).is_ok());
        assert!(crate_hasher.verify_password(b"other", &parsed).is_err());

        // Hashes the crate wrote (as stored before this module), with more memory than the
        // hasher has, and of other argon2 variants, verify too.
        for (algorithm, m) in [(Algorithm::Argon2id, 256), (Algorithm::Argon2i, 32)] {
            let params = Params::new(m, 1, 1, None).unwrap();
            let theirs = Argon2::new(algorithm, Version::V0x13, params);
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            let stored = theirs.hash_password(b"", &salt).unwrap().to_string();
            assert!(hasher.verify("", &stored), "{stored}");
            assert!(!hasher.verify("x", &stored), "{stored}");
        }
        assert!(!hasher.verify("x", "not a hash"));
        assert!(!hasher.verify("x", "$pbkdf2$i=1$c2FsdHNhbHQ$aGFzaA"));
        // A fresh salt each time.
        assert_ne!(hasher.hash("same").unwrap(), hasher.hash("same").unwrap());
    }

    #[test]
    fn password_text_is_unpadded_base64url() {
        let mut bytes = [0u8; GENERATED_PASSWORD_BYTES];
        assert_eq!(password_text(&bytes), "A".repeat(32));
        bytes = [0xff; GENERATED_PASSWORD_BYTES];
        assert_eq!(password_text(&bytes), "_".repeat(32));
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        assert_eq!(password_text(&bytes), "pYDvyjEce6aN6NcyGUSjjvXQPxpBrIv2");
    }

    #[test]
    fn generated_passwords_are_32_url_safe_characters_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }
}
