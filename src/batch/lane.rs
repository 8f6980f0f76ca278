//! Lanes (natively): each recording thread stages its items in a lane of its own per
//! pipeline. A lane is a block of slots that only its thread fills, so adding takes no lock
//! and no atomic read-modify-write: one store publishes the item. A full block (at most
//! [`BLOCK`] items) is set aside in the lane, under the lane's lock, and the thread goes on in
//! an empty one; its items stay where they were written. The flusher gathers the set-aside
//! blocks and the current block's items whenever it takes a batch, so nothing waits in a lane
//! longer than the next flush, and each thread's items keep their order.
//!
//! On a two-core machine one shared lock per item made a recording thread wait for cache
//! lines the flusher held most of the time. Handing over a group by copying its items into
//! the shared queue, as lanes first did, still cost the recording thread the copy, the
//! queue's lock (and, when the flusher held it, a sleep) once per group; setting a block
//! aside costs a pointer swap. See the README's Performance section.

use std::cell::{RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::data::Item;

/// Most items a block holds; it is set aside at this many, or fewer (see `limit` in
/// [`Lane::push`]).
pub(super) const BLOCK: usize = 64;
/// Most emptied blocks a lane keeps for reuse (3 KiB each). A busy thread fills a few tens
/// between two gatherings; freeing them on the flusher's thread and allocating new ones on
/// the recording thread made the two wait for each other's malloc arena.
const SPARE_MAX: usize = 32;

/// A value on cache lines of its own (two, since neighbouring lines are fetched in pairs).
#[derive(Default)]
#[repr(align(128))]
pub(super) struct Aligned<T>(pub(super) T);

impl<T> std::ops::Deref for Aligned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Slots for items; which of them hold one is kept beside it (see [`Lane`]).
struct Block([UnsafeCell<MaybeUninit<Item>>; BLOCK]);

impl Block {
    fn new() -> Box<Block> {
        Box::new(Block(std::array::from_fn(|_| {
            UnsafeCell::new(MaybeUninit::uninit())
        })))
    }

    /// Takes the item out of slot `k`.
    ///
    /// # Safety
    /// The slot holds an item (written and visible to this thread) that nothing else reads
    /// or takes, and it is not read again until written again.
    unsafe fn take(&self, k: usize) -> Item {
        // SAFETY: as the caller promises.
        unsafe { (*self.0[k].get()).assume_init_read() }
    }

    /// # Safety
    /// As [`Block::take`], but the item is only looked at.
    unsafe fn peek(&self, k: usize) -> &Item {
        // SAFETY: as the caller promises.
        unsafe { (*self.0[k].get()).assume_init_ref() }
    }
}

/// What only the owning thread writes.
#[derive(Default)]
struct Producer {
    /// Items written into the current block; the next one goes to this slot.
    tail: AtomicUsize,
    /// Items accepted through this lane.
    accepted: AtomicU64,
}

/// What those who take items out share, under the lane's lock.
struct Consumer {
    /// Items of the current block already taken out.
    head: usize,
    /// Blocks set aside, oldest first.
    full: VecDeque<SetAside>,
    /// Emptied blocks, kept for reuse (at most [`SPARE_MAX`]). Boxed: a block changes
    /// places as a pointer (it becomes `current`), never as 3 KiB copied.
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Block>>,
}

/// A block set aside: the slots that still hold items, and those items' bytes (so counting
/// what a lane holds does not read every item under the lock).
struct SetAside {
    block: Box<Block>,
    held: std::ops::Range<usize>,
    bytes: usize,
}

/// One thread's staged items for one pipeline.
pub(super) struct Lane {
    producer: Aligned<Producer>,
    /// The block being filled; replaced only by the owning thread, under `consumer`.
    current: AtomicPtr<Block>,
    consumer: Mutex<Consumer>,
    /// Set when the pipeline is gone, so the thread can forget the lane.
    orphaned: AtomicBool,
}

// SAFETY: a slot of the current block is written only by the owning thread, and only at
// `tail` or after (free); it is read only under `consumer`, and only before `tail` (published
// by the Release store of `tail`) and from `head` on (not taken yet). A set-aside block is no
// longer written; it is read under `consumer` while in the lane, or by the one consumer that
// took it out of the lane under `consumer`. The current block is replaced only under
// `consumer`, with `tail` and `head` reset there. No slot is ever accessed from two threads
// at once.
unsafe impl Sync for Lane {}
// SAFETY: the items are `Send`; see above for the slots.
unsafe impl Send for Lane {}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            producer: Aligned::default(),
            current: AtomicPtr::new(Box::into_raw(Block::new())),
            consumer: Mutex::new(Consumer {
                head: 0,
                full: VecDeque::new(),
                spare: Vec::new(),
            }),
            orphaned: AtomicBool::new(false),
        }
    }
}

