//! Lanes (natively): each recording thread stages its items in a lane of its own per
//! pipeline, a single-producer ring that it hands to the shared queue once it holds a group
//! (at most [`CAPACITY`] items). The flusher gathers what the lanes hold whenever it takes a
//! batch, so nothing waits in a lane longer than the next flush.
//!
//! Only the owning thread adds to a lane, so adding takes no lock and no atomic
//! read-modify-write: one store publishes the item. A lock serialises only those that take
//! items out (the flusher, or the owner handing over a group), and a hand-over holds it
//! while it appends to the shared queue, so each thread's items keep their order.
//!
//! On a two-core machine one shared lock per item made a recording thread wait for cache
//! lines the flusher held most of the time; see the README's Performance section.

use std::cell::{RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::data::Item;

/// Most items a lane holds; it hands them over at this many, or fewer (see `limit` in
/// [`Lane::push`]).
pub(super) const CAPACITY: usize = 64;

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

/// What only the owning thread writes.
#[derive(Default)]
struct Producer {
    /// Items ever added; the next one goes to slot `tail % CAPACITY`.
    tail: AtomicUsize,
    /// Items accepted through this lane.
    accepted: AtomicU64,
}

/// One thread's staged items for one pipeline.
pub(super) struct Lane {
    producer: Aligned<Producer>,
    /// Items ever taken out; written only under `consumer`.
    head: Aligned<AtomicUsize>,
    consumer: Mutex<()>,
    slots: Box<[UnsafeCell<MaybeUninit<Item>>]>,
    /// Set when the pipeline is gone, so the thread can forget the lane.
    orphaned: AtomicBool,
}

// SAFETY: a slot is written only by the owning thread, and only while it is outside
// `head..tail` (free); it is read only by a consumer holding `consumer`, and only while it is
// inside `head..tail` (published by the Release store of `tail`, given back by the Release
// store of `head`). No slot is ever accessed from two threads at once.
unsafe impl Sync for Lane {}
// SAFETY: the items are `Send`; see above for the slots.
unsafe impl Send for Lane {}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            producer: Aligned::default(),
            head: Aligned::default(),
            consumer: Mutex::new(()),
            slots: (0..CAPACITY)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            orphaned: AtomicBool::new(false),
        }
    }
}

