//! Tiny executor-agnostic wake-ups for the batching core.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// A broadcast signal: `notify` wakes every waiter that started waiting before it.
#[derive(Default)]
pub(crate) struct Signal {
    generation: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

impl Signal {
    /// The current generation; pass it to [`Signal::wait`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Wakes every waiter.
    pub(crate) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let wakers = match self.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Resolves once the generation moves past `seen`.
    pub(crate) fn wait(&self, seen: u64) -> Wait<'_> {
        Wait { signal: self, seen }
    }
}

pub(crate) struct Wait<'a> {
    signal: &'a Signal,
    seen: u64,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.generation() != self.seen {
            return Poll::Ready(());
        }
        if let Ok(mut w) = self.signal.wakers.lock() {
            if !w.iter().any(|x| x.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
        }
        if self.signal.generation() != self.seen {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
