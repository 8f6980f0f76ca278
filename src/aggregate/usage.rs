use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::rt::SeriesHasher;

use crate::batch::Collector;
use crate::data::{Item, UsageUnit};
use crate::encode::Ctx;
use crate::schema::{fields, types};

use super::{HashedMap, Lock};

/// One closed (or, at shutdown, open) usage bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageBucket {
    /// Start of the bucket, Unix ms (a multiple of the granularity).
    pub bucket_start_ms: u64,
    /// The shared resource.
    pub resource_id: String,
    /// The feature that used it.
    pub app_feature: String,
    /// The unit of `amount`.
    pub unit: UsageUnit,
    /// The summed amount.
    pub amount: u64,
}

struct Entry {
    bucket: UsageBucket,
}

/// Usage summed per (bucket start, resource, feature, unit).
pub(crate) struct UsageAggregator {
    granularity_ms: u64,
    buckets: Lock<HashedMap<Entry>>,
    ctx: Arc<Ctx>,
}

impl UsageAggregator {
    pub(crate) fn new(granularity_ms: u64, ctx: Arc<Ctx>) -> Self {
        UsageAggregator {
            granularity_ms: granularity_ms.max(1),
            buckets: Lock::new(HashedMap::default()),
            ctx,
        }
    }

    pub(crate) fn granularity_ms(&self) -> u64 {
        self.granularity_ms
    }

    /// Adds `amount` to the bucket that holds `now_ms`.
    #[inline]
    pub(crate) fn record(
        &self,
        resource_id: &str,
        app_feature: &str,
        amount: u64,
        unit: UsageUnit,
        now_ms: u64,
    ) {
        let start = now_ms - now_ms % self.granularity_ms;
        let mut h = SeriesHasher::default();
        start.hash(&mut h);
        resource_id.hash(&mut h);
        app_feature.hash(&mut h);
        unit.hash(&mut h);
        let hash = h.finish();
        let mut map = self.buckets.lock();
        let e = map.get_or_insert(
            hash,
            |e| {
                e.bucket.bucket_start_ms == start
                    && e.bucket.unit == unit
                    && crate::rt::eq_bytes(e.bucket.resource_id.as_bytes(), resource_id.as_bytes())
                    && crate::rt::eq_bytes(e.bucket.app_feature.as_bytes(), app_feature.as_bytes())
            },
            || Entry {
                bucket: UsageBucket {
                    bucket_start_ms: start,
                    resource_id: resource_id.to_owned(),
                    app_feature: app_feature.to_owned(),
                    unit,
                    amount: 0,
                },
            },
        );
        e.bucket.amount = e.bucket.amount.saturating_add(amount);
    }

    /// Hands closed buckets (every bucket when `all`) to `take`; a bucket stays when `take`
    /// returns `false`, and its sum keeps growing until it is taken.
    ///
    /// Natively the buckets are taken out under the lock and handed over after it, so
    /// recording threads do not wait for `take`; refused ones are merged back.
    pub(crate) fn drain(&self, now_ms: u64, all: bool, take: &mut dyn FnMut(&UsageBucket) -> bool) {
        let due = |e: &Entry| all || e.bucket.bucket_start_ms + self.granularity_ms <= now_ms;
        if crate::rt::CAN_BLOCK {
            let taken = self.buckets.lock().take_where(due);
            let mut refused = Vec::new();
            for (hash, e) in taken {
                if !refused.is_empty() || !take(&e.bucket) {
                    refused.push((hash, e));
                }
            }
            if !refused.is_empty() {
                let mut map = self.buckets.lock();
                for (hash, e) in refused {
                    map.put_back(
                        hash,
                        e,
                        |a, b| {
                            let (a, b) = (&a.bucket, &b.bucket);
                            a.bucket_start_ms == b.bucket_start_ms
                                && a.unit == b.unit
                                && a.resource_id == b.resource_id
                                && a.app_feature == b.app_feature
                        },
                        |newer, earlier| {
                            newer.bucket.amount =
                                newer.bucket.amount.saturating_add(earlier.bucket.amount)
                        },
                    );
                }
            }
            return;
        }
        let mut map = self.buckets.lock();
        let mut stop = false;
        map.retain(|e| {
            if stop {
                return true;
            }
            if !due(e) {
                return true;
            }
            if take(&e.bucket) {
                false
            } else {
                stop = true;
                true
            }
        });
    }

    fn encode(&self, b: &UsageBucket) -> Option<Item> {
        let mut w = self
            .ctx
            .begin_plain(types::USAGE, "usage", b.bucket_start_ms, 160);
        w.str(fields::RESOURCE_ID, &b.resource_id);
        w.str(fields::APP_FEATURE, &b.app_feature);
        w.word(fields::UNIT, b.unit.as_str());
        w.field(fields::AMOUNT)
            .push_str(itoa::Buffer::new().format(b.amount));
        w.field(fields::GRANULARITY_S)
            .push_str(itoa::Buffer::new().format(self.granularity_ms / 1000));
        Some(w.finish())
    }
}

impl Collector for UsageAggregator {
    fn collect(&self, now_ms: u64, final_: bool, offer: &mut dyn FnMut(Item) -> bool) {
        self.drain(now_ms, final_, &mut |b| match self.encode(b) {
            Some(item) => offer(item),
            None => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_buckets_are_merged_with_what_was_recorded_meanwhile() {
        let usage = UsageAggregator::new(1_000, Arc::new(Ctx::default()));
        usage.record("db", "search", 10, UsageUnit::Bytes, 500);
        usage.record("db", "export", 1, UsageUnit::Bytes, 500);
        let mut offered = 0;
        usage.drain(5_000, false, &mut |_| {
            if offered == 0 {
                // Late records into the closed bucket (a clock read just before the close).
                usage.record("db", "search", 5, UsageUnit::Bytes, 999);
                usage.record("db", "export", 2, UsageUnit::Bytes, 999);
            }
            offered += 1;
            false
        });
        assert_eq!(offered, 1, "nothing more is offered after a refusal");
        let mut sums = Vec::new();
        usage.drain(5_000, false, &mut |b| {
            sums.push((b.app_feature.clone(), b.bucket_start_ms, b.amount));
            true
        });
        sums.sort();
        assert_eq!(
            sums,
            vec![("export".into(), 0, 3), ("search".into(), 0, 15)]
        );
        let mut again = 0;
        usage.drain(5_000, true, &mut |_| {
            again += 1;
            true
        });
        assert_eq!(again, 0, "emitted once");
    }
}
