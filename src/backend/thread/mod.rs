//! The thread backend: each coroutine runs on an OS thread of its own (taken from its [`pool`]), and control
//! passes between it and its enterer through the phase word, each side waiting with the [`waiter`], as in
//! QEMU's `coroutine-gthread.c`. Exactly one thread of a caller chain runs at a time.

use std::io;

use super::{Context, ContextOps, Control, Entry, PoolStats, Spec};
use crate::control::{Cancelled, Phase, PhaseWord};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, Mutex};

pub(crate) mod pool;
pub(crate) mod waiter;

use pool::{Job, Worker};
use waiter::Waiter;

/// A thread-backed context. Invariant: `start` is `Some` until the first resume (or a discard) takes it,
/// and `started` is set before that resume hands control over.
pub(crate) struct ThreadContext {
    start: Mutex<Option<(Worker, BoxedEntry)>>,
    started: AtomicBool,
    waiter: Waiter,
}

type BoxedEntry = Box<dyn FnOnce(&Arc<Control>) + Send>;

/// What a pool thread runs for one coroutine.
struct CoroutineJob {
    co: Arc<Control>,
    entry: Option<BoxedEntry>,
}

impl Job for CoroutineJob {
    fn run(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry(&self.co);
        }
    }

    // Without the native backend `Context` has one variant.
    #[allow(irrefutable_let_patterns)]
    fn finish(self: Box<Self>) {
        if let Context::Thread(context) = &self.co.context {
            context.waiter.finish(&self.co.phase);
        }
    }
}

impl ContextOps for ThreadContext {
    const CLAIM_STARTS: bool = true;
    const ENTERER_WAITS: bool = true;

    fn new(spec: &Spec, entry: impl Entry) -> io::Result<Self> {
        let worker = pool::global().take(spec)?;
        Ok(ThreadContext {
            start: Mutex::new(Some((worker, Box::new(entry)))),
            started: AtomicBool::new(false),
            waiter: Waiter::new(),
        })
    }

    #[inline]
    fn into_context(self) -> Context {
        Context::Thread(self)
    }

    fn resume(&self, co: &Arc<Control>) -> Phase {
        if !self.started.load(Ordering::Relaxed) {
            // Only the holder of the phase word gets here, so nobody races this take.
            if let Some((worker, entry)) = self.start.lock().take() {
                self.started.store(true, Ordering::Relaxed);
                worker.start(Box::new(CoroutineJob {
                    co: co.clone(),
                    entry: Some(entry),
                }));
            }
        }
        self.waiter.wait_for_coroutine(&co.phase)
    }

    fn suspend(&self, co: &Control) -> Result<(), Cancelled> {
        self.waiter.wait_for_enterer(&co.phase);
        if co.phase.is_cancelled() {
            return Err(Cancelled);
        }
        Ok(())
    }

    fn discard_unstarted(&self) -> bool {
        match self.start.lock().take() {
            Some((worker, entry)) => {
                drop(entry);
                worker.release();
                true
            }
            None => false,
        }
    }

    #[inline]
    fn claim(&self, word: &PhaseWord) -> Result<(), Phase> {
        self.waiter.claim(word)
    }

    #[inline]
    fn yield_to_enterer(&self, word: &PhaseWord) -> Result<(), Cancelled> {
        self.waiter.yield_to_enterer(word)
    }

    fn finish(&self, word: &PhaseWord) {
        self.waiter.finish(word);
    }

    fn set_nested(&self, word: &PhaseWord, nested: bool) {
        Waiter::set_nested(word, nested);
    }

    fn pool_stats() -> PoolStats {
        pool::global().stats()
    }

    fn trim_pool(max: usize) {
        pool::global().trim(max);
    }
}

impl Drop for ThreadContext {
    fn drop(&mut self) {
        // A coroutine dropped without ever running (e.g. its owner was leaked): give the thread back.
        if let Some((worker, _entry)) = self.start.lock().take() {
            worker.release();
        }
    }
}
