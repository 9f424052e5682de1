//! The backend interface: how a coroutine gets a context of its own and how control moves in and out of it.
//!
//! As small as QEMU's (`qemu_coroutine_new`, `qemu_coroutine_switch`, `qemu_coroutine_delete`):
//! - [`ContextOps::new`]: make a context that runs `entry` (the coroutine's body) when first resumed;
//! - [`ContextOps::resume`]: switch from the enterer into the coroutine (the switch with action "enter");
//!   returns once the coroutine has yielded or terminated;
//! - [`ContextOps::suspend`]: switch from the coroutine back to its enterer (action "yield"); returns when the
//!   coroutine is entered again. Termination is `entry` returning: the backend then finishes the baton.
//! - deleting a context is dropping it.
//!
//! Beside these, a few hooks with defaults: the baton transitions a one-thread backend makes cheaper
//! ([`ContextOps::claim`], [`ContextOps::yield_to_caller`]), the thread check ([`ContextOps::runs_here`]),
//! dropping an unstarted body ([`ContextOps::discard_unstarted`]), and unwinding a dropped suspended coroutine
//! ([`ContextOps::unwind`]: by default it is resumed and unwinds itself).
//!
//! Everything else (the caller chain, the baton's phases, cancellation, panics, results) lives in
//! [`crate::coroutine`] and is written once for all backends. One module per backend; the public [`Backend`]
//! enum picks one.

use std::io;

use crate::baton::{Baton, Cancelled, Phase};
use crate::coroutine::Control;
use crate::pool::Spec;
use crate::sync::Arc;

#[cfg(cothread_native)]
pub(crate) mod native;
pub(crate) mod thread;

/// A coroutine's body as the backend sees it: run it once, on the coroutine's own context, with the
/// coroutine's control block.
pub(crate) trait Entry: FnOnce(&Arc<Control>) + Send + 'static {}
impl<E: FnOnce(&Arc<Control>) + Send + 'static> Entry for E {}

/// One backend's contexts. See the module documentation.
pub(crate) trait ContextOps: Sized {
    /// Whether a successful [`claim`](ContextOps::claim) already hands control to the coroutine (the thread
    /// backend: the coroutine's thread may run as soon as the baton says `Running`), rather than the
    /// [`resume`](ContextOps::resume) that follows it (a stack switch on the enterer's thread).
    const CLAIM_STARTS: bool;
    /// Makes a context for a coroutine (`qemu_coroutine_new`) that runs `entry` when first resumed. Runs
    /// nothing.
    fn new(spec: &Spec, entry: impl Entry) -> io::Result<Self>;
    /// Runs the coroutine `co` (whose context is `self`) until it yields or terminates. The caller has claimed
    /// the baton. Returns [`Phase::Yielded`] or [`Phase::Finished`], with control taken back.
    fn resume(&self, co: &Arc<Control>) -> Phase;
    /// Called by the coroutine after the baton says it yielded: returns when it is entered again, `Err` if it
    /// was entered only to unwind (its owner dropped it) and must raise the forced unwind itself.
    fn suspend(&self, co: &Control) -> Result<(), Cancelled>;
    /// Called by an enterer holding the baton: if the coroutine never ran, drops its entry unrun, frees what its
    /// context holds and returns true.
    fn discard_unstarted(&self) -> bool;
    /// Called by the owner's drop, holding the baton of a suspended coroutine that it cancelled: unwinds the
    /// coroutine's stack back to its entry and returns [`Phase::Finished`]. By default the coroutine is resumed
    /// and unwinds itself ([`suspend`](ContextOps::suspend) returns `Err`); a backend that can raise the unwind
    /// into a suspended stack by itself does that instead, so that `suspend` has nothing to check. A panic
    /// raised during the unwind may come out of this call.
    #[inline]
    fn unwind(&self, co: &Arc<Control>) -> Phase {
        self.resume(co)
    }
    /// The enterer's `Idle -> Running` ([`Baton::claim`]); a backend whose batons only one thread writes uses
    /// the cheaper one-writer transitions.
    #[inline]
    fn claim(&self, baton: &Baton) -> Result<(), Phase> {
        baton.claim()
    }
    /// The coroutine's `Running -> Yielded` ([`Baton::yield_to_caller`]), as for `claim`.
    #[inline]
    fn yield_to_caller(&self, baton: &Baton) -> Result<(), Cancelled> {
        baton.yield_to_caller()
    }
    /// Whether the calling thread may run this context, the context of `co`. A backend that switches stacks on
    /// one thread ties a context to one thread, binding it to the caller if it has none yet; `owner` says that
    /// the caller is the coroutine's owner (with `&mut Coroutine`), which lets such a backend bind without an
    /// atomic read-modify-write when nothing else refers to `co`. The thread backend runs anywhere. Called
    /// before claiming the baton.
    #[inline]
    fn runs_here(&self, co: &Arc<Control>, owner: bool) -> bool {
        let _ = (co, owner);
        true
    }
    /// Called by the owner's drop on a thread where the context does not run ([`runs_here`] false), for a
    /// coroutine that has not finished: hands a reference to the context's own thread, which unwinds it there.
    /// Only a backend whose contexts are tied to a thread gets here.
    ///
    /// [`runs_here`]: ContextOps::runs_here
    fn orphan(&self, co: &Arc<Control>) {
        let _ = co;
    }
}

