use std::hash::Hasher;
use std::sync::Arc;

use crate::rt::SeriesHasher;

use crate::batch::Collector;
use crate::data::value::write_f64;
use crate::data::{Attrs, Item, MetricType, OwnedValue, Value};
use crate::encode::{to_owned_attrs, Ctx};
use crate::schema::{fields, format_rfc3339_ms, types};

use super::{HashedMap, Lock};

fn eq_str(a: &str, b: &str) -> bool {
    crate::rt::eq_bytes(a.as_bytes(), b.as_bytes())
}

/// Value equality with the short-string comparison for strings.
#[inline]
fn eq_value(a: &OwnedValue, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => eq_str(x, y),
        _ => a == b,
    }
}

/// The pre-aggregated metric kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

enum Agg {
    Counter(f64),
    Gauge(f64),
    Histogram {
        bounds: Arc<[f64]>,
        counts: Vec<u64>,
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    },
}

struct Series {
    kind: MetricKind,
    name: Box<str>,
    ctx: Arc<Ctx>,
    attrs: Vec<(Box<str>, OwnedValue)>,
    since_ms: u64,
    agg: Agg,
}

/// Picks the histogram boundaries for a metric name.
pub(crate) type BoundsFn = Box<dyn Fn(&str) -> Arc<[f64]> + Send + Sync>;

/// Counters, gauges and histograms, summed per (name, attributes) between emissions.
pub(crate) struct Metrics {
    series: Lock<HashedMap<Series>>,
    bounds: BoundsFn,
}

impl Metrics {
    pub(crate) fn new(bounds: BoundsFn) -> Self {
        Metrics {
            series: Lock::new(HashedMap::default()),
            bounds,
        }
    }

    /// Adds an observation to its series. Returns `false` (and records nothing) when a new
    /// series would have an invalid name or attribute key; existing series were checked when
    /// they were created, so the hot path checks nothing.
    #[inline]
    pub(crate) fn observe(
        &self,
        kind: MetricKind,
        name: &str,
        ctx: &Arc<Ctx>,
        attrs: &Attrs<'_>,
        value: f64,
    ) -> bool {
        // Each part is folded in directly, not through `Hash` (which adds a terminator to
        // every string and a tag to every value): collisions only cost a comparison.
        let mut h = SeriesHasher::default();
        h.write_u64(ctx.hash ^ kind as u64);
        h.write(name.as_bytes());
        for (k, v) in attrs {
            h.write(k.as_bytes());
            match v {
                Value::Str(s) => h.write(s.as_bytes()),
                Value::I64(x) => h.write_i64(*x),
                Value::U64(x) => h.write_u64(*x),
                Value::F64(x) => h.write_u64(x.to_bits()),
                Value::Bool(x) => h.write_u8(*x as u8),
                Value::Null => h.write_u8(2),
            }
        }
        let hash = h.finish();
        let mut map = self.series.lock();
        let Some(s) = map.get_or_try_insert(
            hash,
            |s| {
                s.kind == kind
                    && eq_str(&s.name, name)
                    && (Arc::ptr_eq(&s.ctx, ctx) || s.ctx.attrs == ctx.attrs)
                    && s.attrs.len() == attrs.len()
                    && s.attrs
                        .iter()
                        .zip(attrs.iter())
                        .all(|((k1, v1), (k2, v2))| eq_str(k1, k2) && eq_value(v1, v2))
            },
            || {
                if crate::schema::check_name(name).is_err()
                    || attrs
                        .iter()
                        .any(|(k, _)| crate::schema::check_key(k).is_err())
                {
                    return None;
                }
                Some(Series {
                    kind,
                    name: name.into(),
                    ctx: ctx.clone(),
                    attrs: to_owned_attrs(attrs),
                    since_ms: crate::rt::now_unix_ms(),
                    agg: match kind {
                        MetricKind::Counter => Agg::Counter(0.0),
                        MetricKind::Gauge => Agg::Gauge(0.0),
                        MetricKind::Histogram => {
                            let bounds = (self.bounds)(name);
                            Agg::Histogram {
                                counts: vec![0; bounds.len() + 1],
                                bounds,
                                count: 0,
                                sum: 0.0,
                                min: f64::INFINITY,
                                max: f64::NEG_INFINITY,
                            }
                        }
                    },
                })
            },
        ) else {
            return false;
        };
        match &mut s.agg {
            Agg::Counter(sum) => *sum += value,
            Agg::Gauge(last) => *last = value,
            Agg::Histogram {
                bounds,
                counts,
                count,
                sum,
                min,
                max,
            } => {
                // Bucket i holds values in (bounds[i-1], bounds[i]]; the last one the rest.
                let i = bounds.partition_point(|b| *b < value);
                counts[i] += 1;
                *count += 1;
                *sum += value;
                *min = min.min(value);
                *max = max.max(value);
            }
        }
        true
    }

    fn encode(s: &Series, now_ms: u64) -> Option<Item> {
        let kind = match s.kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        let mut w = s
            .ctx
            .begin_checked(types::METRIC, &s.name, now_ms, &s.attrs, 160);
        w.word(fields::METRIC_TYPE, kind.as_str());
        w.str(fields::PERIOD_START, &format_rfc3339_ms(s.since_ms));
        match &s.agg {
            Agg::Counter(v) | Agg::Gauge(v) => write_f64(w.field(fields::VALUE), *v),
            Agg::Histogram {
                bounds,
                counts,
                count,
                sum,
                min,
                max,
            } => {
                w.field(fields::COUNT)
                    .push_str(itoa::Buffer::new().format(*count));
                write_f64(w.field(fields::SUM), *sum);
                write_f64(w.field(fields::MIN), *min);
                write_f64(w.field(fields::MAX), *max);
                let out = w.field(fields::BOUNDS);
                out.push('[');
                for (i, b) in bounds.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_f64(out, *b);
                }
                out.push(']');
                let out = w.field(fields::BUCKET_COUNTS);
                out.push('[');
                for (i, c) in counts.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(itoa::Buffer::new().format(*c));
                }
                out.push(']');
            }
        }
        Some(w.finish())
    }
}