impl Lane {
    fn consumer(&self) -> MutexGuard<'_, Consumer> {
        self.consumer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an item. Only the owning thread may call it (see [`stage`]). When the block then
    /// holds `limit` items (at most [`BLOCK`]), it is set aside: its items are added to
    /// `set_aside` (under the lane's lock), whose new total is returned.
    #[inline]
    fn push(&self, item: Item, limit: usize, set_aside: &AtomicUsize) -> Option<usize> {
        let limit = limit.clamp(1, BLOCK);
        // A full block is set aside as it fills (below), so there is always a free slot.
        let tail = self.producer.tail.load(Ordering::Relaxed);
        debug_assert!(tail < limit);
        let block = self.current.load(Ordering::Relaxed);
        // SAFETY: only this thread writes slots or replaces the block, and slot `tail` is
        // free (see `impl Sync`).
        unsafe { (*(*block).0[tail].get()).write(item) };
        self.producer.tail.store(tail + 1, Ordering::Release);
        // The slots' lines were last read on the flusher's core: ask for them a few items
        // ahead, so the store to a slot does not wait for its line (the next atomic
        // instruction on this thread would wait for that store).
        // SAFETY: the index is inside the block; only the address is taken.
        crate::rt::prefetch_write(unsafe { (*block).0[(tail + 4).min(BLOCK - 1)].get() }.cast());
        let accepted = &self.producer.accepted;
        accepted.store(accepted.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        (tail + 1 >= limit).then(|| self.set_aside(tail + 1, set_aside))
    }

    /// Sets the current block, which holds `written` items, aside and starts an empty one.
    #[cold]
    #[inline(never)]
    fn set_aside(&self, written: usize, set_aside: &AtomicUsize) -> usize {
        let mut c = self.consumer();
        let fresh = c.spare.pop().unwrap_or_else(Block::new);
        for line in 0..4 {
            crate::rt::prefetch_write(fresh.0[line * 64 / size_of::<Item>()].get().cast());
        }
        let old = self.current.swap(Box::into_raw(fresh), Ordering::Relaxed);
        self.producer.tail.store(0, Ordering::Relaxed);
        let start = std::mem::take(&mut c.head);
        // SAFETY: `old` came from `Box::into_raw` and is no longer the current block.
        let old = unsafe { Box::from_raw(old) };
        let n = written.saturating_sub(start);
        if n == 0 {
            if c.spare.len() < SPARE_MAX {
                c.spare.push(old);
            }
        } else {
            // SAFETY: slots `start..written` hold the items this thread wrote and the
            // consumer has not taken (it takes only under `consumer`, held here).
            let bytes = (start..written).map(|k| unsafe { old.peek(k) }.len()).sum();
            c.full.push_back(SetAside {
                block: old,
                held: start..written,
                bytes,
            });
        }
        set_aside.fetch_add(n, Ordering::Relaxed) + n
    }

    /// Moves every held item, oldest first, to the end of `queue`. Returns their bytes, and
    /// how many of them came from set-aside blocks (to be taken off `set_aside`'s count).
    ///
    /// The lane's lock is held only to take the set-aside blocks and the current block's
    /// items: the owning thread waits for it when it sets a block aside.
    pub(super) fn drain_into(&self, queue: &mut VecDeque<Item>) -> (usize, usize) {
        let mut current = Vec::new();
        let full = {
            let mut c = self.consumer();
            // Acquire: the producer's writes of the published slots happen before these reads.
            let tail = self.producer.tail.load(Ordering::Acquire);
            let block = self.current.load(Ordering::Relaxed);
            current.reserve(tail.saturating_sub(c.head));
            for k in c.head..tail {
                // SAFETY: the slot is before `tail` and from `head` on: written, published,
                // and not taken yet; `head` moves past it below, under `consumer`.
                current.push(unsafe { (*block).take(k) });
            }
            c.head = c.head.max(tail);
            std::mem::take(&mut c.full)
        };
        let mut bytes = 0;
        let mut from_blocks = 0;
        let mut emptied = Vec::with_capacity(full.len());
        for SetAside { block, held, .. } in full {
            from_blocks += held.len();
            for k in held {
                // SAFETY: the block was set aside with these slots holding items, and it was
                // taken off the lane above, so each is taken once, here.
                let item = unsafe { block.take(k) };
                bytes += item.len();
                queue.push_back(item);
            }
            emptied.push(block);
        }
        for item in current {
            bytes += item.len();
            queue.push_back(item);
        }
        if !emptied.is_empty() {
            let mut c = self.consumer();
            let room = SPARE_MAX.saturating_sub(c.spare.len());
            let keep = emptied.len().min(room);
            c.spare.extend(emptied.drain(..keep));
        }
        // What is left is freed here, after the lock.
        (bytes, from_blocks)
    }

    /// Items and bytes held now, and items accepted so far.
    pub(super) fn counts(&self) -> (usize, usize, u64) {
        let c = self.consumer();
        let tail = self.producer.tail.load(Ordering::Acquire);
        let current = self.current.load(Ordering::Relaxed);
        let mut items = 0;
        let mut bytes = 0;
        for s in &c.full {
            items += s.held.len();
            bytes += s.bytes;
        }
        for k in c.head..tail {
            // SAFETY: as in `drain_into`; the item is only looked at.
            bytes += unsafe { (*current).peek(k) }.len();
            items += 1;
        }
        (items, bytes, self.accepted())
    }

    /// Items accepted through this lane.
    pub(super) fn accepted(&self) -> u64 {
        self.producer.accepted.load(Ordering::Relaxed)
    }

    /// Tells the owning thread the pipeline is gone.
    pub(super) fn orphan(&self) {
        self.orphaned.store(true, Ordering::Relaxed);
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if !crate::rt::CAN_BLOCK {
            // No lane is ever made there; this keeps the code below out of the wasm.
            return;
        }
        let tail = *self.producer.0.tail.get_mut();
        let c = self.consumer.get_mut().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `current` came from `Box::into_raw`, and nothing else refers to the lane.
        let current = unsafe { Box::from_raw(*self.current.get_mut()) };
        let head = c.head;
        let held = c
            .full
            .drain(..)
            .map(|s| (s.block, s.held))
            .chain(std::iter::once((current, head..tail)));
        for (block, held) in held {
            for k in held {
                // SAFETY: these slots hold items no one took.
                drop(unsafe { block.take(k) });
            }
        }
    }
}

thread_local! {
    static LANES: RefCell<Vec<(u64, Arc<Lane>)>> = const { RefCell::new(Vec::new()) };
}

/// Adds an item to this thread's lane for the pipeline numbered `pipeline`, making the lane
/// (and passing it to `register`) the first time. A block is set aside at `limit` items and
/// counted in `set_aside`; `on_set_aside` then gets the new count. Returns the item when this
/// thread cannot use its lanes (it is exiting): it then goes to the shared queue.
#[inline]
pub(super) fn stage(
    pipeline: u64,
    item: Item,
    limit: usize,
    set_aside: &AtomicUsize,
    register: impl FnOnce(&Arc<Lane>),
    on_set_aside: impl FnOnce(usize),
) -> Option<Item> {
    let mut item = Some(item);
    let mut total = None;
    let _ = LANES.try_with(|cell| {
        let Ok(mut lanes) = cell.try_borrow_mut() else {
            return;
        };
        let at = match lanes.iter().position(|(p, _)| *p == pipeline) {
            Some(at) => at,
            None => {
                lanes.retain(|(_, lane)| !lane.orphaned.load(Ordering::Relaxed));
                let lane = Arc::new(Lane::default());
                register(&lane);
                lanes.push((pipeline, lane));
                lanes.len() - 1
            }
        };
        if let Some(it) = item.take() {
            total = lanes[at].1.push(it, limit, set_aside);
        }
    });
    if let Some(total) = total {
        on_set_aside(total);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u64) -> Item {
        let mut w = Item::writer(64, 0, "behavioral", "e");
        w.field("n").push_str(&n.to_string());
        w.finish()
    }

    fn number(item: &Item) -> u64 {
        item.to_value()["n"].as_u64().unwrap_or(u64::MAX)
    }

    #[test]
    fn a_lane_keeps_order_counts_and_bytes_across_many_blocks() {
        let lane = Lane::default();
        let set_aside = AtomicUsize::new(0);
        let mut queue = VecDeque::new();
        let mut next = 0;
        for round in 0..50 {
            // From part of a block to several blocks, with what was drained before mid-block.
            let n = 1 + (round * 37) % (3 * BLOCK);
            let mut expected_bytes = 0;
            for _ in 0..n {
                let it = item(next);
                expected_bytes += it.len();
                lane.push(it, BLOCK, &set_aside);
                next += 1;
            }
            let (items, bytes, _) = lane.counts();
            assert_eq!((items, bytes), (n, expected_bytes));
            let before = set_aside.load(Ordering::Relaxed);
            let (bytes, from_blocks) = lane.drain_into(&mut queue);
            assert_eq!(bytes, expected_bytes);
            assert_eq!(before, from_blocks, "set-aside items are counted once each");
            set_aside.fetch_sub(from_blocks, Ordering::Relaxed);
            assert_eq!(lane.counts().0, 0);
        }
        assert_eq!(lane.accepted(), next);
        let order: Vec<u64> = queue.iter().map(number).collect();
        assert_eq!(order, (0..next).collect::<Vec<_>>());
    }

    #[test]
    fn a_block_is_set_aside_when_it_reaches_the_limit() {
        let lane = Lane::default();
        let set_aside = AtomicUsize::new(0);
        for n in 0..9 {
            assert_eq!(lane.push(item(n), 10, &set_aside), None);
        }
        assert_eq!(lane.push(item(9), 10, &set_aside), Some(10));
        assert_eq!(lane.push(item(10), 10, &set_aside), None);
        // Items taken out of the current block before it fills are not counted again.
        let mut queue = VecDeque::new();
        assert_eq!(lane.drain_into(&mut queue).1, 10);
        for n in 11..20 {
            lane.push(item(n), 10, &set_aside);
        }
        assert_eq!(set_aside.load(Ordering::Relaxed), 10 + 9);
        assert_eq!(lane.counts().0, 9);
        assert_eq!(lane.drain_into(&mut queue).1, 9);
        assert!(queue.iter().map(number).eq(0..20));
    }

    #[test]
    fn one_producer_and_a_concurrent_consumer_lose_nothing() {
        const N: u64 = 200_000;
        let lane = Arc::new(Lane::default());
        let set_aside = Arc::new(AtomicUsize::new(0));
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let producer = {
            let (lane, set_aside) = (lane.clone(), set_aside.clone());
            std::thread::spawn(move || {
                for n in 0..N {
                    lane.push(item(n), BLOCK, &set_aside);
                }
            })
        };
        // Meanwhile take items out the way the flusher does, until the producer is done.
        let drain = || {
            let (_, from_blocks) = lane.drain_into(&mut queue.lock().unwrap());
            set_aside.fetch_sub(from_blocks, Ordering::Relaxed);
        };
        while !producer.is_finished() {
            drain();
            std::thread::yield_now();
        }
        producer.join().unwrap();
        drain();
        assert_eq!(set_aside.load(Ordering::Relaxed), 0);
        let queue = queue.lock().unwrap();
        assert_eq!(queue.len() as u64, N);
        assert!(
            queue.iter().map(number).eq(0..N),
            "every item once, in order"
        );
    }
}
