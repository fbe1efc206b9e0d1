//! TOTP secrets sealed at rest (issue 18, item 4).
//!
//! A TOTP secret lets whoever holds it produce the second factor of its account, so the account
//! stores never hold it in clear: it is sealed with ChaCha20-Poly1305 (`ring`) under the
//! `totp-seal` key of the secret provider, with the username as associated data (a sealed
//! secret copied onto another account's row does not open). Stored form:
//!
//! ```text
//! sealed:v1:<key id>:<nonce, 24 hex>:<ciphertext and tag, hex>
//! ```
//!
//! The key id names the provider's version, so the key can rotate: older secrets open under
//! the version they name. A stored value not in this form is refused at use (it was written
//! into the store by hand); secrets enrolled before sealing existed are sealed at start-up.

use rand::RngCore;
use relay_domain::KeyId;
use relay_domain::ports::{
    SecretName, SecretProvider, SecretProviderExt, SecretValue, TotpSecret, Username,
};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::ApiError;

/// The secret provider's name of the sealing key.
pub const TOTP_SEAL_SECRET: &str = "totp-seal";

const PREFIX: &str = "sealed:v1:";

/// Why a stored TOTP secret could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not in the sealed form (stored in clear, or garbage).
    #[error("the stored TOTP secret is not sealed")]
    NotSealed,
    /// Sealed, but the key, the account or the bytes do not match.
    #[error("the stored TOTP secret does not open (wrong key, another account's, or altered)")]
    Altered,
    /// The key version it names cannot be read.
    #[error("the TOTP sealing key {0} cannot be read")]
    NoKey(String),
}

/// Whether `stored` is in the sealed form.
pub(crate) fn is_sealed(stored: &TotpSecret) -> bool {
    stored.expose().starts_with(PREFIX)
}

fn aead_key(key: &SecretValue) -> Result<LessSafeKey, ApiError> {
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, key.expose()).map_err(|_| {
        ApiError::internal(
            "TOTP sealing",
            &std::io::Error::other("the totp-seal key is not 32 bytes"),
        )
    })?;
    Ok(LessSafeKey::new(unbound))
}

/// Seals the base32 `secret` of `username` under `key`.
pub(crate) fn seal(
    key: &SecretValue,
    username: &Username,
    secret: &str,
) -> Result<TotpSecret, ApiError> {
    let aead = aead_key(key)?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut in_out = Zeroizing::new(secret.as_bytes().to_vec());
    aead.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(username.as_str().as_bytes()),
        &mut *in_out,
    )
    .map_err(|_| ApiError::internal("TOTP sealing", &std::io::Error::other("sealing failed")))?;
    Ok(TotpSecret::new(format!(
        "{PREFIX}{}:{}:{}",
        key.id(),
        hex::encode(nonce),
        hex::encode(&*in_out)
    )))
}

/// The key id a sealed value names.
pub(crate) fn key_id_of(stored: &TotpSecret) -> Result<KeyId, OpenError> {
    let rest = stored
        .expose()
        .strip_prefix(PREFIX)
        .ok_or(OpenError::NotSealed)?;
    let id = rest.split(':').next().ok_or(OpenError::NotSealed)?;
    KeyId::new(id).map_err(|_| OpenError::NotSealed)
}

/// Opens the sealed `stored` secret of `username` with `key` (the version it names).
pub(crate) fn open(
    key: &SecretValue,
    username: &Username,
    stored: &TotpSecret,
) -> Result<TotpSecret, OpenError> {
    let rest = stored
        .expose()
        .strip_prefix(PREFIX)
        .ok_or(OpenError::NotSealed)?;
    let mut parts = rest.split(':');
    let (Some(id), Some(nonce), Some(sealed), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OpenError::NotSealed);
    };
    if id != key.id().as_str() {
        return Err(OpenError::Altered);
    }
    let nonce: [u8; NONCE_LEN] = hex::decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or(OpenError::NotSealed)?;
    let mut in_out = Zeroizing::new(hex::decode(sealed).map_err(|_| OpenError::NotSealed)?);
    let aead = aead_key(key).map_err(|_| OpenError::NoKey(id.to_owned()))?;
    let plain = aead
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(username.as_str().as_bytes()),
            &mut in_out,
        )
        .map_err(|_| OpenError::Altered)?;
    let text = std::str::from_utf8(plain).map_err(|_| OpenError::Altered)?;
    Ok(TotpSecret::new(text.to_owned()))
}

/// The current sealing key (created on first use) and older versions on demand.
pub(crate) async fn current_key(secrets: &dyn SecretProvider) -> Result<SecretValue, ApiError> {
    let name = seal_name()?;
    secrets
        .current_or_create(&name)
        .await
        .map_err(|e| ApiError::internal("the TOTP sealing key cannot be read", &e))
}

/// The version `id` of the sealing key.
pub(crate) async fn key_version(
    secrets: &dyn SecretProvider,
    id: &KeyId,
) -> Result<SecretValue, OpenError> {
    let name = seal_name().map_err(|_| OpenError::NoKey(id.to_string()))?;
    secrets
        .version(&name, id)
        .await
        .map_err(|_| OpenError::NoKey(id.to_string()))
}

fn seal_name() -> Result<SecretName, ApiError> {
    SecretName::new(TOTP_SEAL_SECRET).map_err(|e| ApiError::internal("TOTP sealing", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> SecretValue {
        SecretValue::new(KeyId::new(id).unwrap(), vec![byte; 32])
    }

    fn user(name: &str) -> Username {
        Username::new(name.to_owned()).unwrap()
    }

    // REQ: R10.3
    #[test]
    fn a_sealed_secret_opens_only_with_its_key_for_its_account_unaltered() {
        let (k1, ada) = (key("k1", 1), user("ada"));
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let sealed = seal(&k1, &ada, secret).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.expose().contains(secret), "stored in clear");
        assert_eq!(key_id_of(&sealed).unwrap().as_str(), "k1");
        assert_eq!(open(&k1, &ada, &sealed).unwrap().expose(), secret);
        // Two seals of the same secret differ (fresh nonce).
        assert_ne!(seal(&k1, &ada, secret).unwrap().expose(), sealed.expose());

        // Another account's row, another key, a flipped byte, clear text: none opens.
        assert_eq!(open(&k1, &user("eve"), &sealed), Err(OpenError::Altered));
        assert_eq!(open(&key("k1", 2), &ada, &sealed), Err(OpenError::Altered));
        assert_eq!(open(&key("k2", 1), &ada, &sealed), Err(OpenError::Altered));
        let mut flipped = sealed.expose().to_owned();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            open(&k1, &ada, &TotpSecret::new(flipped)),
            Err(OpenError::Altered)
        );
        assert_eq!(
            open(&k1, &ada, &TotpSecret::new(secret.to_owned())),
            Err(OpenError::NotSealed)
        );
    }
}
