//! A client connection's one timer: the first request's deadline, the idle
//! timeout, the send timeout and the park check share a single `Sleep`,
//! armed for whichever comes first. Each check samples counters the
//! request path bumps (no clock read per request or per byte); the
//! connection's task polls one timer on every wake-up instead of four.
//!
//! [`Checks`] is the pure part (what is due, what fired, when next);
//! [`Watch::fired`] drives it with the timer.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// What the connection's timer found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// No request head within `header_read` of accept.
    FirstRequestLate,
    /// A response waited `send` with nothing taken by the client.
    Stuck,
    /// No request open, and none begun, for `idle`.
    Idle,
    /// Nothing moved for a whole park period: the connection may be parked.
    Parkable,
}

/// One count sampled every `every`: fires once it has stayed the same,
/// and not busy, at the steps of `need` (so within a step either side of
/// `need` after the last change).
#[derive(Clone, Copy, Debug)]
struct Quiet {
    every: Duration,
    need: Duration,
    seen: u64,
    quiet: Duration,
    next: Instant,
}

impl Quiet {
    fn new(every: Duration, need: Duration, seen: u64, now: Instant) -> Self {
        Quiet {
            every,
            need,
            seen,
            quiet: Duration::ZERO,
            next: now + every,
        }
    }

    /// At a step: whether it has been quiet long enough.
    fn step(&mut self, now: Instant, (count, busy): (u64, bool)) -> bool {
        self.next = now + self.every;
        if count == self.seen && !busy {
            self.quiet += self.every;
            self.quiet >= self.need
        } else {
            self.quiet = Duration::ZERO;
            self.seen = count;
            false
        }
    }

    /// Starts counting again from `count` (after a park, say).
    fn restart(&mut self, now: Instant, count: u64) {
        *self = Quiet::new(self.every, self.need, count, now);
    }
}

/// What the connection's counters say at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Requests begun.
    pub requests: u64,
    /// Requests open (until their response body is sent).
    pub in_flight: bool,
    /// Frames hyper took from responses.
    pub taken: u64,
    /// A response waits for the client to make room.
    pub sending: bool,
    /// Reads and writes that moved bytes.
    pub moved: u64,
}

/// How finely the idle and send timeouts are checked: a step is a
/// quarter of the timeout.
const STEPS: u32 = 4;

/// The checks, their states and when each is next due.
#[derive(Clone, Debug)]
pub struct Checks {
    first_request: Option<Instant>,
    idle: Quiet,
    stuck: Quiet,
    park: Quiet,
}

impl Checks {
    pub fn new(
        now: Instant,
        first_request: Instant,
        idle: Duration,
        send: Duration,
        park: Duration,
        s: Sample,
    ) -> Self {
        let step = |d: Duration| (d / STEPS).max(Duration::from_millis(50));
        Checks {
            first_request: Some(first_request),
            idle: Quiet::new(step(idle), idle, s.requests, now),
            stuck: Quiet::new(step(send), send, s.taken, now),
            park: Quiet::new(park, park, s.moved, now),
        }
    }

    /// When the timer should next wake: the earliest check due (the park
    /// check only when parking is possible).
    pub fn next(&self, parking: bool) -> Instant {
        let mut at = self.idle.next.min(self.stuck.next);
        if let Some(f) = self.first_request {
            at = at.min(f);
        }
        if parking {
            at = at.min(self.park.next);
        }
        at
    }

    /// Runs the checks due at `now`: what fired, if anything.
    pub fn due(&mut self, now: Instant, s: Sample, parking: bool) -> Option<Fired> {
        if let Some(f) = self.first_request
            && now >= f
        {
            self.first_request = None;
            if s.requests == 0 {
                return Some(Fired::FirstRequestLate);
            }
        }
        if now >= self.stuck.next && self.stuck.step(now, (s.taken, !s.sending)) {
            return Some(Fired::Stuck);
        }
        if now >= self.idle.next && self.idle.step(now, (s.requests, s.in_flight)) {
            return Some(Fired::Idle);
        }
        if !parking {
            // Not counting while parking is off: the next park check
            // starts afresh from now.
            self.park.restart(now, s.moved);
        } else if now >= self.park.next && self.park.step(now, (s.moved, s.in_flight)) {
            self.park.restart(now, s.moved);
            return Some(Fired::Parkable);
        }
        None
    }
}

/// The connection's timer and its checks.
pub struct Watch {
    checks: Checks,
    sleep: Pin<Box<Sleep>>,
}

impl Watch {
    pub fn new(checks: Checks) -> Self {
        let sleep = Box::pin(tokio::time::sleep_until(checks.next(true)));
        Watch { checks, sleep }
    }