/// The context of one coroutine, whichever backend made it.
pub(crate) enum Context {
    Thread(thread::ThreadContext),
    #[cfg(cothread_native)]
    Native(native::NativeContext),
    /// A native generator's lean path: not entered through `coroutine.rs`, only named by its control block.
    #[cfg(cothread_native)]
    Generator(native::generator::GeneratorContext),
}

/// Which backend runs a coroutine: chosen with [`Builder::backend`](crate::Builder::backend).
///
/// The default is the fastest [available](Backend::is_available) one: `Backend::Native` where the `native`
/// feature could compile it in and the process can run it, [`Backend::Thread`] otherwise. Both can be used in
/// one program. Spawning a coroutine on an unavailable backend fails with [`io::ErrorKind::Unsupported`].
///
/// ```
/// use cothread::{Backend, Builder};
///
/// let backend = Backend::default();
/// assert!(backend.is_available() || !Backend::Thread.is_available());
/// match Builder::new().backend(backend).spawn(|| 7) {
///     Ok(mut co) => assert_eq!(co.enter().into_returned(), Some(7)),
///     Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::Unsupported), // e.g. wasm32-unknown-unknown
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Each coroutine runs on an OS thread of its own, taken from the [`pool`](crate::pool); control passes
    /// between threads by a hand-off (QEMU's `coroutine-gthread.c`). Runs wherever `std::thread` does.
    Thread,
    /// Each coroutine runs on a stack of its own (pooled, with a guard page) on the thread that enters it,
    /// switched to in a few nanoseconds (QEMU's `coroutine-ucontext.c`). A native coroutine sees the
    /// thread-locals of the thread that runs it and stays on the thread that first entered it: see the
    /// [crate documentation](crate#the-native-backend).
    ///
    /// Exists whenever the `native` feature is on, on every target; [available](Backend::is_available) only
    /// where corosensei supports the target (see the README's target table), and never under Miri or loom.
    #[cfg(feature = "native")]
    Native,
}

impl Backend {
    /// Whether coroutines of this backend can be spawned in this build and process. Where it is false,
    /// [`Builder::spawn`](crate::Builder::spawn) on this backend returns an error of kind
    /// [`io::ErrorKind::Unsupported`].
    ///
    /// - `Thread`: wherever `std::thread` can spawn threads; not on wasm targets without threads
    ///   (wasm32-unknown-unknown, wasm32-wasip1, wasm32-wasip2).
    /// - `Native`: with the `native` feature, on a target corosensei supports; not under Miri (it cannot run
    ///   the stack switch) nor under `--cfg loom` (loom models threads, not stacks).
    ///
    /// ```
    /// use cothread::Backend;
    ///
    /// if !cfg!(target_family = "wasm") {
    ///     assert!(Backend::Thread.is_available());
    /// }
    /// assert!(Backend::default().is_available() || Backend::default() == Backend::Thread);
    /// ```
    pub const fn is_available(self) -> bool {
        match self {
            Backend::Thread => THREADS,
            #[cfg(feature = "native")]
            Backend::Native => cfg!(all(cothread_native, not(miri))),
        }
    }

