//! Two futures in one task, each polled only when a wake-up of its own came (or when a shared
//! signal changed). A plain `select!` polls both on every wake-up, and polling the idle
//! direction of a relay costs a socket-readiness check under tokio's waiter lock per relayed
//! message (BENCHMARKS.md, 9b).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// Which of the two finished first, with the other still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// The first future of the pair.
    A,
    /// The second future of the pair.
    B,
}

const A: u8 = 1;
const B: u8 = 2;

/// What both futures' wakers share: which of them were woken since the last poll, and the
/// task's waker.
#[derive(Debug, Default)]
struct Woken {
    bits: AtomicU8,
    task: AtomicWaker,
}

struct Side {
    woken: Arc<Woken>,
    bit: u8,
}

impl Wake for Side {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.bits.fetch_or(self.bit, Ordering::AcqRel);
        self.woken.task.wake();
    }
}

/// Polls `a` and `b` until one is ready. Each is polled with a waker of its own, and only
/// after that waker was woken, or whenever `signal()` returns a value other than at the last
/// poll: whoever changes the signal must wake the task or one of the pair, and both are then
/// polled (the relay's closing flag).
pub async fn first_of<FA, FB>(
    mut a: Pin<&mut FA>,
    mut b: Pin<&mut FB>,
    signal: impl Fn() -> u64,
) -> First
where
    FA: Future<Output = ()>,
    FB: Future<Output = ()>,
{
    let woken = Arc::new(Woken::default());
    let waker_a = Waker::from(Arc::new(Side {
        woken: Arc::clone(&woken),
        bit: A,
    }));
    let waker_b = Waker::from(Arc::new(Side {
        woken: Arc::clone(&woken),
        bit: B,
    }));
    // Both are polled first.
    woken.bits.store(A | B, Ordering::Release);
    let mut last = signal();
    std::future::poll_fn(move |cx| {
        woken.task.register(cx.waker());
        let mut bits = woken.bits.swap(0, Ordering::AcqRel);
        let now = signal();
        if now != last {
            last = now;
            bits = A | B;
        }
        if bits & A != 0
            && a.as_mut()
                .poll(&mut Context::from_waker(&waker_a))
                .is_ready()
        {
            return Poll::Ready(First::A);
        }
        if bits & B != 0
            && b.as_mut()
                .poll(&mut Context::from_waker(&waker_b))
                .is_ready()
        {
            return Poll::Ready(First::B);
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::{first_of, First};
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Poll;

    /// A future that counts its polls and is ready once `ready` is set.
    fn counted<'a>(
        polls: &'a AtomicUsize,
        ready: &'a tokio::sync::Notify,
    ) -> impl Future<Output = ()> + 'a {
        let mut wait = Box::pin(ready.notified());
        std::future::poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            wait.as_mut().poll(cx)
        })
    }

    #[tokio::test]
    async fn only_the_woken_side_is_polled_and_its_end_is_reported() {
        let (polls_a, polls_b) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let (ready_a, ready_b) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
        let a = counted(&polls_a, &ready_a);
        let b = counted(&polls_b, &ready_b);
        tokio::pin!(a, b);
        let pair = first_of(a, b, || 0);
        tokio::pin!(pair);
        assert!(futures_util::poll!(pair.as_mut()).is_pending());
        assert_eq!(polls_a.load(Ordering::Relaxed), 1);
        assert_eq!(polls_b.load(Ordering::Relaxed), 1);
        ready_b.notify_one();
        assert_eq!(pair.await, First::B);
        assert_eq!(polls_a.load(Ordering::Relaxed), 1, "a was not woken");
        assert_eq!(polls_b.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_changed_signal_polls_both() {
        let polls_a = AtomicUsize::new(0);
        let signal = Arc::new(AtomicU64::new(0));
        let ready_a = tokio::sync::Notify::new();
        let a = counted(&polls_a, &ready_a);
        let b = {
            let signal = Arc::clone(&signal);
            std::future::poll_fn(move |cx| {
                // b changes the signal and wakes only itself, as a pump deciding a closing.
                if signal.fetch_add(1, Ordering::AcqRel) == 0 {
                    cx.waker().wake_by_ref();
                }
                Poll::<()>::Pending
            })
        };
        tokio::pin!(a, b);
        let pair = first_of(a, b, || signal.load(Ordering::Acquire));
        tokio::pin!(pair);
        assert!(futures_util::poll!(pair.as_mut()).is_pending());
        assert!(futures_util::poll!(pair.as_mut()).is_pending());
        assert_eq!(
            polls_a.load(Ordering::Relaxed),
            2,
            "the signal's change polled a too"
        );
    }
}
