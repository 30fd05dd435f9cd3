//! The log writer: request threads append whole lines to a shared buffer
//! under a mutex; one background thread, woken by the first line of a
//! batch, writes the buffer out [`FLUSH_EVERY`] later (or sooner when it
//! passes [`HIGH_WATER`]) in one `write(2)`, and sleeps while nothing is
//! logged. Logging never blocks a request: when stdout does not keep up
//! and [`MAX_PENDING`] bytes wait, new lines are dropped, counted
//! ([`dropped`], `netwarden_log_lines_dropped_total`) and reported on
//! stderr, by a thread of its own, at most every [`DROP_NOTICE_EVERY`]. A guard that stalls every
//! request behind a slow log reader would let one client, sending
//! denied requests with long paths, lock everyone out.
//!
//! Why not `tracing-appender`'s non-blocking writer: it allocates and sends
//! each line through a channel and wakes its thread per line. Under load
//! that was about one `write(2)`, one futex wake and several `sched_yield`
//! calls per two lines (measured with `strace -c`; docs/benchmarks.md).
//! Batching by time costs at most [`FLUSH_EVERY`] of delay.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a line waits in the buffer: short enough for `tail -f` and log
/// shippers to feel live.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Wake the writer early past this many buffered bytes (~400 decision lines).
pub const HIGH_WATER: usize = 256 * 1024;
/// Lines are dropped past this many buffered bytes (stdout is not keeping
/// up): about 13,000 decision lines, several seconds of a log shipper's
/// hiccup at a busy console's rate.
pub const MAX_PENDING: usize = 8 * 1024 * 1024;
/// How often, at most, dropped lines are reported on stderr.
pub const DROP_NOTICE_EVERY: Duration = Duration::from_secs(10);

/// Lines dropped because stdout did not keep up, since the process started.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped so far (for `netwarden_log_lines_dropped_total`).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the notice thread on a drop (never blocks: `try_send`).
    dropped_tx: std::sync::mpsc::SyncSender<()>,
    /// Signals the writer thread (high water, close).
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a buffer that is still whole
        // lines; keep logging.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cloneable handle that appends lines (`tracing_subscriber`'s
/// `MakeWriter`).
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

