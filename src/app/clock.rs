//! The service's one clock. Every use case and worker reads the time from the [`Clock`] in
//! its [`super::Context`], never from the system directly, so tests can move time forward
//! (a deadline two business hours away, a retry ten minutes later) without waiting for it.

use chrono::{DateTime, Duration, DurationRound, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The wall clock plus an offset that only ever grows (so time never runs backwards for
/// the audit log, leases or deadlines). Cheap to clone; clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Microseconds added to the system time.
    offset_us: Arc<AtomicI64>,
}

impl Clock {
    /// The system's clock, not moved.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Now, in UTC to the microsecond (what both databases store, so SQLite and PostgreSQL
    /// round-trip the same value).
    pub fn now(&self) -> DateTime<Utc> {
        let offset = Duration::microseconds(self.offset_us.load(Ordering::Relaxed));
        let t = Utc::now() + offset;
        t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
    }

    /// Moves this clock (and its clones) forward by `by`; a negative `by` is ignored. For
    /// tests and simulations: the service itself never moves its clock.
    pub fn advance(&self, by: Duration) {
        if let Some(us) = by.num_microseconds().filter(|us| *us > 0) {
            self.offset_us.fetch_add(us, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone_forward_and_never_back() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = clock.now();
        clock.advance(Duration::hours(3));
        assert!(other.now() - before >= Duration::hours(3));
        clock.advance(Duration::hours(-5));
        assert!(other.now() - before >= Duration::hours(3));
        assert_eq!(clock.now().timestamp_subsec_nanos() % 1_000, 0);
    }
}
