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
    pub(crate) fn drain(&self, now_ms: u64, all: bool, take: &mut dyn FnMut(&UsageBucket) -> bool) {
        let mut map = self.buckets.lock();
        let mut stop = false;
        map.retain(|e| {
            if stop {
                return true;
            }
            let closed = e.bucket.bucket_start_ms + self.granularity_ms <= now_ms;
            if !(closed || all) {
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
