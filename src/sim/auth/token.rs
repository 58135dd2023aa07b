//! ServiceAccount tokens: JWTs with kube-apiserver's claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
//! `jti`, `kubernetes.io`), signed with a key that lives and dies with the simulated cluster. The simulator
//! signs with HMAC-SHA256 where kube-apiserver signs with RS256: clients treat the token as opaque.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::hmac;
use serde_json::{Value, json};

/// The issuer and the audience kube-apiserver uses by default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub namespace: String,
    pub service_account: String,
    pub service_account_uid: String,
    pub audiences: Vec<String>,
    pub issued_at: u64,
    pub expires_at: u64,
    /// The object the token is bound to (kind, name, uid): the token dies with it.
    pub bound: Option<(String, String, String)>,
}

pub struct Signer {
    key: hmac::Key,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        Signer {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    pub fn sign(&self, c: &Claims, jti: &str) -> String {
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let mut k8s = json!({
            "namespace": c.namespace,
            "serviceaccount": {"name": c.service_account, "uid": c.service_account_uid},
        });
        if let Some((kind, name, uid)) = &c.bound {
            k8s[kind.to_lowercase()] = json!({"name": name, "uid": uid});
        }
        let claims = json!({
            "aud": c.audiences,
            "exp": c.expires_at,
            "iat": c.issued_at,
            "nbf": c.issued_at,
            "iss": ISSUER,
            "jti": jti,
            "sub": format!("system:serviceaccount:{}:{}", c.namespace, c.service_account),
            "kubernetes.io": k8s,
        });
        let signing_input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", B64URL.encode(sig.as_ref()))
    }

    /// The claims of a token this signer issued, if the signature holds; expiry is the caller's check.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let sig = B64URL.decode(s).ok()?;
        hmac::verify(&self.key, format!("{h}.{p}").as_bytes(), &sig).ok()?;
        let claims: Value = serde_json::from_slice(&B64URL.decode(p).ok()?).ok()?;
        let k8s = &claims["kubernetes.io"];
        let bound = ["pod", "secret", "node"].iter().find_map(|kind| {
            let b = &k8s[*kind];
            Some((
                format!("{}{}", kind[..1].to_uppercase(), &kind[1..]),
                b["name"].as_str()?.to_string(),
                b["uid"].as_str()?.to_string(),
            ))
        });
        Some(Claims {
            namespace: k8s["namespace"].as_str()?.to_string(),
            service_account: k8s["serviceaccount"]["name"].as_str()?.to_string(),
            service_account_uid: k8s["serviceaccount"]["uid"].as_str()?.to_string(),
            audiences: claims["aud"]
                .as_array()?
                .iter()
                .filter_map(|a| a.as_str().map(String::from))
                .collect(),
            issued_at: claims["iat"].as_u64()?,
            expires_at: claims["exp"].as_u64()?,
            bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            namespace: "ns".into(),
            service_account: "sa".into(),
            service_account_uid: "u-1".into(),
            audiences: vec![ISSUER.into()],
            issued_at: 100,
            expires_at: 3700,
            bound: Some(("Secret".into(), "s".into(), "u-2".into())),
        }
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_caught() {
        let s = Signer::new(b"key");
        let t = s.sign(&claims(), "j");
        assert_eq!(s.verify(&t), Some(claims()));
        assert_eq!(Signer::new(b"other").verify(&t), None);
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64URL.encode(r#"{"kubernetes.io":{"namespace":"kube-system"}}"#);
        parts[1] = &forged;
        assert_eq!(s.verify(&parts.join(".")), None);
        for junk in ["", "a.b", "a.b.c", "a.b.c.d", "Zm9v.Zm9v.Zm9v"] {
            assert_eq!(s.verify(junk), None, "{junk}");
        }
    }
}
