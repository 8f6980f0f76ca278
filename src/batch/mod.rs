//! The batching core: one queue of encoded items for every data type, bounded by items and by
//! exact encoded bytes, flushed on an interval, when a full batch waits, on `flush()` and on
//! shutdown. Every dropped item is counted by reason and reported as a `client_report` item.
//!
//! The core holds no threads: it runs on the `spawn` and `sleep` of [`crate::rt`]. No lock is
//! held across a transport call or an `.await`.

mod lane;
mod signal;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::{select, Either};

use crate::data::{Batch, Item};
use crate::rt::{self, Duration};
use crate::transport::{self, Outcome, RetryPolicy, Transport};

pub(crate) use signal::Signal;

/// What to do with a new item when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Keep what is queued; drop the new item.
    #[default]
    DropNewest,
    /// Make room by dropping the oldest queued items.
    DropOldest,
}

/// Limits and timing of the batching core.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Most items held at once, queued or in flight (at most 16 777 215; larger values count
    /// as that).
    pub max_queue_items: usize,
    /// Most encoded bytes held at once, queued or in flight (at most 1 TiB; larger values
    /// count as that).
    pub max_memory_bytes: usize,
    /// Most items in one batch.
    pub max_batch_size: usize,
    /// Most encoded bytes in one batch (a larger single item goes alone).
    pub max_batch_bytes: usize,
    /// Largest accepted item, in encoded bytes.
    pub max_item_bytes: usize,
    /// How often the queue is flushed and aggregates are emitted, even when nobody records.
    pub flush_interval: Duration,
    /// What happens when the queue is full.
    pub overflow: Overflow,
    /// Most batches being sent at once.
    pub max_concurrent_sends: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_items: 100_000,
            max_memory_bytes: 32 * 1024 * 1024,
            max_batch_size: 500,
            max_batch_bytes: 512 * 1024,
            max_item_bytes: crate::schema::DEFAULT_MAX_ITEM_BYTES,
            flush_interval: Duration::from_secs(5),
            overflow: Overflow::DropNewest,
            max_concurrent_sends: 2,
        }
    }
}

/// Why an item was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was at its item or byte bound.
    QueueFull,
    /// The item was over the item size limit.
    TooLarge,
    /// The item broke the schema.
    Invalid,
    /// Sampling did not keep it.
    SampledOut,
    /// Its delivery failed for good (the transport gave up).
    DeliveryFailed,
}

impl DropReason {
    /// Every reason, in the order of [`DropCounts`].
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::TooLarge,
        DropReason::Invalid,
        DropReason::SampledOut,
        DropReason::DeliveryFailed,
    ];

    /// The `client_report` field that carries this reason's count.
    pub fn field(self) -> &'static str {
        use crate::schema::fields::*;
        match self {
            DropReason::QueueFull => DROPPED_QUEUE_FULL,
            DropReason::TooLarge => DROPPED_TOO_LARGE,
            DropReason::Invalid => DROPPED_INVALID,
            DropReason::SampledOut => DROPPED_SAMPLED_OUT,
            DropReason::DeliveryFailed => DROPPED_DELIVERY_FAILED,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Dropped items per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts {
    /// Queue at its bound.
    pub queue_full: u64,
    /// Item over the size limit.
    pub too_large: u64,
    /// Item broke the schema.
    pub invalid: u64,
    /// Not kept by sampling.
    pub sampled_out: u64,
    /// Delivery failed for good.
    pub delivery_failed: u64,
}

impl DropCounts {
    /// The count for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        match r {
            DropReason::QueueFull => self.queue_full,
            DropReason::TooLarge => self.too_large,
            DropReason::Invalid => self.invalid,
            DropReason::SampledOut => self.sampled_out,
            DropReason::DeliveryFailed => self.delivery_failed,
        }
    }

    /// All reasons together.
    pub fn total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.get(*r)).sum()
    }

    fn from_array(a: [u64; 5]) -> Self {
        DropCounts {
            queue_full: a[0],
            too_large: a[1],
            invalid: a[2],
            sampled_out: a[3],
            delivery_failed: a[4],
        }
    }
}

