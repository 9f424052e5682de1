//! The backend interface: how a coroutine gets a context of its own and how control moves in and out of it.
//!
//! As small as QEMU's (`qemu_coroutine_new`, `qemu_coroutine_switch`, `qemu_coroutine_delete`):
//! - [`ContextOps::new`]: make a context that runs `entry` (the coroutine's body) when first resumed;
//! - [`ContextOps::resume`]: switch from the enterer into the coroutine (the switch with action "enter");
//!   returns once the coroutine has yielded or terminated;
//! - [`ContextOps::suspend`]: switch from the coroutine back to its enterer (action "yield"); returns when the
//!   coroutine is entered again. Termination is `entry` returning: the backend then finishes the phase word.
//! - deleting a context is dropping it ([`ContextOps::retire`] first, for the owner's last reference).
//!
//! Beside these, the phase transitions as each backend makes them ([`ContextOps::claim`],
//! [`ContextOps::yield_to_enterer`], [`ContextOps::finish`]: with a waiter on the thread backend, with one
//! writer on the native one), a few hooks with defaults (the thread check [`ContextOps::runs_here`], orphans,
//! a spare control block to reuse, the nested-wait hint, dropping an unstarted body, unwinding a dropped
//! suspended coroutine) and each backend's pool counts and trimming.
//!
//! Everything else (the caller chain, cancellation, panics, results) lives in [`crate::coroutine`] and is
//! written once for all backends; the control block and its phase word live in [`crate::control`]. One module
//! per backend; the public [`Backend`] enum picks one, and adding a backend touches only this directory (a
//! module, a `Context` variant, and the `match`es below).

use std::io;

use crate::control::{self, Cancelled, Phase, PhaseWord};
use crate::sync::Arc;

#[cfg(cothread_native)]
pub(crate) mod native;
pub(crate) mod thread;

/// A coroutine's control block, carrying the context of whichever backend runs it.
pub(crate) type Control = control::Control<Context>;

/// What a context is made with (the [`Builder`](crate::Builder)'s settings); a pool reuses only a thread or
/// stack made with equal settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) name: Option<String>,
    pub(crate) stack_size: Option<usize>,
}

/// A snapshot of the pool's counters, since the process started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Threads spawned for coroutines.
    pub created: u64,
    /// Coroutines that got an idle thread instead of a new one.
    pub reused: u64,
    /// Threads waiting idle right now.
    pub idle: usize,
    /// Threads that have exited (pool full, idle timeout, [`set_max_idle`](crate::pool::set_max_idle)
    /// shrinking the pool, or a spawn refused at the mapping limit).
    pub exited: u64,
}

/// A coroutine's body as the backend sees it: run it once, on the coroutine's own context, with the
/// coroutine's control block.
pub(crate) trait Entry: FnOnce(&Arc<Control>) + Send + 'static {}
impl<E: FnOnce(&Arc<Control>) + Send + 'static> Entry for E {}

/// How the owner's drop unwinds a suspended coroutine (given to [`ContextOps::orphan`]).
pub(crate) type Unwind = fn(&Arc<Control>);

/// The message of the panic for entering a native coroutine from a thread other than the one it runs on.
pub(crate) const OTHER_THREAD: &str = "entered a native coroutine on a thread other than the one it runs on (native coroutines stay on the thread that first entered them)";

/// The message of the panic for resuming a generator that has finished.
pub(crate) const RESUMED_DONE: &str = "resumed a generator that has finished";
/// The message of the panic for a generator that gave control back with `yield_now()` (no value).
pub(crate) const YIELDED_NOTHING: &str =
    "a generator yielded without a value (yield_now() inside a generator: use Yielder::suspend)";

