//! A scenario: the seed's four, scaled to one machine, or one of them changed by a TOML file or flags.
//!
//! The seed (docs/benchmarks.md quotes it) runs 100,000 connected users for an hour; one 2-core machine
//! that also runs Kafka, PostgreSQL and the services holds about 10,000 sockets comfortably and each run
//! must end within 5 minutes, so the presets keep the seed's *shape* (share of active users, messages per
//! active user per minute, the 10× ramp, 10 MB uploads) at 10,000 users and 2½–3 minutes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::world::Shape;
use crate::stack::Topology;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Connected users at the peak (spike: the top of the ramp).
    pub users: usize,
    /// The share of connected users who send, react, edit, mark read and type.
    pub active_share: f64,
    /// Messages per active user per minute.
    pub messages_per_minute: f64,
    /// Open loop at exactly this many messages per second (replaces users × share × per-minute).
    pub rate: Option<f64>,
    /// Connected users ramp from 10 % of `users` to all of them and back (the seed's traffic spike).
    pub spike: bool,
    /// The measured run.
    pub seconds: u64,
    /// Other actions (reactions, reads, typing, search, sync, edits) relative to the default mix; 0: sends only.
    pub other_actions: f64,
    pub group_size: usize,
    pub public_channels: usize,
    /// Members of each public channel (at most 500: one create request).
    pub public_members: usize,
    /// Upload storm: this many direct uploads, `upload_mb` each, `upload_concurrency` at a time.
    pub uploads: usize,
    pub upload_mb: u64,
    pub upload_concurrency: usize,
    pub partitions: i32,
    #[serde(with = "topology_text")]
    pub topology: Topology,
    /// Kill one process of each service mid-run (SIGKILL): command-api at 40 %, projector at 50 %, query-api
    /// at 60 % of the run. Needs two of each (three query nodes in the seed's topology).
    pub kill: bool,
    /// Users whose sync (from before the run) is compared with history afterwards.
    pub sync_checks: usize,
    /// Seconds per timeline window (the plots' resolution).
    pub window_secs: u64,
}

mod topology_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::stack::Topology;

    pub fn serialize<S: Serializer>(topology: &Topology, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(topology)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Topology, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self::steady()
    }
}

impl Scenario {
    /// Scenario 1: many connected users, 10 % of them sending one message a minute.
    pub fn steady() -> Self {
        Self {
            name: "steady".to_owned(),
            users: 10_000,
            active_share: 0.1,
            messages_per_minute: 1.0,
            rate: None,
            spike: false,
            seconds: 150,
            other_actions: 1.0,
            group_size: 8,
            public_channels: 4,
            public_members: 500,
            uploads: 0,
            upload_mb: 10,
            upload_concurrency: 200,
            partitions: 12,
            topology: Topology::SINGLE,
            kill: false,
            sync_checks: 200,
            window_secs: 5,
        }
    }

    /// Scenario 2: connected users ramp up 10× and back down.
    pub fn spike() -> Self {
        Self { name: "spike".to_owned(), spike: true, seconds: 180, ..Self::steady() }
    }

    /// Scenario 3: half the users active, five messages a minute each.
    pub fn heavy() -> Self {
        Self { name: "heavy".to_owned(), active_share: 0.5, messages_per_minute: 5.0, ..Self::steady() }
    }

    /// Scenario 4: concurrent direct uploads of 10 MB files during steady chat.
    pub fn upload_storm() -> Self {
        Self { name: "upload-storm".to_owned(), users: 2_000, uploads: 500, seconds: 120, ..Self::steady() }
    }

