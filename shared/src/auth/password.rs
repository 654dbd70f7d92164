//! Password hashing with Argon2id (RFC 9106), the one place that knows the parameters.
//!
//! Parameters: m = 19,456 KiB (19 MiB), t = 2 passes, p = 1 lane, 32-byte output,
//! 16-byte random salt: OWASP's first recommended Argon2id setting. 19 MiB fits well
//! inside a 128-256 MB Lambda with room for the rest of the function; one lane because
//! a 256 MB Lambda gets a fraction of one vCPU. Measured hash time: see
//! `docs/security.md` (`cargo test -p chat-core --release -- --ignored argon2_timing
//! --nocapture`).
//!
//! Hashes are stored as PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), so a
//! later change of parameters keeps old hashes verifiable. Verification against an
//! unknown user runs against [`DUMMY_HASH`], a constant hash with the same parameters,
//! so "no such user" costs the same time as "wrong password".
//!
//! Hashing is CPU-bound for tens of milliseconds: [`hash`] and [`verify`] run it on
//! tokio's blocking pool so that one login does not stall other requests served by the
//! same process (the local gateway hosts many).

use crate::input::Password;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// Memory cost in KiB.
pub const M_COST_KIB: u32 = 19_456;
/// Passes over memory.
pub const T_COST: u32 = 2;
/// Lanes.
pub const P_COST: u32 = 1;

/// A hash, with [`M_COST_KIB`]/[`T_COST`]/[`P_COST`], of a random password nobody
/// knows. Verifying any password against it fails after a full Argon2id run.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$cMRBR/PRM4SS7/31/45nWw$uXwwKIiIE0cqw+n3z6H/c2wiLX8z2Pe71tZXn7mnbBw";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .expect("the Argon2 parameters are valid constants");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a new password with a fresh random salt (blocking; prefer [`hash`]).
pub fn hash_blocking(password: &Password) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `stored` (a PHC string); `None` (no such user) verifies
/// against [`DUMMY_HASH`] and is always false. A malformed stored hash is false too.
/// Blocking; prefer [`verify`].
pub fn verify_blocking(password: &Password, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (DUMMY_HASH, false),
    };
    let parsed = match PasswordHash::new(phc) {
        Ok(p) => p,
        Err(_) => {
            tracing::error!("stored password hash is malformed");
            // Spend the time anyway so a broken record does not stand out.
            let _ = verify_blocking(password, None);
            return false;
        }
    };
    // The parameters come from the PHC string itself.
    let ok = Argon2::default()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// [`hash_blocking`] on the blocking pool.
pub async fn hash(password: Password) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
}

/// [`verify_blocking`] on the blocking pool.
pub async fn verify(password: Password, stored: Option<String>) -> Result<bool, PasswordError> {
    Ok(tokio::task::spawn_blocking(move || verify_blocking(&password, stored.as_deref())).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn pw(s: &str) -> Password {
        Password::parse(s).unwrap()
    }

    #[test]
    fn hash_then_verify() {
        let h = hash_blocking(&pw("correct horse battery")).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_blocking(&pw("correct horse battery"), Some(&h)));
        assert!(!verify_blocking(&pw("correct horse batterY"), Some(&h)));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash_blocking(&pw("correct horse battery")).unwrap());
    }

    #[test]
    fn unknown_user_and_malformed_hash_never_verify() {
        assert!(!verify_blocking(&pw("correct horse battery"), None));
        assert!(!verify_blocking(
            &pw("correct horse battery"),
            Some("not a hash")
        ));
    }

    #[test]
    fn dummy_hash_has_the_real_parameters() {
        let d = PasswordHash::new(DUMMY_HASH).unwrap();
        let real = hash_blocking(&pw("correct horse battery")).unwrap();
        let r = PasswordHash::new(&real).unwrap();
        assert_eq!(d.algorithm, r.algorithm);
        assert_eq!(d.version, r.version);
        assert_eq!(d.params, r.params);
        assert_eq!(
            d.hash.map(|h| h.len()),
            r.hash.map(|h| h.len()),
            "same output length"
        );
    }

    /// Prints the time of one hash and of a dummy verification. Run with
    /// `cargo test -p chat-core [--release] -- --ignored argon2_timing --nocapture`.
    #[test]
    #[ignore]
    fn argon2_timing() {
        let p = pw("correct horse battery");
        let n = 10;
        let t = Instant::now();
        let mut h = String::new();
        for _ in 0..n {
            h = hash_blocking(&p).unwrap();
        }
        let hash_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            assert!(verify_blocking(&p, Some(&h)));
        }
        let verify_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            assert!(!verify_blocking(&p, None));
        }
        let dummy_ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!(
            "argon2id m={M_COST_KIB} t={T_COST} p={P_COST}: hash {hash_ms:.1} ms, \
             verify {verify_ms:.1} ms, dummy verify {dummy_ms:.1} ms (mean of {n})"
        );
    }
}
