//! Lanes (natively): each pipeline has a few lanes, and each recording thread stages its items
//! in one of them (picked by the thread's number) and hands them to the shared queue in groups
//! of [`HANDOFF`].
//!
//! A recording call then takes a lock that, unless two threads share the lane, no other core
//! touches except when the flusher gathers, and the shared queue's lock is taken once per
//! group instead of once per item. With one shared lock per item, a recording thread on a
//! two-core machine spent much of its time waiting for cache lines the flusher held.
//!
//! Order is kept per thread: a lane is first in, first out, and hands its items over while
//! holding its own lock, so they enter the shared queue after the ones it handed over before.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::data::Item;

/// A lane hands its items to the shared queue once it holds this many.
pub(super) const HANDOFF: usize = 64;

/// Items staged by the threads that use one lane.
#[derive(Default)]
pub(super) struct Lane {
    pub(super) state: Aligned<Mutex<LaneState>>,
}

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

/// The inside of a [`Lane`].
#[derive(Default)]
pub(super) struct LaneState {
    pub(super) items: Vec<Item>,
    /// Encoded bytes of `items`.
    pub(super) bytes: usize,
    /// Items accepted through this lane.
    pub(super) accepted: u64,
}

/// The lanes of a new pipeline: twice the cores, a power of two between 4 and 64.
pub(super) fn lanes() -> Box<[Lane]> {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    let n = (2 * cores).next_power_of_two().clamp(4, 64);
    (0..n).map(|_| Lane::default()).collect()
}

static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's number: threads are numbered in the order they first record.
#[inline]
pub(super) fn thread_number() -> usize {
    THREAD
        .try_with(|t| {
            let mut n = t.get();
            if n == usize::MAX {
                n = THREADS.fetch_add(1, Ordering::Relaxed);
                t.set(n);
            }
            n
        })
        .unwrap_or(0)
}
