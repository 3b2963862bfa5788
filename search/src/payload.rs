//! The commit payload: what the index contains, stored atomically with it by every Tantivy commit.
//!
//! The offsets are the search projector's checkpoint (exactly once: a crash loses uncommitted documents and
//! the offsets that produced them together). The analyzers record which field each app's messages went to,
//! so readers query the field the writer used even if configurations differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analyzer::Analyzer;
use crate::schema::SCHEMA_VERSION;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub schema_version: u32,
    /// The topic the offsets belong to.
    pub topic: String,
    /// The next offset to apply, per partition.
    pub offsets: BTreeMap<i32, i64>,
    /// The analyzer of every app not listed in `analyzers`.
    pub default_analyzer: Analyzer,
    pub analyzers: BTreeMap<String, Analyzer>,
}

impl Payload {
    pub fn new(topic: &str, default_analyzer: Analyzer) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            topic: topic.to_owned(),
            offsets: BTreeMap::new(),
            default_analyzer,
            analyzers: BTreeMap::new(),
        }
    }

    /// The payload of the last commit; `None` for an index never committed by a projector.
    pub fn of_index(index: &tantivy::Index) -> anyhow::Result<Option<Self>> {
        let metas = index.load_metas()?;
        let Some(text) = metas.payload else { return Ok(None) };
        let payload: Self = serde_json::from_str(&text)
            .map_err(|error| anyhow::anyhow!("the index's commit payload is unreadable: {error}"))?;
        anyhow::ensure!(
            payload.schema_version == SCHEMA_VERSION,
            "the index has schema version {}, this build writes {SCHEMA_VERSION}: run `projector rebuild-search`",
            payload.schema_version
        );
        Ok(Some(payload))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn analyzer_for(&self, app: &str) -> Analyzer {
        self.analyzers.get(app).copied().unwrap_or(self.default_analyzer)
    }

    /// Whether the event at `offset` of `partition` is in the index (applied or skipped).
    pub fn contains(&self, partition: i32, offset: i64) -> bool {
        self.offsets.get(&partition).is_some_and(|next| *next > offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_with_integer_partitions() {
        let mut payload = Payload::new("events", Analyzer::Default);
        payload.offsets.insert(3, 17);
        payload.analyzers.insert("tokyo-app".to_owned(), Analyzer::Cjk);
        let parsed: Payload =
            serde_json::from_str(&payload.to_json()).ok().unwrap_or_else(|| Payload::new("", Analyzer::English));
        assert_eq!(parsed, payload);
        assert!(parsed.contains(3, 16));
        assert!(!parsed.contains(3, 17));
        assert!(!parsed.contains(0, 0));
        assert_eq!(parsed.analyzer_for("tokyo-app"), Analyzer::Cjk);
        assert_eq!(parsed.analyzer_for("other"), Analyzer::Default);
    }
}