impl Lane {
    /// Adds an item. Only the owning thread may call it (see [`stage`]). Returns how many
    /// items the lane holds now, or the item back when it already holds `limit` (at most
    /// [`CAPACITY`]).
    #[inline]
    fn push(&self, item: Item, limit: usize) -> Result<usize, Item> {
        let tail = self.producer.tail.load(Ordering::Relaxed);
        // Acquire: a consumer's reads of the slots it freed happen before they are reused.
        let head = self.head.load(Ordering::Acquire);
        let held = tail.wrapping_sub(head);
        if held >= limit.min(CAPACITY) {
            return Err(item);
        }
        let slot = &self.slots[tail % CAPACITY];
        // SAFETY: only this thread writes slots, and this one is free (outside `head..tail`,
        // since fewer than CAPACITY items are held), so no consumer reads it.
        unsafe { (*slot.get()).write(item) };
        self.producer
            .tail
            .store(tail.wrapping_add(1), Ordering::Release);
        let accepted = &self.producer.accepted;
        accepted.store(accepted.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        Ok(held + 1)
    }

    /// Moves every held item, oldest first, to the end of `queue`; returns their bytes.
    pub(super) fn drain_into(&self, queue: &mut VecDeque<Item>) -> usize {
        let _consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let head = self.head.load(Ordering::Relaxed);
        // Acquire: the producer's writes of the published slots happen before these reads.
        let tail = self.producer.tail.load(Ordering::Acquire);
        let n = tail.wrapping_sub(head);
        let mut bytes = 0;
        for k in 0..n {
            let slot = &self.slots[head.wrapping_add(k) % CAPACITY];
            // SAFETY: the slot is inside `head..tail`: written and published by the producer,
            // not touched by it until `head` moves past it, and read once, under `consumer`.
            let item = unsafe { (*slot.get()).assume_init_read() };
            bytes += item.len();
            queue.push_back(item);
        }
        self.head.store(tail, Ordering::Release);
        bytes
    }

    /// Items and bytes held now, and items accepted so far.
    pub(super) fn counts(&self) -> (usize, usize, u64) {
        let _consumer = self.consumer.lock().unwrap_or_else(|p| p.into_inner());
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.producer.tail.load(Ordering::Acquire);
        let n = tail.wrapping_sub(head);
        let bytes = (0..n)
            .map(|k| {
                let slot = &self.slots[head.wrapping_add(k) % CAPACITY];
                // SAFETY: as in `drain_into`; the item is only looked at.
                unsafe { (*slot.get()).assume_init_ref() }.len()
            })
            .sum();
        (n, bytes, self.accepted())
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
        let head = *self.head.0.get_mut();
        let tail = *self.producer.0.tail.get_mut();
        for k in 0..tail.wrapping_sub(head) {
            let slot = self.slots[head.wrapping_add(k) % CAPACITY].get_mut();
            // SAFETY: the slot is inside `head..tail`, so it holds an item no one took.
            unsafe { slot.assume_init_drop() };
        }
    }
}

thread_local! {
    static LANES: RefCell<Vec<(u64, Arc<Lane>)>> = const { RefCell::new(Vec::new()) };
}

/// Adds an item to this thread's lane for the pipeline numbered `pipeline`, making the lane
/// (and passing it to `register`) the first time. Once the lane holds `limit` items (the
/// group size), `hand_over` gets the lane to drain. Returns the item when this thread cannot
/// have lanes any more (it is exiting): it then goes to the shared queue.
#[inline]
pub(super) fn stage(
    pipeline: u64,
    item: Item,
    limit: usize,
    register: impl FnOnce(&Arc<Lane>),
    hand_over: impl FnOnce(&Lane),
) -> Option<Item> {
    let mut item = Some(item);
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
        let lane = &lanes[at].1;
        if let Some(it) = item.take() {
            match lane.push(it, limit) {
                Ok(held) if held >= limit => hand_over(lane),
                Ok(_) => {}
                // Only after a failed hand-over; the shared queue takes it.
                Err(it) => item = Some(it),
            }
        }
    });
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
    fn a_lane_keeps_order_and_bytes_across_many_wraps() {
        let lane = Lane::default();
        let mut queue = VecDeque::new();
        let mut expected_bytes = 0;
        let mut next = 0;
        for round in 0..50 {
            let n = 1 + round % CAPACITY;
            for _ in 0..n {
                let it = item(next);
                expected_bytes += it.len();
                assert!(lane.push(it, CAPACITY).is_ok());
                next += 1;
            }
            assert_eq!(lane.counts().0, n);
            assert_eq!(lane.drain_into(&mut queue), expected_bytes);
            expected_bytes = 0;
        }
        assert_eq!(lane.accepted(), next);
        let order: Vec<u64> = queue.iter().map(number).collect();
        assert_eq!(order, (0..next).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_lane_hands_the_item_back() {
        let lane = Lane::default();
        for n in 0..10 {
            assert!(lane.push(item(n), 10).is_ok());
        }
        let back = lane.push(item(10), 10).err().map(|it| number(&it));
        assert_eq!(back, Some(10));
        assert_eq!(lane.counts().0, 10);
    }

    #[test]
    fn one_producer_and_a_concurrent_consumer_lose_nothing() {
        const N: u64 = 200_000;
        let lane = Arc::new(Lane::default());
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let producer = {
            let (lane, queue) = (lane.clone(), queue.clone());
            std::thread::spawn(move || {
                for n in 0..N {
                    let mut it = item(n);
                    // Full: hand over as the pipeline does, then add the item.
                    while let Err(back) = lane.push(it, CAPACITY) {
                        lane.drain_into(&mut queue.lock().unwrap());
                        it = back;
                    }
                }
            })
        };
        // Meanwhile take items out the way the flusher does, until the producer is done.
        while !producer.is_finished() {
            lane.drain_into(&mut queue.lock().unwrap());
            std::thread::yield_now();
        }
        producer.join().unwrap();
        lane.drain_into(&mut queue.lock().unwrap());
        let queue = queue.lock().unwrap();
        assert_eq!(queue.len() as u64, N);
        assert!(
            queue.iter().map(number).eq(0..N),
            "every item once, in order"
        );
    }
}
