//! Ids derived from their inputs, so every node computes the same one without coordination.

use chatsdk_schemas::ids::{AppId, ChannelId, MessageId, UserId};
use sha2::{Digest, Sha256};

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

/// The message id of a send with a `client_msg_id`: a UUIDv8 from (app, channel, author, client_msg_id), so a
/// retry from any node names the same message, and two users (or channels) reusing a key never collide.
pub fn message_id(app: &AppId, channel: &ChannelId, author: &UserId, client_msg_id: &str) -> MessageId {
    let digest = digest(&["message", app.as_str(), channel.as_str(), author.as_str(), client_msg_id]);
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    MessageId::from_uuid(uuid::Uuid::new_v8(bytes))
}

/// The one DM channel of two users: `dm-` and 32 hex digits of a digest of the ordered pair.
pub fn dm_channel_id(app: &AppId, first: &UserId, second: &UserId) -> ChannelId {
    let (low, high) = if first <= second { (first, second) } else { (second, first) };
    let digest = digest(&["dm", app.as_str(), low.as_str(), high.as_str()]);
    let hex: String = digest[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    ChannelId::try_from(format!("dm-{hex}")).unwrap_or_else(|_| unreachable!("dm- and hex digits form a valid id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<T: std::str::FromStr>(value: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        value.parse().unwrap_or_else(|error| panic!("{error:?}"))
    }

    #[test]
    fn the_same_send_gets_the_same_id_and_others_do_not() {
        let (app, channel, alice) = (id::<AppId>("acme"), id::<ChannelId>("general"), id::<UserId>("alice"));
        let first = message_id(&app, &channel, &alice, "k1");
        assert_eq!(first, message_id(&app, &channel, &alice, "k1"));
        assert_eq!(first.as_uuid().get_version_num(), 8);
        assert_ne!(first, message_id(&app, &channel, &alice, "k2"));
        assert_ne!(first, message_id(&app, &channel, &id("bob"), "k1"));
        assert_ne!(first, message_id(&app, &id("random"), &alice, "k1"));
        assert_ne!(first, message_id(&id("other"), &channel, &alice, "k1"));
    }

    #[test]
    fn a_dm_id_ignores_the_order_of_its_users() {
        let app = id::<AppId>("acme");
        let (alice, bob) = (id::<UserId>("alice"), id::<UserId>("bob"));
        let channel = dm_channel_id(&app, &alice, &bob);
        assert_eq!(channel, dm_channel_id(&app, &bob, &alice));
        assert_ne!(channel, dm_channel_id(&app, &alice, &id("carol")));
        assert_ne!(channel, dm_channel_id(&id("other"), &alice, &bob));
        assert!(channel.as_str().starts_with("dm-") && channel.as_str().len() == 35);
    }
}
