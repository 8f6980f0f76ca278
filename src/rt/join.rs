//! Two small executor-agnostic combinators for a handful of futures: waiting for all of them
//! ([`join_all`]) and running a lazily produced series with a bound on how many run at once
//! ([`run_bounded`]). They poll every unfinished future on each wake-up, which is what
//! `futures_util`'s `join_all` does for short lists too, in a fraction of the code of its
//! `FuturesUnordered`-based combinators (this matters for the size of the browser build).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

/// Waits for every future; their outputs in order.
pub async fn join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Runs the futures `next` produces, at most `limit` (at least one) at a time, starting the
/// next one as soon as one finishes. `next` is not called again once it has returned `None`,
/// or once a future has returned `false`; returns `false` if one did (after waiting for the
/// others that were running).
pub async fn run_bounded<F>(limit: usize, mut next: impl FnMut() -> Option<F>) -> bool
where
    F: Future<Output = bool>,
{
    let mut running: Vec<Pin<Box<F>>> = Vec::new();
    let mut more = true;
    let mut ok = true;
    poll_fn(|cx| loop {
        while more && running.len() < limit.max(1) {
            match next() {
                Some(f) => running.push(Box::pin(f)),
                None => more = false,
            }
        }
        let before = running.len();
        running.retain_mut(|f| match f.as_mut().poll(cx) {
            Poll::Ready(done) => {
                if !done {
                    ok = false;
                    more = false;
                }
                false
            }
            Poll::Pending => true,
        });
        if running.is_empty() && !more {
            return Poll::Ready(());
        }
        if running.len() == before {
            return Poll::Pending;
        }
    })
    .await;
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    struct NoWake;

    impl Wake for NoWake {
        fn wake(self: Arc<Self>) {}
    }

    /// A future that is pending `n` times (waking itself each time), then ready with `v`.
    struct After<T>(u32, Option<T>);

    impl<T: Unpin> Future for After<T> {
        type Output = T;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
            if self.0 == 0 {
                Poll::Ready(self.1.take().expect("polled after completion"))
            } else {
                self.0 -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let waker = Waker::from(Arc::new(NoWake));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn join_all_keeps_the_order_of_the_inputs() {
        let out = block_on(join_all([
            After(3, Some('a')),
            After(0, Some('b')),
            After(1, Some('c')),
        ]));
        assert_eq!(out, ['a', 'b', 'c']);
        assert!(block_on(join_all(Vec::<After<u8>>::new())).is_empty());
    }

    #[test]
    fn run_bounded_keeps_to_the_limit_and_stops_after_a_failure() {
        let running = Cell::new(0);
        let most = Cell::new(0);
        let started = Cell::new(0);
        let ok = block_on(run_bounded(2, || {
            if started.get() == 5 {
                return None;
            }
            started.set(started.get() + 1);
            running.set(running.get() + 1);
            most.set(most.get().max(running.get()));
            let (running, n) = (&running, started.get());
            Some(async move {
                After(n, Some(())).await;
                running.set(running.get() - 1);
                true
            })
        }));
        assert!(ok);
        assert_eq!((started.get(), most.get(), running.get()), (5, 2, 0));

        // One at a time: the second fails, so no third starts.
        let started = Cell::new(0);
        let ok = block_on(run_bounded(1, || {
            started.set(started.get() + 1);
            let n = started.get();
            Some(After(n, Some(n != 2)))
        }));
        assert!(!ok);
        assert_eq!(started.get(), 2);
    }
}
