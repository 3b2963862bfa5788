//! Correctness under load, judged after the run from what the sockets received, what the read models hold
//! and what sync answers:
//!
//! - every message the read model holds in a user's channel, inside a chain's promised window, reached that
//!   chain exactly once, and each channel's messages arrived in log order;
//! - nothing was delivered that the read model does not hold (or in a channel the user is not in);
//! - every acknowledged send is in its channel's history, and no `message_id` appears twice;
//! - sync from a token taken before the run, folded, equals history (same messages, order and text).

use std::collections::{BTreeMap, HashMap, HashSet};

use chatsdk_client::views::{LoggedEvent, MessageView};
use serde::Serialize;

use super::session::{Chain, Offsets};

/// A message as the read model holds it.
#[derive(Debug, Clone)]
pub struct Held {
    pub channel: usize,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Default, Serialize)]
pub struct Verdict {
    pub messages_in_history: usize,
    pub acknowledged_sends: usize,
    pub chains: usize,
    pub chains_resumed: usize,
    /// Chains that resumed on another node (failover), not only on the same one.
    pub chains_moved: usize,
    /// Users who were connected but whose socket never delivered a `connected` frame.
    pub users_without_stream: usize,
    pub chains_resynced: usize,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    pub stalled_chains: usize,
    pub lost_sends: usize,
    pub duplicate_message_ids: usize,
    pub sync_users_checked: usize,
    pub sync_mismatches: usize,
    /// The first violations, for the report.
    pub examples: Vec<String>,
}

impl Verdict {
    pub fn violations(&self) -> u64 {
        self.missing
            + self.duplicates
            + self.out_of_order
            + self.unexpected
            + self.stalled_chains as u64
            + self.lost_sends as u64
            + self.duplicate_message_ids as u64
            + self.sync_mismatches as u64
            + self.users_without_stream as u64
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 20 {
            self.examples.push(text);
        }
    }
}

/// What the run left behind, to be judged.
#[derive(Debug)]
pub struct Evidence<'a> {
    /// Per channel: its history, oldest first.
    pub histories: &'a BTreeMap<usize, Vec<MessageView>>,
    /// Per user: channel indexes.
    pub memberships: &'a [Vec<usize>],
    /// (channel, message id) of every acknowledged send.
    pub acknowledged: &'a [(usize, uuid::Uuid)],
    pub chains: &'a [Chain],
    /// Per checked user: the sync events after a token taken before the run.
    pub syncs: &'a [(usize, Vec<LoggedEvent>)],
    /// Channel ids, to read sync events.
    pub channel_ids: &'a [String],
    /// Users `[0, connected_users)` were connected at some point; each must have a chain.
    pub connected_users: usize,
}

pub fn judge(evidence: &Evidence<'_>) -> Verdict {
    let mut verdict = Verdict::default();
    let mut held: HashMap<u128, Held> = HashMap::new();
    for (channel, messages) in evidence.histories {
        for message in messages {
            let id = message.message_id.as_uuid().as_u128();
            let entry =
                Held { channel: *channel, partition: message.position.partition, offset: message.position.offset };
            if held.insert(id, entry).is_some() {
                verdict.duplicate_message_ids += 1;
                verdict.example(format!("message {} appears twice in history", message.message_id));
            }
        }
    }
    verdict.messages_in_history = held.len();
    verdict.acknowledged_sends = evidence.acknowledged.len();
    for (channel, message) in evidence.acknowledged {
        if held.get(&message.as_u128()).is_none_or(|held| held.channel != *channel) {
            verdict.lost_sends += 1;
            verdict.example(format!("acknowledged message {message} is not in its channel's history"));
        }
    }
    // Per channel, its held messages by offset: the expected window of a chain is a range of them.
    let mut by_channel: HashMap<usize, Vec<(i32, i64, u128)>> = HashMap::new();
    for (id, message) in &held {
        by_channel.entry(message.channel).or_default().push((message.partition, message.offset, *id));
    }
    for messages in by_channel.values_mut() {
        messages.sort_unstable();
    }
    verdict.chains = evidence.chains.len();
    let streamed: HashSet<usize> = evidence.chains.iter().map(|chain| chain.user).collect();
    for user in (0..evidence.connected_users).filter(|user| !streamed.contains(user)) {
        verdict.users_without_stream += 1;
        verdict.example(format!("user {user} never got a live socket"));
    }
    for chain in evidence.chains {
        verdict.chains_resumed += usize::from(chain.resumes > 0);
        verdict.chains_moved += usize::from(chain.moved > 0);
        verdict.chains_resynced += usize::from(chain.resynced);
        if chain.stalled {
            verdict.stalled_chains += 1;
            verdict.example(format!("user {}'s stream did not reach the log's end while draining", chain.user));
        }
        judge_chain(&mut verdict, chain, &evidence.memberships[chain.user], &held, &by_channel);
    }
    // Channel index by id, built once for every checked user's sync.
    let index_of: HashMap<&str, usize> =
        evidence.channel_ids.iter().enumerate().map(|(index, id)| (id.as_str(), index)).collect();
    for (user, events) in evidence.syncs {
        verdict.sync_users_checked += 1;
        judge_sync(&mut verdict, *user, events, &index_of, evidence);
    }
    verdict
}