    /// Why [`is_available`](Backend::is_available) is false, for the spawn error.
    fn unavailable_because(self) -> &'static str {
        match self {
            Backend::Thread => {
                "cothread: this target has no threads (Backend::Thread is unavailable)"
            }
            #[cfg(feature = "native")]
            Backend::Native if cfg!(miri) => {
                "cothread: the native backend cannot run under Miri (its stack switch is inline assembly)"
            }
            #[cfg(feature = "native")]
            Backend::Native if cfg!(loom) => {
                "cothread: the native backend is not built under --cfg loom (loom models the thread backend)"
            }
            #[cfg(feature = "native")]
            Backend::Native => {
                "cothread: the native backend does not support this target (corosensei has no \
                stack switch for it on stable Rust)"
            }
        }
    }
}

/// Whether std can spawn threads on this target: everywhere but on wasm, where only the targets with the
/// threads proposal (atomics) and a runtime that spawns them (WASI's wasi-threads, Emscripten) can.
const THREADS: bool = !cfg!(target_family = "wasm")
    || cfg!(all(
        target_feature = "atomics",
        any(target_os = "wasi", target_os = "emscripten")
    ));

impl Default for Backend {
    /// The fastest available backend: see [`Backend::is_available`].
    fn default() -> Backend {
        #[cfg(feature = "native")]
        if Backend::Native.is_available() {
            return Backend::Native;
        }
        Backend::Thread
    }
}

/// Runs `$body` with `$ctx` bound to the context of `$context` as its backend's own type, so that code written
/// once over [`ContextOps`] is compiled once per backend, with no dispatch inside.
macro_rules! with_context {
    // Any context, a native generator's included (`yield_now` inside a generator).
    (any: $context:expr, $ctx:ident => $body:expr) => {
        match $context {
            $crate::backend::Context::Thread($ctx) => $body,
            #[cfg(cothread_native)]
            $crate::backend::Context::Native($ctx) => $body,
            #[cfg(cothread_native)]
            $crate::backend::Context::Generator($ctx) => $body,
        }
    };
    // A coroutine's context: never a native generator's ([`Context::Generator`]), whose control block only
    // `yield_now` reaches (the `any:` form above), so that the hot paths keep a two-way dispatch (a three-way one
    // cost the native QEMU-style round trip about 4 more instructions).
    ($context:expr, $ctx:ident => $body:expr) => {
        match $context {
            $crate::backend::Context::Thread($ctx) => $body,
            #[cfg(cothread_native)]
            $crate::backend::Context::Native($ctx) => $body,
            // SAFETY: a generator's control block is owner-only and never a `Coroutine`'s: handles panic before
            // they enter it; of the paths that dispatch on `CURRENT`, which may be one, `yield_now` uses the `any:`
            // form, and `abandon_current` is reached only in a dropped coroutine (a generator's is never cancelled).
            #[cfg(cothread_native)]
            $crate::backend::Context::Generator(_) => unsafe { std::hint::unreachable_unchecked() },
        }
    };
}
pub(crate) use with_context;

impl Context {
    /// Makes a context on `backend`; an error of kind `Unsupported` if that backend is not available.
    pub(crate) fn new(backend: Backend, spec: &Spec, entry: impl Entry) -> io::Result<Context> {
        if !backend.is_available() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                backend.unavailable_because(),
            ));
        }
        match backend {
            Backend::Thread => thread::ThreadContext::new(spec, entry).map(Context::Thread),
            #[cfg(cothread_native)]
            Backend::Native => native::NativeContext::new(spec, entry).map(Context::Native),
            #[cfg(all(feature = "native", not(cothread_native)))]
            Backend::Native => unreachable!("an unavailable backend returned above"),
        }
    }

    /// Whether the coroutine's enterer waits on another thread while it runs (thread backend), so that
    /// spinning hints on its baton matter. On the native backend the enterer is suspended on the same thread.
    #[inline]
    pub(crate) fn enterer_waits(&self) -> bool {
        matches!(self, Context::Thread(_))
    }
}

/// On a home thread: unwinds the suspended native coroutines whose owners dropped them on other threads
/// (orphans). One load while there are none; nothing to do where the native backend is not compiled in.
#[inline]
pub(crate) fn unwind_orphans() {
    #[cfg(cothread_native)]
    native::unwind_orphans();
}
