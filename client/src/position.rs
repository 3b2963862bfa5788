//! Positions in the event log and the opaque tokens that carry them (DESIGN.md, "Ordering, positions, sync").
//!
//! A channel lives in one partition, so `(partition, offset)` orders its events. A **position token** names
//! the latest offset seen per partition; a command or read given it as `min_position` waits (bounded) until
//! the projector has applied every listed offset. Tokens are versioned (`p1.`) so their encoding can change
//! without breaking clients that only pass them back.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Where one event sits in `chatsdk.channel-events.v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub partition: i32,
    pub offset: i64,
}

impl Position {
    /// The opaque token of this one position.
    pub fn token(self) -> String {
        let mut session = SessionPosition::default();
        session.observe(self);
        session.token()
    }
}

const PREFIX: &str = "p1.";
/// More partitions than any topic of ours will have; bounds the work a hostile token can cause.
pub const MAX_PARTITIONS: usize = 1024;
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a string is not a position token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position token: {0}")]
pub struct InvalidPosition(&'static str);

/// The latest offset seen in each partition: what a session has observed of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPosition {
    offsets: BTreeMap<i32, i64>,
}

impl SessionPosition {
    /// Remembers `position` if it is newer than what was seen in its partition.
    pub fn observe(&mut self, position: Position) {
        let offset = self.offsets.entry(position.partition).or_insert(position.offset);
        *offset = (*offset).max(position.offset);
    }

    pub fn merge(&mut self, other: &SessionPosition) {
        for position in other.positions() {
            self.observe(position);
        }
    }

    /// Only what it requires of `partition` (a channel's state depends on its partition alone).
    pub fn only(&self, partition: i32) -> SessionPosition {
        let offsets = self.offsets.get(&partition).map(|offset| (partition, *offset)).into_iter().collect();
        SessionPosition { offsets }
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        self.offsets.iter().map(|(&partition, &offset)| Position { partition, offset })
    }

    pub fn token(&self) -> String {
        let body: Vec<String> =
            self.offsets.iter().map(|(partition, offset)| format!("{partition}:{offset}")).collect();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body.join(",")))
    }
}

impl fmt::Display for SessionPosition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.token())
    }
}

impl FromStr for SessionPosition {
    type Err = InvalidPosition;

    fn from_str(token: &str) -> Result<Self, InvalidPosition> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidPosition("too long"));
        }
        let encoded = token.strip_prefix(PREFIX).ok_or(InvalidPosition("unknown version"))?;
        let decoded = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| InvalidPosition("not base64url"))?;
        let body = std::str::from_utf8(&decoded).map_err(|_| InvalidPosition("not text"))?;
        let mut session = SessionPosition::default();
        if body.is_empty() {
            return Ok(session);
        }
        for entry in body.split(',') {
            let (partition, offset) = entry.split_once(':').ok_or(InvalidPosition("malformed entry"))?;
            let partition: i32 = partition.parse().map_err(|_| InvalidPosition("bad partition"))?;
            let offset: i64 = offset.parse().map_err(|_| InvalidPosition("bad offset"))?;
            if partition < 0 || offset < 0 {
                return Err(InvalidPosition("negative partition or offset"));
            }
            if session.offsets.insert(partition, offset).is_some() {
                return Err(InvalidPosition("a partition is listed twice"));
            }
            if session.offsets.len() > MAX_PARTITIONS {
                return Err(InvalidPosition("too many partitions"));
            }
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_keep_the_latest_offset_per_partition() {
        let mut session = SessionPosition::default();
        session.observe(Position { partition: 3, offset: 10 });
        session.observe(Position { partition: 3, offset: 7 });
        session.observe(Position { partition: 0, offset: 2 });
        let parsed: SessionPosition = session.token().parse().unwrap_or_default();
        assert_eq!(
            parsed.positions().collect::<Vec<_>>(),
            vec![Position { partition: 0, offset: 2 }, Position { partition: 3, offset: 10 }]
        );
        let single: SessionPosition = Position { partition: 5, offset: 9 }.token().parse().unwrap_or_default();
        assert_eq!(single.positions().collect::<Vec<_>>(), vec![Position { partition: 5, offset: 9 }]);
    }

    #[test]
    fn a_session_narrows_to_one_partition() {
        let mut session = SessionPosition::default();
        session.observe(Position { partition: 1, offset: 5 });
        session.observe(Position { partition: 2, offset: 9 });
        assert_eq!(session.only(2).positions().collect::<Vec<_>>(), vec![Position { partition: 2, offset: 9 }]);
        assert!(session.only(7).is_empty());
    }

    #[test]
    fn garbage_and_foreign_tokens_are_rejected() {
        let encode = |body: &str| format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(body));
        for token in [
            String::new(),
            "p2.MzoxMA".to_owned(),
            "p1.***".to_owned(),
            encode("3"),
            encode("x:1"),
            encode("-1:4"),
            encode("1:-4"),
            encode("1:4,1:5"),
            "p1.".to_owned() + &"A".repeat(MAX_TOKEN_LEN),
        ] {
            assert!(token.parse::<SessionPosition>().is_err(), "{token:?} was accepted");
        }
        let too_many: Vec<String> = (0..=MAX_PARTITIONS).map(|partition| format!("{partition}:1")).collect();
        assert!(encode(&too_many.join(",")).parse::<SessionPosition>().is_err());
    }
}