fn within(window_start: &Offsets, window_end: &Offsets, partition: i32, offset: i64) -> bool {
    window_start.get(&partition).copied().unwrap_or(0) <= offset
        && offset < window_end.get(&partition).copied().unwrap_or(0)
}

fn judge_chain(
    verdict: &mut Verdict,
    chain: &Chain,
    channels: &[usize],
    held: &HashMap<u128, Held>,
    by_channel: &HashMap<usize, Vec<(i32, i64, u128)>>,
) {
    let mine: HashSet<usize> = channels.iter().copied().collect();
    let mut counts: HashMap<u128, u32> = HashMap::new();
    let mut last_offset: HashMap<usize, i64> = HashMap::new();
    for receipt in &chain.receipts {
        verdict.deliveries_received += 1;
        let count = counts.entry(receipt.message).or_default();
        *count += 1;
        if *count == 2 {
            verdict.duplicates += 1;
            verdict.example(format!("user {} received message {:x} twice", chain.user, receipt.message));
        }
        if !within(&chain.start, &chain.end, receipt.partition, receipt.offset) {
            verdict.unexpected += 1;
            verdict.example(format!(
                "user {} received offset {} of partition {}, outside the window its tokens promise",
                chain.user, receipt.offset, receipt.partition
            ));
            continue;
        }
        match held.get(&receipt.message) {
            Some(message) if mine.contains(&message.channel) && message.partition == receipt.partition => {
                let last = last_offset.entry(message.channel).or_insert(-1);
                if receipt.offset <= *last {
                    verdict.out_of_order += 1;
                    verdict.example(format!(
                        "user {} received offset {} of channel {} after offset {}",
                        chain.user, receipt.offset, message.channel, last
                    ));
                }
                *last = (*last).max(receipt.offset);
            }
            Some(_) => {
                verdict.unexpected += 1;
                verdict.example(format!(
                    "user {} received message {:x} of a channel it is not in",
                    chain.user, receipt.message
                ));
            }
            None => {
                verdict.unexpected += 1;
                verdict.example(format!(
                    "user {} received message {:x}, which history does not hold",
                    chain.user, receipt.message
                ));
            }
        }
    }
    for channel in channels {
        for (partition, offset, id) in by_channel.get(channel).map_or(&[][..], Vec::as_slice) {
            if within(&chain.start, &chain.end, *partition, *offset) {
                verdict.deliveries_expected += 1;
                if !counts.contains_key(id) {
                    verdict.missing += 1;
                    verdict.example(format!(
                        "user {} never received message {id:x} (channel {channel}, offset {offset}) inside its window",
                        chain.user
                    ));
                }
            }
        }
    }
}

