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

impl Collector for Metrics {
    fn collect(&self, now_ms: u64, _final: bool, offer: &mut dyn FnMut(Item) -> bool) {
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