/// A snapshot of the batching core's state.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Items waiting in the queue.
    pub queued_items: usize,
    /// Their encoded bytes.
    pub queued_bytes: usize,
    /// Items being sent.
    pub inflight_items: usize,
    /// Items accepted into the queue since start.
    pub accepted: u64,
    /// Items delivered since start.
    pub delivered: u64,
    /// Drops since start, by reason.
    pub dropped: DropCounts,
    /// Batches delivered.
    pub batches_sent: u64,
    /// Batch attempts that failed (each retry round counts once).
    pub batches_failed: u64,
    /// When the last batch was delivered (Unix ms), if ever.
    pub last_flush_unix_ms: Option<u64>,
}

/// Why a flush did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushError {
    /// The client was shut down (or is the no-op client).
    Closed,
    /// The time limit passed first.
    Timeout,
    /// Blocking is not possible on this target (the browser): use the async version.
    WouldBlock,
    /// Some items could not be delivered now; they wait in the queue for the next try.
    Pending {
        /// Items still queued or in flight.
        items: usize,
    },
}

impl std::fmt::Display for FlushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlushError::Closed => f.write_str("the client is shut down"),
            FlushError::Timeout => f.write_str("flush timed out"),
            FlushError::WouldBlock => {
                f.write_str("cannot block in the browser; await flush() instead")
            }
            FlushError::Pending { items } => {
                write!(
                    f,
                    "{items} items could not be delivered yet; they stay queued"
                )
            }
        }
    }
}

impl std::error::Error for FlushError {}

/// Something that emits items on each tick: aggregates, closed usage buckets, roll-ups.
///
/// `offer` returns `false` when the queue has no room; the collector then keeps what it
/// could not hand over for the next tick, so aggregated sums are never lost to a full queue.
pub(crate) trait Collector: rt::MaybeSend + rt::MaybeSync {
    fn collect(&self, now_ms: u64, final_: bool, offer: &mut dyn FnMut(Item) -> bool);
}

/// Builds the `client_report` item from the counts it reports.
pub(crate) type ReportBuilder = Box<dyn Fn(&DropCounts) -> Item + Send + Sync>;

struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    inflight_items: usize,
    inflight_bytes: usize,
    report_inflight: bool,
}

/// `Pipeline::held` packs the items held (high bits) and their bytes (low bits) into one
/// word, so one atomic operation checks and takes room for an item under both bounds.
const HELD_BYTES_BITS: u32 = 40;
const HELD_ITEM: u64 = 1 << HELD_BYTES_BITS;
const HELD_MAX_ITEMS: usize = (1 << (64 - HELD_BYTES_BITS)) - 1;

/// While busy, the flusher looks for full batches this often instead of being woken for each.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// It goes back to being woken after this many looks in a row that found no full batch.
const IDLE_POLLS: u32 = 20;

/// Numbers pipelines (see `Pipeline::id`).
static PIPELINES: AtomicU64 = AtomicU64::new(0);

/// The pipeline: queue, drop accounting, collectors and delivery.
///
/// Natively, each recording thread stages items in a lane of its own (see [`lane`]), in
/// blocks that the flusher gathers into the shared queue; on wasm32, with one thread, items
/// go to the shared queue directly.
pub(crate) struct Pipeline {
    cfg: BatchConfig,
    /// Tells this pipeline's lanes apart from other pipelines' on a thread.
    id: u64,
    /// Items and bytes held, queued (in lanes or the shared queue) or in flight: the bounds.
    /// Every recording call updates it, so it has a cache line of its own.
    held: lane::Aligned<AtomicU64>,
    /// Every lane a thread made for this pipeline (none on wasm32).
    lanes: Mutex<Vec<Arc<lane::Lane>>>,
    /// Items a lane's block takes before it is set aside.
    block_items: usize,
    /// Items in set-aside lane blocks, not yet gathered: the flusher is woken when they make
    /// a full batch.
    set_aside: lane::Aligned<AtomicUsize>,
    /// The shared queue's length, as last changed under its lock: with `set_aside`, what a
    /// recording thread adds up to decide whether a full batch waits.
    queued: AtomicUsize,
    queue: Mutex<Queue>,
    closed: AtomicBool,
    /// Set while the flusher looks for full batches on its own: recording threads then do not
    /// wake it.
    polling: AtomicBool,
    wake_pending: AtomicBool,
    flush_all: AtomicBool,
    /// Woken when a full batch waits, on flush requests and on shutdown.
    work: Signal,
    /// Woken whenever a batch finishes (delivered, requeued or dropped).
    done: Signal,
    dropped_total: [AtomicU64; 5],
    unreported: [AtomicU64; 5],
    accepted: AtomicU64,
    delivered: AtomicU64,
    batches_sent: AtomicU64,
    batches_failed: AtomicU64,
    requeues: AtomicU64,
    last_flush_ms: AtomicU64,
    transports: Vec<Box<dyn Transport>>,
    retry: RetryPolicy,
    collectors: Mutex<Vec<Arc<dyn Collector>>>,
    report: ReportBuilder,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the queue inconsistent in a way that matters
    // more than losing telemetry would: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Taken {
    items: Vec<Item>,
    bytes: usize,
    report: Option<[u64; 5]>,
}