/// Flushes what is buffered and stops the writer thread when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Starts the writer thread on `out`.
pub fn batch_writer(mut out: Box<dyn Write + Send>) -> io::Result<(BatchWriter, LogGuard)> {
    let (dropped_tx, dropped_rx) = std::sync::mpsc::sync_channel::<()>(1);
    // Its own thread: the writer thread may be the one stuck on stdout.
    // Asleep until a line is dropped; then one notice per
    // DROP_NOTICE_EVERY at most. Ends when the writer is gone.
    std::thread::Builder::new()
        .name("netwarden-log-notice".into())
        .spawn(move || {
            let mut reported = 0u64;
            while dropped_rx.recv().is_ok() {
                let all = dropped();
                eprintln!(
                    "netwarden: stdout is not keeping up with the log: {} line(s) dropped since the last notice, {all} in all (netwarden_log_lines_dropped_total)",
                    all - reported
                );
                reported = all;
                std::thread::sleep(DROP_NOTICE_EVERY);
            }
        })?;
    let shared = Arc::new(Shared {
        dropped_tx,
        state: Mutex::new(State {
            buf: Vec::with_capacity(HIGH_WATER),
            closed: false,
        }),
        wake: Condvar::new(),
    });
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name("netwarden-log".into())
        .spawn(move || {
            let mut spare = Vec::with_capacity(HIGH_WATER);
            loop {
                let closed = {
                    let mut st = s.lock();
                    // Idle: sleep until a line arrives (no timer wake-ups
                    // while nothing is logged).
                    while st.buf.is_empty() && !st.closed {
                        st = s.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    // Then gather a batch for up to FLUSH_EVERY.
                    if st.buf.len() < HIGH_WATER && !st.closed {
                        st = s
                            .wake
                            .wait_timeout(st, FLUSH_EVERY)
                            .map_or_else(|e| e.into_inner().0, |(g, _)| g);
                    }
                    std::mem::swap(&mut st.buf, &mut spare);
                    st.closed
                };
                if !spare.is_empty() {
                    // Nowhere to report a failed write to; the next batch
                    // tries again.
                    let _ = out.write_all(&spare).and_then(|()| out.flush());
                    spare.clear();
                    // Give memory back after a burst.
                    spare.shrink_to(HIGH_WATER);
                }
                if closed {
                    return;
                }
            }
        })?;
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        LogGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

impl BatchWriter {
    /// Appends whole lines; drops them (counted) when [`MAX_PENDING`]
    /// bytes already wait. Never waits for the writer thread.
    pub fn write_line(&self, line: &[u8]) {
        let mut st = self.shared.lock();
        if st.buf.len() + line.len() > MAX_PENDING && !st.closed {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            self.shared.wake.notify_one();
            drop(st);
            let _ = self.shared.dropped_tx.try_send(());
            return;
        }
        let was_empty = st.buf.is_empty();
        st.buf.extend_from_slice(line);
        // The first line of a batch wakes the idle writer; a full batch
        // cuts its wait short.
        if was_empty || st.buf.len() >= HIGH_WATER {
            self.shared.wake.notify_one();
        }
    }
}

impl Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.write_line(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into shared memory, to see what reached "stdout".
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_per_thread_once_the_guard_drops() {
        let sink = Sink::default();
        let (w, guard) = batch_writer(Box::new(sink.clone())).expect("writer thread");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        w.write_all(format!("{t} {i}\n").as_bytes()).expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        drop(guard);
        let out = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let mut next = [0u32; 4];
        for line in out.lines() {
            let (t, i) = line.split_once(' ').expect("whole line");
            let t: usize = t.parse().expect("thread");
            assert_eq!(i.parse::<u32>().expect("index"), next[t]);
            next[t] += 1;
        }
        assert_eq!(next, [5000; 4]);
    }

    /// A stdout that accepts nothing until released (a reader that
    /// stopped), then everything.
    struct Stuck(Arc<std::sync::Barrier>, bool);

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if !self.1 {
                self.0.wait();
                self.1 = true;
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_stdout_drops_lines_instead_of_blocking_writers() {
        let release = Arc::new(std::sync::Barrier::new(2));
        let (w, guard) =
            batch_writer(Box::new(Stuck(release.clone(), false))).expect("writer thread");
        let before = dropped();
        let line = vec![b'x'; 2047];
        // Far more than MAX_PENDING: every call returns (the test would hang
        // here before), and the overflow is counted.
        for _ in 0..(4 * MAX_PENDING / 2048) {
            w.write_line(&line);
        }
        let n = dropped() - before;
        // Release the writer before asserting, so that a failure fails
        // instead of hanging on the guard's join.
        release.wait();
        drop(guard);
        // At most MAX_PENDING waits, plus the one batch the writer took
        // before it stuck (no larger than what waits): the rest is dropped.
        // Lines are 2,047 bytes, so a full buffer holds 4,098 of them (the
        // bound once assumed 2,048 and failed when the writer's first
        // batch was a full one).
        let sent = 4 * MAX_PENDING / 2048;
        let kept = 2 * (MAX_PENDING / line.len());
        assert!(n as usize >= sent - kept, "{n} dropped");
    }

    #[test]
    fn lines_are_written_without_waiting_for_the_guard() {
        let sink = Sink::default();
        let (mut w, _guard) = batch_writer(Box::new(sink.clone())).expect("writer thread");
        w.write_all(b"hello\n").expect("write");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sink.0.lock().expect("lock").is_empty() {
            assert!(std::time::Instant::now() < deadline, "never flushed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&*sink.0.lock().expect("lock"), b"hello\n");
    }
}