/// Folds sync's `message.sent`/`message.edited` events per channel and compares with history.
fn judge_sync(
    verdict: &mut Verdict,
    user: usize,
    events: &[LoggedEvent],
    index_of: &HashMap<&str, usize>,
    evidence: &Evidence<'_>,
) {
    // Per channel: message ids in first-seen order, and each message's latest text.
    let mut order: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut texts: HashMap<String, String> = HashMap::new();
    let mine: HashSet<usize> = evidence.memberships[user].iter().copied().collect();
    for logged in events {
        let event = &logged.event;
        let known = event["channel_id"].as_str().and_then(|id| index_of.get(id));
        let Some(channel) = known.filter(|channel| mine.contains(channel)) else {
            // Sync must only answer the caller's channels.
            if event["type"] == "message.sent" {
                verdict.sync_mismatches += 1;
                verdict.example(format!("user {user}: sync returned a message of channel {}", event["channel_id"]));
            }
            continue;
        };
        let (Some(kind), Some(id)) = (event["type"].as_str(), event["payload"]["message_id"].as_str()) else {
            continue;
        };
        let text = event["payload"]["text"].as_str().unwrap_or_default().to_owned();
        match kind {
            "message.sent" if event["payload"]["parent_id"].is_null() && !texts.contains_key(id) => {
                order.entry(*channel).or_default().push(id.to_owned());
                texts.insert(id.to_owned(), text);
            }
            "message.edited" => {
                if let Some(current) = texts.get_mut(id) {
                    *current = text;
                }
            }
            _ => {}
        }
    }
    for channel in &evidence.memberships[user] {
        let history = evidence.histories.get(channel).map_or(&[][..], Vec::as_slice);
        let synced = order.get(channel).map_or(&[][..], Vec::as_slice);
        let same_ids = history.len() == synced.len()
            && history.iter().zip(synced).all(|(message, id)| message.message_id.to_string() == *id);
        let same_texts =
            history.iter().all(|message| texts.get(&message.message_id.to_string()) == Some(&message.text));
        if !(same_ids && same_texts) {
            verdict.sync_mismatches += 1;
            verdict.example(format!(
                "user {user}: sync of channel {channel} ({} messages) differs from its history ({} messages){}",
                synced.len(),
                history.len(),
                if same_ids { " in text" } else { "" }
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::session::Receipt;

    fn message(channel: &str, id: uuid::Uuid, offset: i64, text: &str) -> MessageView {
        serde_json::from_value(serde_json::json!({
            "message_id": id, "channel_id": channel, "author_id": "u0", "text": text, "mentions": [],
            "attachments": [], "custom": null, "parent_id": null, "reply_count": 0, "last_reply_at": null,
            "client_msg_id": null, "position": {"partition": 0, "offset": offset},
            "created_at": "2026-11-29T00:00:00Z", "edited_at": null, "deleted_at": null, "pinned": false,
            "reactions": [], "own_reactions": []
        }))
        .unwrap_or_else(|error| panic!("{error}"))
    }

    fn receipt(id: uuid::Uuid, offset: i64) -> Receipt {
        Receipt { partition: 0, offset, message: id.as_u128() }
    }

    fn chain(receipts: Vec<Receipt>, start: i64, end: i64) -> Chain {
        Chain {
            user: 0,
            start: Offsets::from([(0, start)]),
            end: Offsets::from([(0, end)]),
            receipts,
            resumes: 0,
            moved: 0,
            resynced: false,
            stalled: false,
        }
    }

    fn sent(id: uuid::Uuid, offset: i64, text: &str) -> LoggedEvent {
        serde_json::from_value(serde_json::json!({
            "position": {"partition": 0, "offset": offset},
            "event": {"type": "message.sent", "channel_id": "c", "payload": {"message_id": id, "text": text}}
        }))
        .unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn a_complete_ordered_stream_passes_and_each_fault_is_caught() {
        let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::new_v4()).collect();
        let histories = BTreeMap::from([(
            0,
            ids.iter().enumerate().map(|(i, id)| message("c", *id, 10 + i as i64, "t")).collect(),
        )]);
        let memberships = vec![vec![0]];
        let acknowledged: Vec<(usize, uuid::Uuid)> = ids.iter().map(|id| (0, *id)).collect();
        let channel_ids = vec!["c".to_owned()];
        let syncs = vec![(0, ids.iter().enumerate().map(|(i, id)| sent(*id, 10 + i as i64, "t")).collect())];
        let judge_with =
            |chains: &[Chain], syncs: &[(usize, Vec<LoggedEvent>)], acknowledged: &[(usize, uuid::Uuid)]| {
                judge(&Evidence {
                    histories: &histories,
                    memberships: &memberships,
                    acknowledged,
                    chains,
                    syncs,
                    channel_ids: &channel_ids,
                    connected_users: 1,
                })
            };
        let all: Vec<Receipt> = ids.iter().enumerate().map(|(i, id)| receipt(*id, 10 + i as i64)).collect();
        let good = judge_with(&[chain(all.clone(), 0, 14)], &syncs, &acknowledged);
        assert_eq!(good.violations(), 0, "{good:?}");
        assert_eq!((good.deliveries_expected, good.deliveries_received), (4, 4));

        // A window that starts after the first two: only the last two are owed.
        let late = judge_with(&[chain(all[2..].to_vec(), 12, 14)], &syncs, &acknowledged);
        assert_eq!(late.violations(), 0, "{late:?}");

        // A connected user without any stream.
        assert_eq!(judge_with(&[], &syncs, &acknowledged).users_without_stream, 1);
        let missing = judge_with(&[chain(all[..3].to_vec(), 0, 14)], &syncs, &acknowledged);
        assert_eq!(missing.missing, 1);
        let mut twice = all.clone();
        twice.push(all[1]);
        assert_eq!(judge_with(&[chain(twice, 0, 14)], &syncs, &acknowledged).duplicates, 1);
        let mut swapped = all.clone();
        swapped.swap(1, 2);
        assert_eq!(judge_with(&[chain(swapped, 0, 14)], &syncs, &acknowledged).out_of_order, 1);
        let mut phantom = all.clone();
        phantom.push(receipt(uuid::Uuid::new_v4(), 13));
        assert_eq!(judge_with(&[chain(phantom, 0, 14)], &syncs, &acknowledged).unexpected, 1);
        let lost = [acknowledged.clone(), vec![(0, uuid::Uuid::new_v4())]].concat();
        assert_eq!(judge_with(&[chain(all.clone(), 0, 14)], &syncs, &lost).lost_sends, 1);
        let short_sync = vec![(0, syncs[0].1[..3].to_vec())];
        assert_eq!(judge_with(&[chain(all.clone(), 0, 14)], &short_sync, &acknowledged).sync_mismatches, 1);
        // Delivered before the window began (a replay the token did not ask for).
        assert_eq!(judge_with(&[chain(all.clone(), 11, 14)], &syncs, &acknowledged).unexpected, 1);
        let mut leaked = syncs[0].1.clone();
        leaked.push(serde_json::from_value(serde_json::json!({
            "position": {"partition": 0, "offset": 30},
            "event": {"type": "message.sent", "channel_id": "other", "payload": {"message_id": uuid::Uuid::new_v4(), "text": "x"}}
        })).unwrap_or_else(|error| panic!("{error}")));
        assert_eq!(judge_with(&[chain(all.clone(), 0, 14)], &[(0, leaked)], &acknowledged).sync_mismatches, 1);
        let mut edited = syncs[0].1.clone();
        edited.push(
            serde_json::from_value(serde_json::json!({
                "position": {"partition": 0, "offset": 20},
                "event": {"type": "message.edited", "channel_id": "c", "payload": {"message_id": ids[0], "text": "new"}}
            }))
            .unwrap_or_else(|error| panic!("{error}")),
        );
        assert_eq!(judge_with(&[chain(all, 0, 14)], &[(0, edited)], &acknowledged).sync_mismatches, 1);
    }
}
