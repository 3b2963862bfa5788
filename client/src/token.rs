//! User tokens: JWTs signed with HS256 and the app's secret (DESIGN.md, "Tenancy and auth").
//!
//! Claims: `sub` (the user id, required), `exp` (seconds since the epoch, required), optional `nbf`, `iat`,
//! and `scope` (space-separated, e.g. `"chat:write upload:write"`). A token without `scope` carries every user
//! right; one with `scope` only those listed. Only `alg: HS256` is accepted (no `none`, no algorithm chosen
//! by the token).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatsdk_schemas::ids::UserId;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The longest token accepted; bounds the work an unauthenticated request can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Claims {
    /// A token for `user` valid for `ttl_secs` from `now` (seconds since the epoch).
    pub fn new(user: &UserId, now: i64, ttl_secs: i64) -> Self {
        Self { sub: user.to_string(), exp: now + ttl_secs, nbf: None, iat: Some(now), scope: None }
    }

    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: UserId,
    /// `None`: every user right; `Some`: only these.
    pub scopes: Option<Vec<String>>,
}

impl Verified {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.as_ref().is_none_or(|scopes| scopes.iter().any(|granted| granted == scope))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("only HS256 tokens are accepted")]
    Algorithm,
    #[error("the token's signature does not match the app's secret")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's sub is not a valid user id")]
    Subject,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// Signs `claims` with `secret`.
pub fn mint(secret: &str, claims: &Claims) -> String {
    let header = Header { alg: "HS256".to_owned(), typ: Some("JWT".to_owned()) };
    // Both are plain structs of strings and integers: serializing cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let signature = mac(secret).chain_update(signing_input.as_bytes()).finalize().into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Checks the signature (in constant time), the algorithm, `exp` and `nbf` (with `skew_secs` of tolerance),
/// and the subject.
pub fn verify(secret: &str, token: &str, now: i64, skew_secs: i64) -> Result<Verified, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = decode_json(header)?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..header_and_payload_len(token)];
    mac(secret).chain_update(signing_input.as_bytes()).verify_slice(&signature).map_err(|_| TokenError::Signature)?;
    let claims: Claims = decode_json(payload)?;
    if claims.exp.saturating_add(skew_secs) <= now {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf.saturating_sub(skew_secs) > now) {
        return Err(TokenError::NotYetValid);
    }
    let user_id = UserId::try_from(claims.sub).map_err(|_| TokenError::Subject)?;
    let scopes = claims.scope.map(|scope| scope.split_whitespace().map(str::to_owned).collect());
    Ok(Verified { user_id, scopes })
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length.
    <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!("HMAC accepts any key"))
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "an-app-secret";
    const NOW: i64 = 1_800_000_000;

    fn alice() -> UserId {
        "alice".parse().unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn a_minted_token_verifies_with_its_subject_and_scopes() {
        let token = mint(SECRET, &Claims::new(&alice(), NOW, 60).with_scope("chat:write  upload:write"));
        let verified = verify(SECRET, &token, NOW, 0);
        assert_eq!(
            verified,
            Ok(Verified { user_id: alice(), scopes: Some(vec!["chat:write".into(), "upload:write".into()]) })
        );
        let unscoped = verify(SECRET, &mint(SECRET, &Claims::new(&alice(), NOW, 60)), NOW, 0);
        assert!(unscoped.is_ok_and(|verified| verified.allows("chat:write") && verified.scopes.is_none()));
    }

    /// A token signed by another implementation verifies: the encoding is the standard one.
    #[test]
    fn verifies_a_token_signed_elsewhere() {
        // Header {"alg":"HS256","typ":"JWT"}, payload {"sub":"bob","exp":4102444800}, secret "s3cret",
        // signed with Python's hmac/hashlib.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJib2IiLCJleHAiOjQxMDI0NDQ4MDB9.\
                     efrxNZ0wPyVcigecLtMPSZEHUP5NtJ9KjT0ok8Wxh7g";
        let verified = verify("s3cret", token, NOW, 0);
        assert_eq!(verified.map(|verified| verified.user_id.to_string()), Ok("bob".to_owned()));
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let token = mint(SECRET, &Claims::new(&alice(), NOW, 60));
        assert_eq!(verify("another-secret", &token, NOW, 0), Err(TokenError::Signature));
        assert_eq!(verify(SECRET, &token, NOW + 61, 0), Err(TokenError::Expired));
        assert!(verify(SECRET, &token, NOW + 61, 30).is_ok(), "within the clock skew");

        // A payload swapped under the original signature.
        let (signing_input, signature) = token.rsplit_once('.').unwrap_or_default();
        let (header, _) = signing_input.split_once('.').unwrap_or_default();
        let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory","exp":4102444800}"#);
        assert_eq!(
            verify(SECRET, &format!("{header}.{forged_claims}.{signature}"), NOW, 0),
            Err(TokenError::Signature)
        );

        // alg none, and the classic "alg: none with an empty signature".
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"alice","exp":4102444800}"#);
        assert_eq!(verify(SECRET, &format!("{none_header}.{claims}."), NOW, 0), Err(TokenError::Algorithm));

        let not_yet = mint(SECRET, &Claims { nbf: Some(NOW + 120), ..Claims::new(&alice(), NOW, 600) });
        assert_eq!(verify(SECRET, &not_yet, NOW, 30), Err(TokenError::NotYetValid));

        let bad_subject = mint(SECRET, &Claims { sub: "no spaces allowed".into(), ..Claims::new(&alice(), NOW, 60) });
        assert_eq!(verify(SECRET, &bad_subject, NOW, 0), Err(TokenError::Subject));

        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(verify(SECRET, garbage, NOW, 0), Err(TokenError::Malformed), "{garbage:?}");
        }
    }
}
