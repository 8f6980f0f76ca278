//! The periodic roll-up (as Materialize's telemetry loop): statistics are monotonic counters
//! reported as deltas since the last report; traits are read at report time. Unlike the
//! original, a failed traits read skips only that report's traits: the statistics deltas stay
//! exact, and a report the queue could not take is folded into the next one with its
//! `period_start`, never silently.

use std::sync::Arc;

use crate::batch::Pipeline;
use crate::data::OwnedValue;
use crate::encode::Ctx;
use crate::rt::{self, Duration};
use crate::schema::{fields, format_rfc3339_ms, types};

type StatFn = Box<dyn Fn() -> u64 + Send + Sync>;
type TraitsFn = Box<dyn Fn() -> Result<Vec<(String, OwnedValue)>, String> + Send + Sync>;

/// A roll-up reporter: build it, then start it with [`crate::Client::start_reporter`].
///
/// Every `interval` it emits a `rollup` item named after the reporter, holding each
/// statistic's delta since the last report and the current traits, and a `rollup` item named
/// `traits` holding only the traits. The first report comes after the first full interval.
pub struct Reporter {
    name: String,
    interval: Duration,
    stats: Vec<(String, StatFn)>,
    traits: Option<TraitsFn>,
}

impl Reporter {
    /// A reporter named `name` (the `event_name` of its roll-ups), reporting every hour.
    pub fn new(name: impl Into<String>) -> Self {
        Reporter {
            name: name.into(),
            interval: Duration::from_secs(3600),
            stats: Vec::new(),
            traits: None,
        }
    }

    /// How often to report.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// A statistic: `read` returns a monotonic counter; reports carry its delta.
    pub fn statistic(
        mut self,
        name: impl Into<String>,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.stats.push((name.into(), Box::new(read)));
        self
    }

    /// The traits: `read` returns the current state, or an error (that report then has no
    /// traits).
    pub fn traits(
        mut self,
        read: impl Fn() -> Result<Vec<(String, OwnedValue)>, String> + Send + Sync + 'static,
    ) -> Self {
        self.traits = Some(Box::new(read));
        self
    }

    fn read_stats(&self) -> Vec<u64> {
        self.stats.iter().map(|(_, f)| f()).collect()
    }

    /// Reads the statistics' starting values now and returns the report loop.
    pub(crate) fn start(
        self,
        pipeline: Arc<Pipeline>,
        ctx: Arc<Ctx>,
    ) -> rt::BoxFuture<'static, ()> {
        let baseline = self.read_stats();
        let since = rt::now_unix_ms();
        Box::pin(self.run(pipeline, ctx, baseline, since))
    }

    async fn run(
        self,
        pipeline: Arc<Pipeline>,
        ctx: Arc<Ctx>,
        mut baseline: Vec<u64>,
        mut since: u64,
    ) {
        loop {
            rt::sleep(self.interval).await;
            if pipeline.is_closed() {
                return;
            }
            let now = rt::now_unix_ms();
            let current = self.read_stats();
            let traits = self.traits.as_ref().map(|f| f());
            let traits = match traits {
                Some(Ok(t)) => Some(t),
                _ => None,
            };
            let mut w = ctx.begin_plain(types::ROLLUP, &self.name, now, 64);
            w.str(fields::PERIOD_START, &format_rfc3339_ms(since));
            for ((name, _), (cur, base)) in self.stats.iter().zip(current.iter().zip(&baseline)) {
                // A counter that went backwards was reset: its whole value is the delta.
                let delta = if cur >= base { cur - base } else { *cur };
                w.key(name).push_str(itoa::Buffer::new().format(delta));
            }
            if let Some(t) = &traits {
                for (k, v) in t {
                    if !self.stats.iter().any(|(s, _)| s == k)
                        && crate::schema::check_key(k).is_ok()
                    {
                        v.write_json(w.key(k));
                    }
                }
            }
            if pipeline.offer(w.finish(), false).is_ok() {
                baseline = current;
                since = now;
            }
            if let Some(t) = traits {
                let mut w = ctx.begin_plain(types::ROLLUP, "traits", now, 64);
                for (k, v) in t
                    .iter()
                    .filter(|(k, _)| crate::schema::check_key(k).is_ok())
                {
                    v.write_json(w.key(k));
                }
                pipeline.push(w.finish());
            }
        }
    }
}
