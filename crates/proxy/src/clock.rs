//! The time as the request path reads it: once per wake-up of a connection's task rather than
//! at every timestamp a request takes.
//!
//! A request reads the time about ten times (its start and end, the upstream round trip, the
//! pool's idle times, the connection's idle and header timers); each read is a call into the
//! vDSO and a read of the time-stamp counter. As nginx caches its time once per turn of its
//! event loop, the proxy reads the clock once when a connection's task wakes ([`Scoped`]) and
//! every [`now`] during that poll returns that reading. A poll never waits, so the reading is
//! at most one poll's work old. Outside a scope (the admin server, tests, background work),
//! [`now`] reads the clock.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

thread_local! {
    /// The reading of the poll running on this thread, while inside a scope.
    static CACHED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The time now: the reading taken when the running scope began, or else the clock's.
pub fn now() -> Instant {
    CACHED.get().unwrap_or_else(Instant::now)
}

/// Runs `f` with [`now`] fixed to one reading of the clock.
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the outer scope's reading, also when `f` panics.
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CACHED.set(self.0);
        }
    }
    let _restore = Restore(CACHED.replace(Some(Instant::now())));
    f()
}

/// A future each of whose polls runs in a [`scope`].
#[derive(Debug)]
pub struct Scoped<F>(pub Pin<Box<F>>);

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        scope(|| self.0.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_holds_one_reading_and_ends_with_it() {
        let before = now();
        let (first, second) = scope(|| {
            let first = now();
            std::thread::sleep(std::time::Duration::from_millis(2));
            (first, now())
        });
        assert_eq!(first, second, "one reading for the whole scope");
        assert!(first >= before);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(now() > first, "outside the scope the clock is read again");
    }

    #[test]
    fn an_inner_scope_reads_again_and_restores_the_outer_reading() {
        scope(|| {
            let outer = now();
            std::thread::sleep(std::time::Duration::from_millis(2));
            let inner = scope(now);
            assert!(inner > outer);
            assert_eq!(now(), outer);
        });
    }

    #[test]
    fn a_panic_inside_a_scope_does_not_leave_its_reading_behind() {
        let caught = std::panic::catch_unwind(|| scope(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(CACHED.get().is_none());
    }
}