/// One backend's contexts. See the module documentation.
pub(crate) trait ContextOps: Sized {
    /// Whether a successful [`claim`](ContextOps::claim) already hands control to the coroutine (the thread
    /// backend: the coroutine's thread may run as soon as the phase says `Running`), rather than the
    /// [`resume`](ContextOps::resume) that follows it (a stack switch on the enterer's thread).
    const CLAIM_STARTS: bool;
    /// Whether the enterer of a running coroutine waits on another thread (so that hints on the coroutine's
    /// phase word about how long it will wait matter: [`set_nested`](ContextOps::set_nested)), rather than
    /// being suspended on the coroutine's own thread.
    const ENTERER_WAITS: bool;
    /// Makes a context for a coroutine (`qemu_coroutine_new`) that runs `entry` when first resumed. Runs
    /// nothing.
    fn new(spec: &Spec, entry: impl Entry) -> io::Result<Self>;
    /// This context as one of any backend.
    fn into_context(self) -> Context;
    /// A new coroutine's control block with a context for `entry`. A backend that keeps finished control blocks
    /// for reuse (the native backend's spares) hands one of those out instead.
    #[inline]
    fn spawn(spec: Spec, entry: impl Entry) -> io::Result<Arc<Control>> {
        let context = Self::new(&spec, entry)?.into_context();
        Ok(Arc::new(Control::new(context, spec.name)))
    }
    /// Runs the coroutine `co` (whose context is `self`) until it yields or terminates. The caller has claimed
    /// the phase word. Returns [`Phase::Yielded`] or [`Phase::Finished`], with control taken back.
    fn resume(&self, co: &Arc<Control>) -> Phase;
    /// Called by the coroutine after its yield: returns when it is entered again, `Err` if it was entered only
    /// to unwind (its owner dropped it) and must raise the forced unwind itself.
    fn suspend(&self, co: &Control) -> Result<(), Cancelled>;
    /// Called by an enterer holding the phase word: if the coroutine never ran, drops its entry unrun, frees
    /// what its context holds and returns true.
    fn discard_unstarted(&self) -> bool;
    /// Called by the owner's drop, holding the phase word of a suspended coroutine that it cancelled: unwinds
    /// the coroutine's stack back to its entry and returns [`Phase::Finished`]. By default the coroutine is
    /// resumed and unwinds itself ([`suspend`](ContextOps::suspend) returns `Err`). A panic raised during the
    /// unwind may come out of this call.
    #[inline]
    fn unwind(&self, co: &Arc<Control>) -> Phase {
        self.resume(co)
    }
    /// The enterer's `Idle -> Running` ([`PhaseWord::claim`], or its one-writer variant), waking the coroutine
    /// if it waits. On failure returns the phase found.
    fn claim(&self, word: &PhaseWord) -> Result<(), Phase>;
    /// The coroutine's yield ([`PhaseWord::yield_to_enterer`], or its one-writer variant), waking the enterer
    /// if it waits; `Err` if the coroutine was cancelled.
    fn yield_to_enterer(&self, word: &PhaseWord) -> Result<(), Cancelled>;
    /// The coroutine's `Running -> Finished` where its body did not return (a drop's discard or abandon),
    /// waking the enterer if it waits.
    fn finish(&self, word: &PhaseWord);
    /// Called by the running coroutine around its own enter of a coroutine whose enterer waits: a hint to
    /// its own enterer's waiting ([`ENTERER_WAITS`](ContextOps::ENTERER_WAITS)) that the wait will be long.
    #[inline]
    fn set_nested(&self, word: &PhaseWord, nested: bool) {
        let _ = (word, nested);
    }
    /// Whether the calling thread may run this context, the context of `co`. A backend that switches stacks on
    /// one thread ties a context to one thread, binding it to the caller if it has none yet; `owner` says that
    /// the caller is the coroutine's owner (with `&mut Coroutine`), which lets such a backend bind without an
    /// atomic read-modify-write when nothing else refers to `co`. The thread backend runs anywhere. Called
    /// before claiming the phase word.
    #[inline]
    fn runs_here(&self, co: &Arc<Control>, owner: bool) -> bool {
        let _ = (co, owner);
        true
    }
    /// Called by the owner's drop on a thread where the context does not run ([`runs_here`] false), for a
    /// coroutine that has not finished: hands a reference to the context's own thread, which unwinds it there
    /// with `unwind` (as the owner's drop would have). Only a backend whose contexts are tied to a thread gets
    /// here.
    ///
    /// [`runs_here`]: ContextOps::runs_here
    fn orphan(&self, co: &Arc<Control>, unwind: Unwind) {
        let _ = (co, unwind);
    }
    /// The owner's last step of its drop, after what dropping means has been done: gives up its reference. A
    /// backend that reuses finished control blocks keeps it here.
    #[inline]
    fn retire(co: Arc<Control>) {
        drop(co);
    }
    /// This backend's pool counters.
    fn pool_stats() -> PoolStats;
    /// Shrinks this backend's pool to the new bound [`settings::max_idle`](crate::settings::max_idle).
    fn trim_pool(max: usize);
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
    /// Tells the waiting enterer of `co` (this context's coroutine, running) whether `co` now waits itself for
    /// a coroutine it entered (see [`ContextOps::set_nested`]).
    #[inline]
    pub(crate) fn set_nested(&self, word: &PhaseWord, nested: bool) {
        fn hint<C: ContextOps>(ctx: &C, word: &PhaseWord, nested: bool) {
            if C::ENTERER_WAITS {
                ctx.set_nested(word, nested);
            }
        }
        with_context!(self, ctx => hint(ctx, word, nested));
    }
}

/// A new coroutine's control block on `backend`; an error of kind `Unsupported` if that backend is not
/// available.
#[inline]
pub(crate) fn spawn(backend: Backend, spec: Spec, entry: impl Entry) -> io::Result<Arc<Control>> {
    if !backend.is_available() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            backend.unavailable_because(),
        ));
    }
    match backend {
        Backend::Thread => thread::ThreadContext::spawn(spec, entry),
        #[cfg(cothread_native)]
        Backend::Native => native::NativeContext::spawn(spec, entry),
        #[cfg(all(feature = "native", not(cothread_native)))]
        Backend::Native => unreachable!("an unavailable backend returned above"),
    }
}

/// The owner's last step of its drop: [`ContextOps::retire`] of the coroutine's backend.
#[inline]
pub(crate) fn retire(co: Arc<Control>) {
    match co.context {
        Context::Thread(_) => thread::ThreadContext::retire(co),
        #[cfg(cothread_native)]
        Context::Native(_) => native::NativeContext::retire(co),
        #[cfg(cothread_native)]
        Context::Generator(_) => drop(co),
    }
}

/// The pool counters of `backend` (all zero for one not compiled in).
pub(crate) fn pool_stats(backend: Backend) -> PoolStats {
    match backend {
        Backend::Thread => thread::ThreadContext::pool_stats(),
        #[cfg(cothread_native)]
        Backend::Native => native::NativeContext::pool_stats(),
        #[cfg(all(feature = "native", not(cothread_native)))]
        Backend::Native => PoolStats::default(),
    }
}

/// Shrinks every backend's pool to `max` idle threads or stacks.
pub(crate) fn trim_pools(max: usize) {
    thread::ThreadContext::trim_pool(max);
    #[cfg(cothread_native)]
    native::NativeContext::trim_pool(max);
}

/// On a home thread: unwinds the suspended native coroutines whose owners dropped them on other threads
/// (orphans). One load while there are none; nothing to do where the native backend is not compiled in.
#[inline]
pub(crate) fn unwind_orphans() {
    #[cfg(cothread_native)]
    native::unwind_orphans();
}