impl Series {
    /// Whether two series have the same kind, name and attributes.
    fn same(&self, other: &Series) -> bool {
        self.kind == other.kind
            && self.name == other.name
            && (Arc::ptr_eq(&self.ctx, &other.ctx) || self.ctx.attrs == other.ctx.attrs)
            && self.attrs == other.attrs
    }

    /// Adds what an earlier series of the same key (taken out to be emitted, and refused by
    /// the queue) aggregated: this one then covers both periods.
    fn absorb_earlier(&mut self, earlier: Series) {
        self.since_ms = self.since_ms.min(earlier.since_ms);
        match (&mut self.agg, earlier.agg) {
            (Agg::Counter(sum), Agg::Counter(before)) => *sum += before,
            // The later value is the last one.
            (Agg::Gauge(_), Agg::Gauge(_)) => {}
            (
                Agg::Histogram {
                    counts,
                    count,
                    sum,
                    min,
                    max,
                    ..
                },
                Agg::Histogram {
                    counts: c2,
                    count: n2,
                    sum: s2,
                    min: lo2,
                    max: hi2,
                    ..
                },
            ) => {
                // Same name, so the same boundaries.
                for (c, c2) in counts.iter_mut().zip(c2) {
                    *c += c2;
                }
                *count += n2;
                *sum += s2;
                *min = min.min(lo2);
                *max = max.max(hi2);
            }
            // Same kind, so this cannot happen.
            _ => {}
        }
    }
}

impl Collector for Metrics {
    fn collect(&self, now_ms: u64, _final: bool, offer: &mut dyn FnMut(Item) -> bool) {
        if crate::rt::CAN_BLOCK {
            return self.collect_outside_the_lock(now_ms, offer);
        }
        let mut map = self.series.lock();
        let mut full = false;
        map.retain(|s| {
            if full {
                return true;
            }
            match Metrics::encode(s, now_ms) {
                Some(item) => {
                    if offer(item) {
                        false
                    } else {
                        full = true;
                        true
                    }
                }
                None => false,
            }
        });
    }
}

impl Metrics {
    /// [`Collector::collect`] with the series taken out under the lock and encoded after it,
    /// so recording threads do not wait for the encoding; what the queue refuses is merged
    /// back into the series recorded meanwhile.
    fn collect_outside_the_lock(&self, now_ms: u64, offer: &mut dyn FnMut(Item) -> bool) {
        let taken = self.series.lock().take_where(|_| true);
        let mut refused = Vec::new();
        for (hash, s) in taken {
            if !refused.is_empty() {
                refused.push((hash, s));
                continue;
            }
            if let Some(item) = Metrics::encode(&s, now_ms) {
                if !offer(item) {
                    refused.push((hash, s));
                }
            }
        }
        if refused.is_empty() {
            return;
        }
        let mut map = self.series.lock();
        for (hash, s) in refused {
            map.put_back(hash, s, Series::same, Series::absorb_earlier);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::MetricType;

    fn metrics() -> (Metrics, Arc<Ctx>) {
        let bounds: Arc<[f64]> = Arc::from(&[1.0, 10.0][..]);
        let metrics = Metrics::new(Box::new(move |_| bounds.clone()));
        (metrics, Arc::new(Ctx::default()))
    }

    fn collect_all(m: &Metrics) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        m.collect(0, false, &mut |item| {
            out.push(item.to_value());
            true
        });
        out.sort_by_key(|v| v["metric_type"].as_str().unwrap_or_default().to_owned());
        out
    }

    #[test]
    fn what_the_queue_refuses_is_merged_with_what_was_recorded_meanwhile() {
        let (m, ctx) = metrics();
        let attrs: &Attrs<'_> = &[("route", Value::from("/a"))];
        m.observe(MetricKind::Counter, "hits", &ctx, attrs, 2.0);
        m.observe(MetricKind::Gauge, "depth", &ctx, attrs, 5.0);
        m.observe(MetricKind::Histogram, "ms", &ctx, attrs, 0.5);
        m.observe(MetricKind::Histogram, "ms", &ctx, attrs, 20.0);
        // The queue refuses everything; while the series are out of the map, the same
        // series are recorded again (as another thread would).
        let mut offered = 0;
        m.collect(0, false, &mut |_| {
            if offered == 0 {
                m.observe(MetricKind::Counter, "hits", &ctx, attrs, 3.0);
                m.observe(MetricKind::Gauge, "depth", &ctx, attrs, 7.0);
                m.observe(MetricKind::Histogram, "ms", &ctx, attrs, 5.0);
            }
            offered += 1;
            false
        });
        assert_eq!(offered, 1, "nothing more is offered after a refusal");
        let out = collect_all(&m);
        assert_eq!(out.len(), 3, "{out:?}");
        let [counter, gauge, histogram] = &out[..] else {
            unreachable!()
        };
        assert_eq!(counter["metric_type"], MetricType::Counter.as_str());
        assert_eq!(counter["value"], 5.0);
        assert_eq!(gauge["value"], 7.0, "the later gauge value wins");
        assert_eq!(histogram["count"], 3);
        assert_eq!(histogram["sum"], 25.5);
        assert_eq!(histogram["min"], 0.5);
        assert_eq!(histogram["max"], 20.0);
        assert_eq!(histogram["bucket_counts"], serde_json::json!([1, 1, 1]));
        assert!(collect_all(&m).is_empty(), "emitted once");
    }
}
