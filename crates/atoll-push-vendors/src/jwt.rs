//! The signing half of JWT, as much as the vendors need: ES256 for APNs
//! provider tokens and RS256 for Google's service-account assertions.
//!
//! `ring` does the cryptography (it is already in the build through rustls);
//! PEM is unwrapped here because the keys come as PEM text inside JSON.

use crate::CredentialsError;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};

/// Decodes the first PEM block labelled `label` (e.g. `PRIVATE KEY`) to DER.
pub fn pem_to_der(pem: &str, label: &str) -> Result<Vec<u8>, CredentialsError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or_else(|| {
        // Name the label found instead, if any: "BEGIN EC PRIVATE KEY" (SEC1)
        // or "BEGIN RSA PRIVATE KEY" (PKCS#1) are the usual mistakes.
        let found = pem
            .find("-----BEGIN ")
            .and_then(|at| {
                let rest = &pem[at + 11..];
                rest.find("-----").map(|e| rest[..e].to_string())
            })
            .map(|l| format!(" (found \"{l}\")"))
            .unwrap_or_default();
        CredentialsError::Invalid(format!("expected a PEM \"{label}\" block{found}"))
    })? + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| CredentialsError::Invalid(format!("PEM \"{label}\" block is not closed")))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| CredentialsError::Invalid(format!("PEM \"{label}\" block is not base64: {e}")))
}

/// URL-safe base64 without padding, as JWT wants it.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.claims`, both base64url JSON: the input of the signature.
fn signing_input(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An ES256 signer (APNs `.p8` keys: PKCS#8, EC P-256).
pub struct Es256Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256Signer(..)")
    }
}

impl Es256Signer {
    /// Parses a PKCS#8 PEM P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, CredentialsError> {
        let der = pem_to_der(pem, "PRIVATE KEY")?;
        let rng = SystemRandom::new();
        let key = match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng) {
            Ok(key) => key,
            // ring insists on the optional public key inside the PKCS#8
            // structure; some tools leave it out, so derive it.
            Err(_) => {
                use p256::pkcs8::DecodePrivateKey as _;
                let secret = p256::SecretKey::from_pkcs8_der(&der).map_err(|e| {
                    CredentialsError::Invalid(format!("not a PKCS#8 EC P-256 private key: {e}"))
                })?;
                use p256::elliptic_curve::sec1::ToEncodedPoint as _;
                let public = secret.public_key().to_encoded_point(false);
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &secret.to_bytes(),
                    public.as_bytes(),
                    &rng,
                )
                .map_err(|e| {
                    CredentialsError::Invalid(format!("not a usable EC P-256 private key: {e}"))
                })?
            }
        };
        Ok(Es256Signer { key, rng })
    }

    /// Signs `header.claims` and returns the compact JWT.
    pub fn sign(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, String> {
        let input = signing_input(header, claims);
        // FIXED gives r || s (64 bytes), the JOSE form; ASN.1 DER would be wrong.
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|e| format!("ES256 signing failed: {e}"))?;
        Ok(format!("{input}.{}", b64url(sig.as_ref())))
    }
}

/// An RS256 signer (Google service-account keys: PKCS#8 RSA).
pub struct Rs256Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Rs256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rs256Signer(..)")
    }
}

impl Rs256Signer {
    /// Parses a PKCS#8 PEM RSA key (2048 to 4096 bits).
    pub fn from_pem(pem: &str) -> Result<Self, CredentialsError> {
        let der = pem_to_der(pem, "PRIVATE KEY")?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| CredentialsError::Invalid(format!("not a PKCS#8 RSA private key: {e}")))?;
        Ok(Rs256Signer {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// Signs `header.claims` and returns the compact JWT.
    pub fn sign(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, String> {
        let input = signing_input(header, claims);
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig)
            .map_err(|e| format!("RS256 signing failed: {e}"))?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_errors_name_the_label_found() {
        let err = pem_to_der(
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
            "PRIVATE KEY",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("found \"EC PRIVATE KEY\""),
            "{err}"
        );
        assert!(pem_to_der("garbage", "PRIVATE KEY").is_err());
        assert!(pem_to_der(
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
            "PRIVATE KEY"
        )
        .is_err());
    }

    #[test]
    fn es256_round_trip() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let signer = Es256Signer::from_pem(&pem).unwrap();
        let jwt = signer
            .sign(
                &serde_json::json!({"alg":"ES256","kid":"K"}),
                &serde_json::json!({"iss":"T","iat":1}),
            )
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64);
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        use ring::signature::KeyPair as _;
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        );
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }

    /// An openssl-made PKCS#8 P-256 key as Apple's `.p8` files are, once
    /// with and once without the optional public key: both must load.
    #[test]
    fn openssl_p8_keys_load() {
        let with_public = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6okQZ5C4Km6XpaLB
vb0K99t9EN8L2NoCnGCmf3CtwN+hRANCAARA2qFzEU0TBz9Irjb3Zxg4CrjIsHLx
/65psp+joyNAc1C/SYTUSQ3RiBCJrN4X46sL4kL/Q3QdTGIg6vUlHoKt
-----END PRIVATE KEY-----
";
        let without_public = "-----BEGIN PRIVATE KEY-----
MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCDqiRBnkLgqbpelosG9
vQr3230Q3wvY2gKcYKZ/cK3A3w==
-----END PRIVATE KEY-----
";
        Es256Signer::from_pem(with_public).unwrap();
        Es256Signer::from_pem(without_public).unwrap();
    }

    #[test]
    fn rsa_key_rejected_as_ec_and_vice_versa() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let err = Rs256Signer::from_pem(&pem).unwrap_err();
        assert!(err.to_string().contains("RSA"), "{err}");
    }
}
