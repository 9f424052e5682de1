//! The backend interface: how a coroutine gets a context of its own and how control moves in and out of it.
//!
//! As small as QEMU's (`qemu_coroutine_new`, `qemu_coroutine_switch`, `qemu_coroutine_delete`):
//! - [`Backend::new`]: make a context that runs `entry` when first resumed;
//! - [`Backend::resume`]: switch from the enterer into the coroutine (the switch with action "enter"); returns
//!   once the coroutine has yielded or terminated;
//! - [`Backend::suspend`]: switch from the coroutine back to its enterer (action "yield"); returns when the
//!   coroutine is entered again. Termination is `entry` returning: the backend then finishes the baton.
//! - deleting a context is dropping it.
//!
//! Everything else (the caller chain, the baton's phases, cancellation, panics, results) lives in
//! [`crate::coroutine`] and is written once for all backends. One module per backend.

use std::io;

use crate::baton::Phase;
use crate::coroutine::Control;
use crate::pool::Spec;
use crate::sync::Arc;

pub(crate) mod thread;

/// A coroutine's body as the backend sees it: run it once, on the coroutine's own context, with the
/// coroutine's control block.
pub(crate) type Entry = Box<dyn FnOnce(&Arc<Control>) + Send>;

/// One backend. See the module documentation.
pub(crate) trait Backend: Sized {
    /// Makes a context for a coroutine (`qemu_coroutine_new`). Runs nothing.
    fn new(spec: &Spec, entry: Entry) -> io::Result<Self>;
    /// Runs the coroutine `co` (whose context is `self`) until it yields or terminates. The caller has
    /// claimed the baton. Returns [`Phase::Yielded`] or [`Phase::Finished`], with control taken back.
    fn resume(&self, co: &Arc<Control>) -> Phase;
    /// Called by the coroutine after the baton says it yielded: returns when it is entered again.
    fn suspend(&self, co: &Control);
    /// Called by an enterer holding the baton of a coroutine that never ran: drops `entry` unrun.
    fn discard_unstarted(&self) -> bool;
}

/// The context of one coroutine, whichever backend made it.
pub(crate) enum Context {
    Thread(thread::ThreadContext),
}

/// Which backend a coroutine runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    /// One OS thread per coroutine, control passed by the baton.
    #[default]
    Thread,
}

impl Context {
    pub(crate) fn new(kind: Kind, spec: &Spec, entry: Entry) -> io::Result<Context> {
        match kind {
            Kind::Thread => thread::ThreadContext::new(spec, entry).map(Context::Thread),
        }
    }

    pub(crate) fn resume(&self, co: &Arc<Control>) -> Phase {
        match self {
            Context::Thread(c) => c.resume(co),
        }
    }

    pub(crate) fn suspend(&self, co: &Control) {
        match self {
            Context::Thread(c) => c.suspend(co),
        }
    }

    pub(crate) fn discard_unstarted(&self) -> bool {
        match self {
            Context::Thread(c) => c.discard_unstarted(),
        }
    }
}
