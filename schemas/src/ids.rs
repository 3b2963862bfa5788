//! Identifiers, parsed at the edge: a value of these types is valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// The longest app, channel or user id.
pub const MAX_ID_LEN: usize = 128;

/// The rule behind the schemas' `id` definition: 1 to 128 of `A-Z a-z 0-9 _ . @ -`. No `:`, so the Kafka key
/// `{app_id}:{channel_id}` splits unambiguously.
fn check_id(kind: &'static str, value: &str) -> Result<(), InvalidId> {
    if value.is_empty() {
        return Err(InvalidId { kind, reason: "empty" });
    }
    if value.len() > MAX_ID_LEN {
        return Err(InvalidId { kind, reason: "longer than 128 characters" });
    }
    if !value.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'@' | b'-')) {
        return Err(InvalidId { kind, reason: "only A-Z a-z 0-9 _ . @ - are allowed" });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                check_id($kind, &value)?;
                Ok(Self(value))
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A tenant: every row, event and query is scoped by it.
    AppId,
    "app id"
);
string_id!(
    /// A channel within an app.
    ChannelId,
    "channel id"
);
string_id!(
    /// A user of an app, as the customer's backend names them (the JWT `sub`).
    UserId,
    "user id"
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Lowercase hyphenated, as the schemas require.
                fmt::Display::fmt(&self.0.hyphenated(), formatter)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(value: &str) -> Result<Self, uuid::Error> {
                Uuid::parse_str(value).map(Self)
            }
        }
    };
}

uuid_id!(
    /// An event: UUIDv7, so ids sort by creation time.
    EventId
);
uuid_id!(
    /// A message: derived from the client's `client_msg_id` when one is given (so a retried send keeps its
    /// id), random otherwise.
    MessageId
);
uuid_id!(
    /// An upload (an attachment's object in S3).
    UploadId
);

impl EventId {
    /// A new time-ordered id.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet() {
        assert!("user_42.ops@acme-co".parse::<UserId>().is_ok());
        assert!("x".repeat(MAX_ID_LEN).parse::<ChannelId>().is_ok());
    }

    #[test]
    fn ids_reject_empty_long_and_foreign_characters() {
        assert_eq!("".parse::<AppId>().err().map(|error| error.reason), Some("empty"));
        assert!("x".repeat(MAX_ID_LEN + 1).parse::<ChannelId>().is_err());
        // ':' would make the Kafka key `{app}:{channel}` ambiguous.
        assert!("a:b".parse::<ChannelId>().is_err());
        assert!("héllo".parse::<UserId>().is_err());
        assert!("a b".parse::<UserId>().is_err());
    }

    #[test]
    fn invalid_ids_are_rejected_when_deserializing() {
        assert!(serde_json::from_str::<UserId>("\"a:b\"").is_err());
        assert_eq!(serde_json::from_str::<UserId>("\"alice\"").ok().map(String::from), Some("alice".to_owned()));
    }
}
