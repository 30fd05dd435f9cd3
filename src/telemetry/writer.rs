//! The log writer: request threads append whole lines to a shared buffer
//! under a mutex; one background thread, woken by the first line of a
//! batch, writes the buffer out [`FLUSH_EVERY`] later (or sooner when it
//! passes [`HIGH_WATER`]) in one `write(2)`, and sleeps while nothing is
//! logged. A slow stdout therefore never stalls a request until
//! [`MAX_PENDING`] bytes wait; then writers wait too, so that audit lines
//! are never dropped.
//!
//! Why not `tracing-appender`'s non-blocking writer: it allocates and sends
//! each line through a channel and wakes its thread per line. Under load
//! that was about one `write(2)`, one futex wake and several `sched_yield`
//! calls per two lines (measured with `strace -c`; docs/benchmarks.md).
//! Batching by time costs at most [`FLUSH_EVERY`] of delay.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest a line waits in the buffer: short enough for `tail -f` and log
/// shippers to feel live.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Wake the writer early past this many buffered bytes (~400 decision lines).
pub const HIGH_WATER: usize = 256 * 1024;
/// Writers wait past this many buffered bytes (stdout is not keeping up).
pub const MAX_PENDING: usize = 8 * 1024 * 1024;

struct State {
    buf: Vec<u8>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the writer thread (high water, close).
    wake: Condvar,
    /// Signals waiting writers that the buffer was drained.
    drained: Condvar,
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
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            buf: Vec::with_capacity(HIGH_WATER),
            closed: false,
        }),
        wake: Condvar::new(),
        drained: Condvar::new(),
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
                    s.drained.notify_all();
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
    /// Appends whole lines.
    pub fn write_line(&self, line: &[u8]) {
        let mut st = self.shared.lock();
        while st.buf.len() > MAX_PENDING && !st.closed {
            self.shared.wake.notify_one();
            st = self
                .shared
                .drained
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
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
