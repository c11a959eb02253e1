//! The session threads: started as connections need them, up to a bound, and retired after a
//! while idle, so a quiet server keeps few threads and a busy one gets as many as it may have.

use crate::limits::WORKER_IDLE_KEEP;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// What a thread runs: one connection, from start to end.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// A bounded set of threads that run jobs.
pub(super) struct Pool {
    /// Jobs, and `None`: "stop waiting, the pool is closing".
    tx: Sender<Option<Job>>,
    rx: Receiver<Option<Job>>,
    threads: Arc<Threads>,
}

struct Threads {
    /// Threads alive, and a signal when that falls to zero.
    live: Mutex<usize>,
    gone: Condvar,
    /// Threads waiting for a job and not yet promised one.
    idle: AtomicUsize,
    max: usize,
    stack_size: usize,
    closing: AtomicBool,
}

impl Pool {
    /// At most `max` threads, each with `stack_size` bytes of stack.
    pub(super) fn new(max: usize, stack_size: usize) -> Pool {
        // Never full: a job is only queued for a thread that is idle or just started.
        let (tx, rx) = bounded(max);
        Pool {
            tx,
            rx,
            threads: Arc::new(Threads {
                live: Mutex::new(0),
                gone: Condvar::new(),
                idle: AtomicUsize::new(0),
                max,
                stack_size,
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// Runs `job` on an idle thread, or a new one, or the next one free when `max` are busy;
    /// fails, without blocking, when `max` jobs already wait (or the system refuses a thread).
    pub(super) fn run(&self, job: Job) -> io::Result<()> {
        let t = &self.threads;
        let promised = t
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        // With every thread busy, the job waits in the queue for the next one free: a session
        // cut to make room ends in a moment.
        let mut live = super::lock(&t.live);
        if !promised && *live < t.max {
            let rx = self.rx.clone();
            let threads = self.threads.clone();
            thread::Builder::new()
                .name("pop3d-session".into())
                .stack_size(t.stack_size)
                .spawn(move || work(&rx, &threads))?;
            *live += 1;
        }
        drop(live);
        self.tx
            .try_send(Some(job))
            .map_err(|_| io::Error::other("the session queue is full"))
    }

    /// Lets the threads finish their jobs and waits until all have ended. No job may be run
    /// after this.
    pub(super) fn close(&self) {
        let threads = &self.threads;
        threads.closing.store(true, Ordering::SeqCst);
        let mut live = super::lock(&threads.live);
        // One stop for each thread: the idle ones take them; a busy one stops after its job.
        for _ in 0..*live {
            let _ = self.tx.try_send(None);
        }
        while *live > 0 {
            live = threads.gone.wait(live).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn work(rx: &Receiver<Option<Job>>, threads: &Threads) {
    loop {
        match rx.recv_timeout(WORKER_IDLE_KEEP) {
            Ok(Some(job)) => {
                // A bug in a session must not take a thread out of the pool.
                if catch_unwind(AssertUnwindSafe(job)).is_err() {
                    log::error!("session panicked");
                }
                if threads.closing.load(Ordering::SeqCst) {
                    break;
                }
                threads.idle.fetch_add(1, Ordering::SeqCst);
            }
            Ok(None) => break,
            Err(RecvTimeoutError::Timeout) => {
                // Retire, unless a job was just promised to an idle thread (then wait for it).
                let retire = threads
                    .idle
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if retire {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let mut live = super::lock(&threads.live);
    *live -= 1;
    if *live == 0 {
        threads.gone.notify_all();
    }
}