    /// A short steady run for the test suite: every check on, small and quick.
    pub fn smoke() -> Self {
        Self {
            name: "smoke".to_owned(),
            users: 60,
            active_share: 0.5,
            messages_per_minute: 40.0,
            seconds: 8,
            group_size: 6,
            public_channels: 1,
            public_members: 40,
            partitions: 4,
            sync_checks: 60,
            window_secs: 1,
            ..Self::steady()
        }
    }

    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "steady" => Some(Self::steady()),
            "spike" => Some(Self::spike()),
            "heavy" => Some(Self::heavy()),
            "upload-storm" => Some(Self::upload_storm()),
            "smoke" => Some(Self::smoke()),
            _ => None,
        }
    }

    pub fn shape(&self) -> Shape {
        Shape {
            users: self.users,
            active_share: self.active_share,
            group_size: self.group_size,
            public_channels: self.public_channels,
            public_members: self.public_members,
        }
    }

    /// Messages per second with `connected` users.
    pub fn message_rate(&self, connected: usize) -> f64 {
        self.rate.unwrap_or(connected as f64 * self.active_share * self.messages_per_minute / 60.0)
    }

    pub fn peak_rate(&self) -> f64 {
        self.message_rate(self.users)
    }

    /// Connected users at `progress` (0–1) through the run.
    pub fn connected_at(&self, progress: f64) -> usize {
        if !self.spike {
            return self.users;
        }
        // Base 15 %, ramp up 20 %, hold 30 %, ramp down 20 %, base 15 % of the run.
        let level = match progress {
            p if p < 0.15 => 0.0,
            p if p < 0.35 => (p - 0.15) / 0.2,
            p if p < 0.65 => 1.0,
            p if p < 0.85 => 1.0 - (p - 0.65) / 0.2,
            _ => 0.0,
        };
        ((0.1 + 0.9 * level) * self.users as f64).round() as usize
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = [self.users, self.seconds as usize, self.group_size, self.window_secs as usize];
        if positive.contains(&0) || self.users < 2 {
            return Err("users (at least 2), seconds, group size and window must be positive".to_owned());
        }
        if !(0.0..=1.0).contains(&self.active_share) || self.active_share == 0.0 {
            return Err("active share must be in (0, 1]".to_owned());
        }
        if self.rate.is_some_and(|rate| rate <= 0.0) || (self.rate.is_none() && self.messages_per_minute <= 0.0) {
            return Err("the message rate must be positive".to_owned());
        }
        if self.public_members > 500 {
            return Err("public channels have at most 500 members (one create request)".to_owned());
        }
        if self.kill && (self.topology.command < 2 || self.topology.projector < 2 || self.topology.query < 2) {
            return Err("kill needs at least two processes of each service (e.g. --topology 2-2-3)".to_owned());
        }
        if self.topology.query == 0 {
            return Err("scenarios need a query node (sockets, reads)".to_owned());
        }
        if self.uploads > 0 && (self.upload_mb == 0 || self.upload_concurrency == 0) {
            return Err("uploads need a size and a concurrency".to_owned());
        }
        Ok(())
    }
}

/// `preset` with the keys of a TOML scenario file over it.
pub fn layered(preset: Scenario, path: &std::path::Path) -> Result<Scenario, String> {
    use figment::providers::{Format, Serialized, Toml};
    figment::Figment::from(Serialized::defaults(preset))
        .merge(Toml::file_exact(path))
        .extract()
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// `loadtest scenario` options.
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    pub bin_dir: PathBuf,
    /// Where the report goes (default `loadtest-results/<scenario>-<time>`).
    pub out: Option<PathBuf>,
    /// Raw produce and COPY on the same broker and database after the run.
    pub baselines: bool,
    /// The command as typed, for the report.
    pub command_line: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_presets_keep_the_seed_shape() {
        let steady = Scenario::steady();
        assert!((steady.peak_rate() - 10_000.0 * 0.1 / 60.0).abs() < 1e-9);
        let heavy = Scenario::heavy();
        assert!((heavy.peak_rate() - 10_000.0 * 0.5 * 5.0 / 60.0).abs() < 1e-9);
        let spike = Scenario::spike();
        assert_eq!(spike.connected_at(0.0), 1_000);
        assert_eq!(spike.connected_at(0.5), 10_000);
        assert_eq!(spike.connected_at(0.25), 5_500);
        assert_eq!(spike.connected_at(0.95), 1_000);
        for preset in ["steady", "spike", "heavy", "upload-storm", "smoke"] {
            assert_eq!(Scenario::preset(preset).map(|scenario| scenario.validate()), Some(Ok(())), "{preset}");
        }
    }

    #[test]
    fn a_scenario_file_changes_a_preset_and_bad_values_are_refused() {
        let scenario: Scenario = toml_like(r#"{"name": "mine", "users": 500, "topology": "2-2-3", "kill": true}"#);
        assert_eq!(scenario.topology, Topology { command: 2, projector: 2, query: 3 });
        assert_eq!(scenario.validate(), Ok(()));
        let single_kill = Scenario { kill: true, ..Scenario::steady() };
        assert!(single_kill.validate().is_err());
        let big_public = Scenario { public_members: 501, ..Scenario::steady() };
        assert!(big_public.validate().is_err());
    }

    fn toml_like(json: &str) -> Scenario {
        serde_json::from_str(json).unwrap_or_else(|error| panic!("{error}"))
    }
}