    /// Waits for the next check that fires. `sample` reads the counters;
    /// `parking`: whether the park check runs (an HTTP/1 connection, not
    /// draining, not parked already).
    pub async fn fired(&mut self, sample: impl Fn() -> Sample, parking: bool) -> Fired {
        loop {
            let at = self.checks.next(parking);
            if self.sleep.deadline() != at {
                self.sleep.as_mut().reset(at);
            }
            self.sleep.as_mut().await;
            let now = Instant::now();
            if let Some(f) = self.checks.due(now, sample(), parking) {
                return f;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn checks(now: Instant) -> Checks {
        // header_read 10 s, idle 8 s (steps of 2 s), send 4 s (steps of 1 s),
        // park after 1 s.
        Checks::new(now, now + 10 * S, 8 * S, 4 * S, S, Sample::default())
    }

    /// Runs the checks at each of their due times up to `until`, with the
    /// sample `at(t)` gives; the first that fires, and when.
    fn run(
        c: &mut Checks,
        start: Instant,
        until: Duration,
        parking: bool,
        at: impl Fn(Duration) -> Sample,
    ) -> Option<(Fired, Duration)> {
        loop {
            let t = c.next(parking);
            if t > start + until {
                return None;
            }
            if let Some(f) = c.due(t, at(t - start), parking) {
                return Some((f, t - start));
            }
        }
    }

    #[test]
    fn a_request_begun_in_time_keeps_the_first_request_deadline_quiet() {
        let now = Instant::now();
        let busy = |_| Sample {
            requests: 1,
            in_flight: true,
            ..Sample::default()
        };
        let mut c = checks(now);
        assert_eq!(run(&mut c, now, 12 * S, false, busy), None);
        // With no request, idle (8 s, shorter here) or the deadline fires.
        let mut c = checks(now);
        let got = run(&mut c, now, 20 * S, false, |_| Sample::default());
        assert_eq!(got, Some((Fired::Idle, 8 * S)));
    }

    #[test]
    fn the_first_request_deadline_fires_before_a_longer_idle() {
        let now = Instant::now();
        let mut c = Checks::new(now, now + 2 * S, 60 * S, 30 * S, S, Sample::default());
        let got = run(&mut c, now, 20 * S, false, |_| Sample::default());
        assert_eq!(got, Some((Fired::FirstRequestLate, 2 * S)));
    }

    #[test]
    fn idle_counts_from_the_last_request_and_not_while_one_is_open() {
        let now = Instant::now();
        let mut c = checks(now);
        // Requests keep coming until 5 s, one stays open until 9 s.
        let got = run(&mut c, now, 30 * S, false, |t| Sample {
            requests: if t < 5 * S {
                t.as_millis() as u64 / 500
            } else {
                10
            },
            in_flight: t < 9 * S,
            ..Sample::default()
        });
        let (f, at) = got.expect("fires");
        assert_eq!(f, Fired::Idle);
        // Within a step (2 s) either side of `idle` after the last request
        // closed (a step's quiet is counted from the check that saw it).
        assert!(at >= 9 * S + 6 * S && at <= 9 * S + 10 * S, "{at:?}");
    }

    #[test]
    fn a_response_the_client_takes_nothing_of_is_stuck_after_send() {
        let now = Instant::now();
        let mut c = checks(now);
        let got = run(&mut c, now, 30 * S, false, |_| Sample {
            requests: 1,
            in_flight: true,
            sending: true,
            taken: 3,
            ..Sample::default()
        });
        let (f, at) = got.expect("fires");
        assert_eq!(f, Fired::Stuck);
        assert!(at >= 4 * S && at <= 5 * S, "{at:?}");
        // Taking frames keeps it alive.
        let mut c = checks(now);
        let got = run(&mut c, now, 7 * S, false, |t| Sample {
            requests: 1,
            in_flight: true,
            sending: true,
            taken: t.as_millis() as u64 / 100,
            ..Sample::default()
        });
        assert_eq!(got, None);
    }

    #[test]
    fn parking_comes_after_a_whole_quiet_period_and_only_when_allowed() {
        let now = Instant::now();
        let moved = |t: Duration| {
            if t < 3 * S {
                t.as_millis() as u64
            } else {
                3000
            }
        };
        let sample = |t: Duration| Sample {
            requests: 1,
            moved: moved(t),
            ..Sample::default()
        };
        let mut c = checks(now);
        let (f, at) = run(&mut c, now, 30 * S, true, sample).expect("fires");
        assert_eq!(f, Fired::Parkable);
        assert!(at >= 4 * S && at <= 5 * S, "{at:?}");
        // Not while parking is off: idle comes first then.
        let mut c = checks(now);
        let (f, _) = run(&mut c, now, 30 * S, false, sample).expect("fires");
        assert_eq!(f, Fired::Idle);
        // Not while a request is open.
        let mut c = checks(now);
        let got = run(&mut c, now, 7 * S, true, |t| Sample {
            in_flight: true,
            ..sample(t)
        });
        assert_eq!(got, None);
    }
}