impl Pipeline {
    pub(crate) fn new(
        mut cfg: BatchConfig,
        transports: Vec<Box<dyn Transport>>,
        retry: RetryPolicy,
        report: ReportBuilder,
    ) -> Arc<Self> {
        cfg.max_queue_items = cfg.max_queue_items.min(HELD_MAX_ITEMS);
        cfg.max_memory_bytes = (cfg.max_memory_bytes as u64).min(HELD_ITEM - 1) as usize;
        Arc::new(Pipeline {
            block_items: lane::BLOCK.min(cfg.max_batch_size),
            set_aside: lane::Aligned(AtomicUsize::new(0)),
            queued: AtomicUsize::new(0),
            cfg,
            id: PIPELINES.fetch_add(1, Ordering::Relaxed),
            held: lane::Aligned(AtomicU64::new(0)),
            lanes: Mutex::new(Vec::new()),
            polling: AtomicBool::new(false),
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                inflight_items: 0,
                inflight_bytes: 0,
                report_inflight: false,
            }),
            closed: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            flush_all: AtomicBool::new(false),
            work: Signal::default(),
            done: Signal::default(),
            dropped_total: Default::default(),
            unreported: Default::default(),
            accepted: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            batches_failed: AtomicU64::new(0),
            requeues: AtomicU64::new(0),
            last_flush_ms: AtomicU64::new(0),
            transports,
            retry,
            collectors: Mutex::new(Vec::new()),
            report,
        })
    }

    pub(crate) fn config(&self) -> &BatchConfig {
        &self.cfg
    }

    pub(crate) fn add_collector(&self, c: Arc<dyn Collector>) {
        lock(&self.collectors).push(c);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Counts `n` dropped items.
    pub(crate) fn drop_items(&self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped_total[reason.index()].fetch_add(n, Ordering::Relaxed);
        self.unreported[reason.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds an item to the queue, or counts why it could not be added. Never blocks on I/O.
    pub(crate) fn push(&self, item: Item) {
        let _ = self.offer(item, true);
    }

    /// Like [`Pipeline::push`], but when the queue is full and `count_drop` is false, hands the
    /// item back instead of counting it (used by collectors that keep their state; their items
    /// go to the shared queue directly).
    pub(crate) fn offer(&self, item: Item, count_drop: bool) -> Result<(), Item> {
        let len = item.len();
        if len > self.cfg.max_item_bytes {
            self.drop_items(DropReason::TooLarge, 1);
            return Ok(());
        }
        if self.is_closed() {
            return Ok(());
        }
        if !self.reserve(len) {
            if !count_drop {
                return Err(item);
            }
            if self.cfg.overflow != Overflow::DropOldest || !self.evict_for(len) {
                self.drop_items(DropReason::QueueFull, 1);
                return Ok(());
            }
        }
        let item = if rt::CAN_BLOCK && count_drop {
            let staged = lane::stage(
                self.id,
                item,
                self.block_items,
                &self.set_aside,
                |new| lock(&self.lanes).push(new.clone()),
                |total| {
                    if total + self.queued.load(Ordering::Relaxed) >= self.cfg.max_batch_size {
                        self.wake_for_full_batch();
                    }
                },
            );
            match staged {
                Some(item) => item,
                None => return Ok(()),
            }
        } else {
            item
        };
        let full = {
            let mut q = lock(&self.queue);
            q.bytes += len;
            q.items.push_back(item);
            self.note_queued(&q);
            q.items.len() + self.set_aside.load(Ordering::Relaxed) >= self.cfg.max_batch_size
        };
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if full {
            self.wake_for_full_batch();
        }
        Ok(())
    }

    /// Takes room for one item of `len` bytes under both bounds, if there is room.
    #[inline]
    fn reserve(&self, len: usize) -> bool {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            let items = (held >> HELD_BYTES_BITS) as usize;
            let bytes = (held & (HELD_ITEM - 1)) as usize;
            if items >= self.cfg.max_queue_items || bytes + len > self.cfg.max_memory_bytes {
                return false;
            }
            let want = held + HELD_ITEM + len as u64;
            match self
                .held
                .compare_exchange_weak(held, want, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => held = now,
            }
        }
    }

    /// Gives back the room of `n` items of `bytes` bytes (delivered or dropped).
    fn release(&self, n: usize, bytes: usize) {
        if n > 0 {
            self.held
                .fetch_sub(n as u64 * HELD_ITEM + bytes as u64, Ordering::Relaxed);
        }
    }

    /// Wakes the flusher for a full batch, unless it is looking on its own or already woken.
    fn wake_for_full_batch(&self) {
        let polling = rt::CAN_BLOCK && self.polling.load(Ordering::SeqCst);
        if !polling && !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.work.notify();
        }
    }

    /// Moves every lane's items to the shared queue, and lets go of the lanes of threads that
    /// have ended, once empty.
    fn gather(&self) {
        if !rt::CAN_BLOCK {
            return;
        }
        let mut lanes = lock(&self.lanes);
        let mut q = lock(&self.queue);
        lanes.retain(|lane| {
            // Only this list holds it: its thread has ended, and what it added before is
            // visible after this fence (its `Arc` was released after its last item).
            let ended = Arc::strong_count(lane) == 1;
            if ended {
                std::sync::atomic::fence(Ordering::Acquire);
            }
            let (bytes, from_blocks) = lane.drain_into(&mut q.items);
            q.bytes += bytes;
            self.set_aside.fetch_sub(from_blocks, Ordering::Relaxed);
            if ended {
                self.accepted.fetch_add(lane.accepted(), Ordering::Relaxed);
            }
            !ended
        });
        self.note_queued(&q);
    }

    /// Records the queue's length (see `queued`); called under the queue's lock wherever it
    /// changes.
    fn note_queued(&self, q: &Queue) {
        self.queued.store(q.items.len(), Ordering::Relaxed);
    }

    /// `drop_oldest`: drops queued items, oldest first, until an item of `len` bytes fits,
    /// and takes its room. Returns `false` when it cannot fit even with the queue empty.
    fn evict_for(&self, len: usize) -> bool {
        let mut evicted = 0;
        let mut gathered = false;
        let mut q = lock(&self.queue);
        let fits = loop {
            if self.reserve(len) {
                break true;
            }
            let Some(old) = q.items.pop_front() else {
                // The oldest items left are in the lanes: gather them once (the lanes' lock
                // comes before the queue's).
                if gathered {
                    break false;
                }
                gathered = true;
                drop(q);
                self.gather();
                q = lock(&self.queue);
                continue;
            };
            q.bytes -= old.len();
            self.release(1, old.len());
            evicted += 1;
        };
        self.note_queued(&q);
        drop(q);
        self.drop_items(DropReason::QueueFull, evicted);
        fits
    }

    /// Runs the collectors: hands their items to the queue.
    pub(crate) fn collect(&self, final_: bool) {
        // Collectors only take their own locks and the queue's, never this one.
        let collectors = lock(&self.collectors);
        let now = rt::now_unix_ms();
        for c in collectors.iter() {
            c.collect(now, final_, &mut |item| self.offer(item, false).is_ok());
        }
    }

    /// The drop counts a `client_report` should carry now, unless one is already in flight
    /// or there is nothing to report.
    fn due_report(&self, q: &Queue) -> Option<[u64; 5]> {
        if q.report_inflight {
            return None;
        }
        let counts: [u64; 5] = std::array::from_fn(|i| self.unreported[i].load(Ordering::Relaxed));
        counts.iter().any(|c| *c > 0).then_some(counts)
    }

    fn take(&self, require_full: bool, budget: &mut usize) -> Option<Taken> {
        self.gather();
        let mut q = lock(&self.queue);
        let report_only =
            !require_full && (q.items.is_empty() || *budget == 0) && self.due_report(&q).is_some();
        if !report_only
            && (*budget == 0
                || q.items.is_empty()
                || (require_full && q.items.len() < self.cfg.max_batch_size))
        {
            return None;
        }
        let mut items = Vec::with_capacity(q.items.len().min(self.cfg.max_batch_size).min(*budget));
        let mut bytes = 0;
        while !report_only && items.len() < self.cfg.max_batch_size && items.len() < *budget {
            let Some(next) = q.items.front() else { break };
            if !items.is_empty() && bytes + next.len() > self.cfg.max_batch_bytes {
                break;
            }
            bytes += next.len();
            if let Some(it) = q.items.pop_front() {
                items.push(it);
            }
        }
        *budget -= items.len();
        q.bytes -= bytes;
        self.note_queued(&q);
        q.inflight_items += items.len();
        q.inflight_bytes += bytes;
        let report = self.due_report(&q);
        if report.is_some() {
            q.report_inflight = true;
        }
        drop(q);
        if let Some(counts) = report {
            items.push((self.report)(&DropCounts::from_array(counts)));
        }
        Item::stamp_all(&mut items);
        Some(Taken {
            items,
            bytes,
            report,
        })
    }

    /// Sends one taken batch with the retry policy and settles its accounting.
    /// Returns `false` when the batch went back to the queue (the round should stop).
    async fn send(&self, taken: Taken) -> bool {
        let Taken {
            items,
            bytes,
            report,
        } = taken;
        let n = items.len() - report.is_some() as usize;
        let batch = Batch::new(items);
        let outcome = transport::deliver(&self.transports, &self.retry, batch.clone()).await;
        self.settle(batch, n, bytes, report, outcome)
    }

    /// Settles a batch that was in flight (`n` queue items of `bytes` bytes, plus the report
    /// item when `report` is set): counts it delivered or dropped, or puts its items back at
    /// the front of the queue, in order. Returns `false` when they went back.
    fn settle(
        &self,
        batch: Batch,
        n: usize,
        bytes: usize,
        report: Option<[u64; 5]>,
        outcome: Outcome,
    ) -> bool {
        let mut q = lock(&self.queue);
        q.inflight_items -= n;
        q.inflight_bytes -= bytes;
        if report.is_some() {
            q.report_inflight = false;
        }
        let requeued = match outcome {
            Outcome::Delivered | Outcome::PartlyFailed(_) => {
                drop(q);
                if let Some(counts) = report {
                    for (i, c) in counts.iter().enumerate() {
                        self.unreported[i].fetch_sub(*c, Ordering::Relaxed);
                    }
                }
                if let Outcome::PartlyFailed(k) = outcome {
                    self.batches_failed.fetch_add(k as u64, Ordering::Relaxed);
                }
                self.release(n, bytes);
                self.delivered.fetch_add(n as u64, Ordering::Relaxed);
                self.batches_sent.fetch_add(1, Ordering::Relaxed);
                self.last_flush_ms
                    .store(rt::now_unix_ms().max(1), Ordering::Relaxed);
                if let Ok(items) = batch.try_into_items() {
                    crate::data::item::recycle(items);
                }
                false
            }
            Outcome::GaveUp => {
                drop(q);
                self.release(n, bytes);
                self.batches_failed.fetch_add(1, Ordering::Relaxed);
                self.drop_items(DropReason::DeliveryFailed, n as u64);
                false
            }
            Outcome::Retry => {
                // Put the items back at the front, in order, without the report (its counts
                // are still unreported and travel with a later batch).
                let mut items = batch.into_items();
                items.truncate(n);
                for it in items.into_iter().rev() {
                    q.items.push_front(it);
                }
                q.bytes += bytes;
                self.note_queued(&q);
                drop(q);
                self.requeues.fetch_add(1, Ordering::AcqRel);
                self.batches_failed.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        self.done.notify();
        !requeued
    }

    /// Sends batches until the queue is empty (or only a partial batch waits when
    /// `require_full`), at most `budget` items, `max_concurrent_sends` at a time.
    /// Returns `false` if a batch had to be requeued.
    async fn drain(&self, require_full: bool, budget: usize) -> bool {
        let mut budget = budget;
        rt::run_bounded(self.cfg.max_concurrent_sends, || {
            self.take(require_full, &mut budget)
                .map(|taken| self.send(taken))
        })
        .await
    }

    /// Like [`Pipeline::drain`], also returning how many batches were taken.
    async fn drain_counted(&self, require_full: bool, budget: usize) -> (bool, usize) {
        let mut budget = budget;
        let mut taken = 0;
        let ok = rt::run_bounded(self.cfg.max_concurrent_sends, || {
            let next = self.take(require_full, &mut budget)?;
            taken += 1;
            Some(self.send(next))
        })
        .await;
        (ok, taken)
    }

    /// Items queued (lanes included) or in flight.
    fn pending(&self) -> usize {
        let (queued, inflight) = {
            let q = lock(&self.queue);
            (q.items.len(), q.inflight_items)
        };
        queued + inflight + self.staged().0
    }

    /// Items and bytes in the lanes, and the items accepted in all (read under the lanes'
    /// lock, under which `gather` moves the count of a lane it lets go).
    fn staged(&self) -> (usize, usize, u64) {
        let lanes = lock(&self.lanes);
        let mut staged = (0, 0, self.accepted.load(Ordering::Relaxed));
        if !rt::CAN_BLOCK {
            return staged;
        }
        for lane in lanes.iter() {
            let (items, bytes, accepted) = lane.counts();
            staged.0 += items;
            staged.1 += bytes;
            staged.2 += accepted;
        }
        staged
    }

    /// Emits the collectors' items and delivers everything queued now; waits for batches
    /// already in flight. Each batch gets one run of the retry policy.
    pub(crate) async fn flush(&self, final_: bool) -> Result<(), FlushError> {
        self.collect(final_);
        let requeues_before = self.requeues.load(Ordering::Acquire);
        self.gather();
        let budget = lock(&self.queue).items.len();
        let ok = self.drain(false, budget).await;
        // Wait for batches the background task has in flight.
        loop {
            let seen = self.done.generation();
            if lock(&self.queue).inflight_items == 0 {
                break;
            }
            self.done.wait(seen).await;
        }
        let left = self.pending();
        // A batch of the background task that went back to the queue meanwhile counts too;
        // items merely recorded while flushing do not make the flush fail.
        if ok && self.requeues.load(Ordering::Acquire) == requeues_before {
            Ok(())
        } else {
            Err(FlushError::Pending { items: left.max(1) })
        }
    }

    /// The ticker task: on each interval, even when nobody records, runs the collectors and
    /// asks the flusher to send everything queued.
    pub(crate) async fn run_ticker(self: Arc<Self>) {
        loop {
            let seen = self.work.generation();
            let sleep = std::pin::pin!(rt::sleep(self.cfg.flush_interval));
            // Wake early only to notice shutdown.
            if let Either::Right(_) = select(sleep, std::pin::pin!(self.closed_wait(seen))).await {
                return;
            }
            if self.is_closed() {
                return;
            }
            self.collect(false);
            self.flush_all.store(true, Ordering::Release);
            self.work.notify();
        }
    }

    async fn closed_wait(&self, mut seen: u64) {
        while !self.is_closed() {
            self.work.wait(seen).await;
            seen = self.work.generation();
        }
    }

    /// What the flusher is asked to do, taken: (send everything, a full batch waits); `None`
    /// once the pipeline is closed.
    #[inline]
    fn requests(&self) -> Option<(bool, bool)> {
        if self.is_closed() {
            return None;
        }
        let all = self.flush_all.swap(false, Ordering::AcqRel);
        let full = self.wake_pending.swap(false, Ordering::AcqRel);
        Some((all, full))
    }

    /// The flusher task: sends full batches as soon as they wait, and everything queued when
    /// the ticker asks.
    pub(crate) async fn run_flusher(self: Arc<Self>) {
        loop {
            let seen = self.work.generation();
            let Some((all, full)) = self.requests() else {
                return;
            };
            if all {
                self.drain(false, usize::MAX).await;
            } else if full {
                self.drain(true, usize::MAX).await;
            } else {
                self.work.wait(seen).await;
            }
        }
    }

    /// The flusher task natively: like [`Pipeline::run_flusher`], but once woken for a full
    /// batch it keeps looking every [`POLL_INTERVAL`] while batches keep filling, so a busy
    /// recording thread does not pay for waking it each time (a system call, and on a
    /// virtual machine an interrupt to the other core).
    pub(crate) async fn run_polling_flusher(self: Arc<Self>) {
        let mut idle_polls = 0;
        loop {
            let seen = self.work.generation();
            let Some((all, full)) = self.requests() else {
                return;
            };
            if all {
                self.drain(false, usize::MAX).await;
            } else if full || self.polling.load(Ordering::SeqCst) {
                let (_, taken) = self.drain_counted(true, usize::MAX).await;
                idle_polls = if taken > 0 { 0 } else { idle_polls + 1 };
                if idle_polls >= IDLE_POLLS {
                    // Back to being woken. A batch that filled meanwhile is looked for once
                    // more, since its recording thread saw `polling` still set.
                    self.polling.store(false, Ordering::SeqCst);
                    idle_polls = 0;
                    self.drain(true, usize::MAX).await;
                    continue;
                }
                self.polling.store(true, Ordering::SeqCst);
                let pause = std::pin::pin!(rt::sleep(POLL_INTERVAL));
                select(pause, std::pin::pin!(self.work.wait(seen))).await;
            } else {
                self.work.wait(seen).await;
            }
        }
    }

    /// Stops accepting items and stops the background task (after its current round).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.work.notify();
    }

    /// Emits everything (open aggregates included), delivers it, then closes.
    pub(crate) async fn shutdown(&self) -> Result<(), FlushError> {
        let r = self.flush(true).await;
        self.close();
        for t in &self.transports {
            t.shutdown().await;
        }
        r
    }

    pub(crate) fn stats(&self) -> Stats {
        let (queued_items, queued_bytes, inflight_items) = {
            let q = lock(&self.queue);
            (q.items.len(), q.bytes, q.inflight_items)
        };
        let (staged_items, staged_bytes, accepted) = self.staged();
        let last = self.last_flush_ms.load(Ordering::Relaxed);
        Stats {
            queued_items: queued_items + staged_items,
            queued_bytes: queued_bytes + staged_bytes,
            inflight_items,
            accepted,
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: DropCounts::from_array(std::array::from_fn(|i| {
                self.dropped_total[i].load(Ordering::Relaxed)
            })),
            batches_sent: self.batches_sent.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
            last_flush_unix_ms: (last > 0).then_some(last),
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if !rt::CAN_BLOCK {
            return;
        }
        for lane in lock(&self.lanes).iter() {
            lane.orphan();
        }
    }
}

/// Items taken out of the queue for a page-exit request (see [`Pipeline::take_for_exit`]).
/// They count as in flight until [`Pipeline::settle_exit`] settles them.
#[doc(hidden)]
#[derive(Debug)]
pub struct ExitBatch {
    batch: Batch,
    items: usize,
    bytes: usize,
    report: Option<[u64; 5]>,
}

impl ExitBatch {
    /// The batch to send (the queued items, then a `client_report` item when one is due).
    pub fn batch(&self) -> &Batch {
        &self.batch
    }
}

impl Pipeline {
    /// Browser page exit: synchronously takes queued items, oldest first, whose encoded
    /// bytes plus one separator each total at most `max_bytes` (a `client_report` item is
    /// added when drop counts are due and it fits). `None` when nothing is queued or the
    /// oldest item alone is larger. Settle the result with [`Pipeline::settle_exit`].
    pub(crate) fn take_for_exit(&self, max_bytes: usize) -> Option<ExitBatch> {
        self.gather();
        let mut q = lock(&self.queue);
        let mut bytes = 0;
        let mut n = 0;
        for it in q.items.iter() {
            if bytes + it.len() >= max_bytes || n >= self.cfg.max_batch_size {
                break;
            }
            bytes += it.len() + 1;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        // Popped one by one: a `Drain` would bring its own drop code into the wasm.
        let mut items: Vec<Item> = Vec::with_capacity(n + 1);
        while items.len() < n {
            match q.items.pop_front() {
                Some(it) => items.push(it),
                None => break,
            }
        }
        let item_bytes: usize = items.iter().map(Item::len).sum();
        q.bytes -= item_bytes;
        self.note_queued(&q);
        q.inflight_items += n;
        q.inflight_bytes += item_bytes;
        let mut report = None;
        if let Some(counts) = self.due_report(&q) {
            let item = (self.report)(&DropCounts::from_array(counts));
            if bytes + item.len() < max_bytes {
                q.report_inflight = true;
                report = Some(counts);
                items.push(item);
            }
        }
        drop(q);
        Item::stamp_all(&mut items);
        Some(ExitBatch {
            batch: Batch::new(items),
            items: n,
            bytes: item_bytes,
            report,
        })
    }

    /// Settles a page-exit batch: counts it delivered, or puts its items back at the front
    /// of the queue (in order) for the next flush.
    pub(crate) fn settle_exit(&self, exit: ExitBatch, delivered: bool) {
        let outcome = if delivered {
            Outcome::Delivered
        } else {
            Outcome::Retry
        };
        self.settle(exit.batch, exit.items, exit.bytes, exit.report, outcome);
    }
}
