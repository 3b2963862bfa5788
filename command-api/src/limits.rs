//! Token buckets per user per channel and per app (DESIGN.md, "Limits"). In memory, per node: with N nodes
//! behind a load balancer a client can reach up to N× the rate; the limits protect each node and the log
//! from floods, and an exact cluster-wide quota would need a shared store on the request path.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chatsdk_schemas::ids::{AppId, ChannelId, UserId};

use crate::config::LimitsConfig;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

#[derive(Debug)]
struct Buckets<K> {
    rate: f64,
    burst: f64,
    max_buckets: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash> Buckets<K> {
    fn new(rate: f64, burst: u32, max_buckets: usize) -> Self {
        Self { rate, burst: f64::from(burst), max_buckets: max_buckets.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= self.max_buckets && !buckets.contains_key(&key) {
            // Full buckets carry no state worth keeping: a new bucket starts full as well.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, bucket| Self::level(rate, burst, bucket, now) < burst);
            if buckets.len() >= self.max_buckets {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket { tokens: self.burst, refilled: now });
        bucket.tokens = Self::level(self.rate, self.burst, bucket, now);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    fn give_back(&self, key: &K) {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }

    fn level(rate: f64, burst: f64, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        (bucket.tokens + elapsed * rate).min(burst)
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    per_user_channel: Buckets<(AppId, ChannelId, UserId)>,
    per_app: Buckets<AppId>,
}

impl RateLimiter {
    pub fn new(config: &LimitsConfig) -> Self {
        Self {
            per_user_channel: Buckets::new(config.user_channel_rate, config.user_channel_burst, config.max_buckets),
            per_app: Buckets::new(config.app_rate, config.app_burst, config.max_buckets),
        }
    }

    /// One command by `user` (None: the server actor) in `channel` of `app`.
    pub fn check(&self, app: &AppId, channel: &ChannelId, user: Option<&UserId>) -> Result<(), ApiError> {
        let now = Instant::now();
        let user_key = user.map(|user| (app.clone(), channel.clone(), user.clone()));
        if let Some(key) = &user_key
            && let Err(retry_after) = self.per_user_channel.take(key.clone(), now)
        {
            return Err(ApiError::RateLimited {
                message: format!("too many commands by {} in {channel}", key.2),
                retry_after,
            });
        }
        if let Err(retry_after) = self.per_app.take(app.clone(), now) {
            if let Some(key) = &user_key {
                self.per_user_channel.give_back(key);
            }
            return Err(ApiError::RateLimited { message: format!("too many commands in app {app}"), retry_after });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let buckets = Buckets::new(10.0, 3, 100);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.take("k", start), Ok(()));
        }
        let wait = buckets.take("k", start).err().unwrap_or_default();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(buckets.take("k", start + Duration::from_millis(100)), Ok(()));
        assert!(buckets.take("other", start).is_ok(), "keys do not share a bucket");
    }

    #[test]
    fn when_full_it_drops_idle_buckets_not_busy_ones() {
        let buckets = Buckets::new(1.0, 2, 2);
        let start = Instant::now();
        assert!(buckets.take("busy", start).is_ok());
        assert!(buckets.take("busy", start).is_ok());
        assert!(buckets.take("idle", start).is_ok());
        // Two seconds later "idle" is full again and may go; "busy" was emptied again just now.
        let later = start + Duration::from_secs(2);
        assert!(buckets.take("busy", later).is_ok());
        assert!(buckets.take("busy", later).is_ok());
        assert!(buckets.take("new", later).is_ok());
        assert!(buckets.take("busy", later).is_err(), "the busy bucket kept its state");
    }

    #[test]
    fn the_app_bucket_limits_all_users_together() {
        let limiter = RateLimiter::new(&LimitsConfig {
            user_channel_rate: 100.0,
            user_channel_burst: 100,
            app_rate: 1.0,
            app_burst: 2,
            max_buckets: 100,
        });
        let id = |value: &str| value.parse::<UserId>().unwrap_or_else(|error| panic!("{error}"));
        let app: AppId = "acme".parse().unwrap_or_else(|error| panic!("{error}"));
        let channel: ChannelId = "general".parse().unwrap_or_else(|error| panic!("{error}"));
        assert!(limiter.check(&app, &channel, Some(&id("a"))).is_ok());
        assert!(limiter.check(&app, &channel, Some(&id("b"))).is_ok());
        let refused = limiter.check(&app, &channel, Some(&id("c")));
        assert!(matches!(refused, Err(ApiError::RateLimited { .. })));
    }
}
