//! OpenPGP signatures (git's default `gpg.format`), checked with rPGP against armored public keys: the
//! primary key or a signing subkey bound to it must verify the detached signature over the object.

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use super::{SignatureFormat, SignedObject, Signer, VerifyError};

pub const ARMOR_BEGIN: &str = "-----BEGIN PGP SIGNATURE-----";
pub const KEY_BLOCK_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
pub const KEY_BLOCK_END: &str = "-----END PGP PUBLIC KEY BLOCK-----";

/// An allowed OpenPGP certificate whose self-signatures verified when it was read.
#[derive(Debug, Clone)]
pub struct AllowedCert {
    pub key: SignedPublicKey,
    /// The first user id, shown as the signer's identity.
    pub identity: String,
}

/// The certificates of one armored key block (it may hold several).
pub fn parse_certs(armored: &str) -> Result<Vec<AllowedCert>, String> {
    let (keys, _) =
        SignedPublicKey::from_string_many(armored).map_err(|e| format!("not an OpenPGP public key: {e}"))?;
    let mut out = Vec::new();
    for key in keys {
        let key = key.map_err(|e| format!("not an OpenPGP public key: {e}"))?;
        key.verify().map_err(|e| {
            format!(
                "key {}: its self-signatures do not verify: {e}",
                hex(&key.fingerprint())
            )
        })?;
        let identity = key
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .unwrap_or_else(|| hex(&key.fingerprint()));
        out.push(AllowedCert { key, identity });
    }
    if out.is_empty() {
        return Err("the block holds no public key".into());
    }
    Ok(out)
}

fn hex(fingerprint: &pgp::types::Fingerprint) -> String {
    format!("{fingerprint:X}")
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

pub fn verify(signed: &SignedObject, armored: &str, allowed: &[AllowedCert]) -> Result<Signer, VerifyError> {
    let object = signed.object.clone();
    let (signature, _) = DetachedSignature::from_string(armored).map_err(|e| VerifyError::Malformed {
        object: object.clone(),
        reason: format!("OpenPGP signature: {e}"),
    })?;
    let sig = &signature.signature;
    let issuer_fingerprints: Vec<String> = sig.issuer_fingerprint().iter().map(|f| hex(f)).collect();
    let issuer_ids: Vec<String> = sig.issuer().iter().map(|id| hex_bytes(id.as_ref())).collect();
    let claimed = issuer_fingerprints
        .first()
        .or(issuer_ids.first())
        .cloned()
        .unwrap_or_else(|| "(no issuer)".to_string());
    // The primary key and every subkey of each allowed certificate, matched by the issuer the signature names.
    for cert in allowed {
        let primary = &cert.key.primary_key;
        let mut keys: Vec<(Key<'_>, String, String)> = vec![(
            Key::Primary(primary),
            hex(&primary.fingerprint()),
            hex_bytes(primary.key_id().as_ref()),
        )];
        for sub in &cert.key.public_subkeys {
            keys.push((
                Key::Sub(&sub.key),
                hex(&sub.key.fingerprint()),
                hex_bytes(sub.key.key_id().as_ref()),
            ));
        }
        for (key, fingerprint, key_id) in keys {
            if !issuer_fingerprints.contains(&fingerprint) && !issuer_ids.contains(&key_id) {
                continue;
            }
            if !cert.key.details.revocation_signatures.is_empty() {
                return Err(VerifyError::NotAllowed {
                    object,
                    fingerprint,
                    reason: "its certificate is revoked".into(),
                });
            }
            let verified = match key {
                Key::Primary(k) => signature.verify(k, &signed.payload),
                Key::Sub(k) => signature.verify(k, &signed.payload),
            };
            return match verified {
                Ok(()) => Ok(Signer {
                    format: SignatureFormat::OpenPgp,
                    fingerprint,
                    identity: cert.identity.clone(),
                    object,
                }),
                Err(_) => Err(VerifyError::BadSignature {
                    object,
                    format: SignatureFormat::OpenPgp,
                    fingerprint,
                }),
            };
        }
    }
    Err(VerifyError::UnknownKey {
        object,
        format: SignatureFormat::OpenPgp,
        fingerprint: claimed,
    })
}

/// A certificate's primary key or one of its subkeys (subkey bindings were verified when it was read).
enum Key<'a> {
    Primary(&'a pgp::packet::PublicKey),
    Sub(&'a pgp::packet::PublicSubkey),
}
