//! The thread backend: each coroutine runs on an OS thread of its own (taken from [`crate::pool`]), and
//! control passes between it and its enterer by the [`Baton`](crate::baton::Baton), as in QEMU's
//! `coroutine-gthread.c`. Exactly one thread of a caller chain runs at a time.

use std::io;

use super::{ContextOps, Entry};
use crate::baton::{Cancelled, Phase};
use crate::coroutine::Control;
use crate::pool::{self, Spec, Task, Worker};
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::{Arc, Mutex};

/// A thread-backed context. Invariant: `start` is `Some` until the first resume (or a discard) takes it,
/// and `started` is set before that resume hands the baton over.
pub(crate) struct ThreadContext {
    start: Mutex<Option<(Worker, BoxedEntry)>>,
    started: AtomicBool,
}

type BoxedEntry = Box<dyn FnOnce(&Arc<Control>) + Send>;

/// What a pool thread runs for one coroutine.
struct CoroutineTask {
    co: Arc<Control>,
    entry: Option<BoxedEntry>,
}

impl Task for CoroutineTask {
    fn run(&mut self) {
        if let Some(entry) = self.entry.take() {
            entry(&self.co);
        }
    }

    fn hand_back(self: Box<Self>) {
        self.co.baton.finish();
    }
}

impl ContextOps for ThreadContext {
    const CLAIM_STARTS: bool = true;

    fn new(spec: &Spec, entry: impl Entry) -> io::Result<Self> {
        let worker = pool::global().take(spec)?;
        Ok(ThreadContext {
            start: Mutex::new(Some((worker, Box::new(entry)))),
            started: AtomicBool::new(false),
        })
    }

    fn resume(&self, co: &Arc<Control>) -> Phase {
        if !self.started.load(Ordering::Relaxed) {
            // Only the holder of the baton gets here, so nobody races this take.
            if let Some((worker, entry)) = self.start.lock().take() {
                self.started.store(true, Ordering::Relaxed);
                worker.start(Box::new(CoroutineTask {
                    co: co.clone(),
                    entry: Some(entry),
                }));
            }
        }
        co.baton.wait_for_caller()
    }

    fn suspend(&self, co: &Control) -> Result<(), Cancelled> {
        co.baton.wait_for_coroutine();
        if co.baton.is_cancelled() {
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
}

impl Drop for ThreadContext {
    fn drop(&mut self) {
        // A coroutine dropped without ever running (e.g. its owner was leaked): give the thread back.
        if let Some((worker, _entry)) = self.start.lock().take() {
            worker.release();
        }
    }
}
