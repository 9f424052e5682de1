//! The native backend (`--features native`): each coroutine runs on a stack of its own, switched to on the
//! thread that enters it, as in QEMU's `coroutine-ucontext.c`. The switch itself is [`corosensei`]'s (stacks
//! with a guard page, unwinding and backtraces across switches); this module adds what QEMU's backend does
//! around it: a pool of stacks ([`stacks`]), a stack overflow report ([`overflow`]), and the rule that a
//! native coroutine only ever runs on one thread.
//!
//! # One thread per coroutine
//!
//! A context is bound to a thread (its *home*) when somebody first tries to enter it; from then on only that
//! thread switches to its stack ([`NativeContext::runs_here`], checked by `coroutine.rs` before it claims the
//! phase word). So everything the coroutine's stack holds (values that are not `Send`, addresses of the home
//! thread's thread-locals that the compiler cached across a `yield_now`) is only ever used by the home
//! thread, and the `Coroutine` that owns it can be `Send`: moving the owner moves a handle, never the
//! execution. See `docs/native.md` for the whole argument.
//!
//! # The phase word on one thread
//!
//! The phases move as on the thread backend (`coroutine.rs` is the same for both), with the one-writer
//! transitions of the phase word: the enterer claims (`Idle -> Running`); `yield_now` goes straight to `Idle`, since
//! on one thread the enterer runs next and has nothing to wait for; [`NativeContext::resume`] finishes the phase word
//! when the body returned. Nobody ever waits on a native coroutine's phase word: a native context carries no
//! lock and no condition variable.

use std::cell::{Cell, UnsafeCell};
use std::io;
use std::mem::{self, ManuallyDrop};

use corosensei::stack::DefaultStack;
use corosensei::{CoroutineResult, Yielder};

use super::{Context, ContextOps, Control, Entry, PoolStats, Spec, Unwind};
use crate::control::{Cancelled, Phase, PhaseWord, current_ptr};
use crate::sync::Arc;
use crate::sync::Mutex;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

pub(crate) mod generator;
#[cfg(unix)]
mod overflow;
pub(crate) mod stacks;

/// The corosensei coroutine that runs one of ours: nothing goes in or out (values go through `coroutine.rs`;
/// the coroutine finds its `Control` in `CURRENT` when it starts).
type Switch = corosensei::Coroutine<(), (), (), DefaultStack>;

/// A native context. See the module documentation.
///
/// Invariants:
/// - `home` is [`UNBOUND`] until the first [`runs_here`](NativeContext::runs_here), then the [`thread_token`]
///   of the thread bound; it changes again only when a finished context is reused for a new coroutine
///   ([`reuse`](NativeContext::reuse), which unbinds it).
/// - `switch` holds the coroutine's corosensei coroutine, on the context's stack, for the whole life of the
///   context: unstarted (the entry waits on the stack, unrun), running, suspended or done (finished, unwound
///   or discarded unstarted; the stack stays with it until the context is reused or dropped). It is touched
///   only with the phase word claimed on the home thread ([`resume`](NativeContext::resume),
///   [`unwind`](NativeContext::unwind), [`discard_unstarted`](NativeContext::discard_unstarted)), or by
///   whoever holds the only reference to the coroutine (`drop`, [`reuse`](NativeContext::reuse),
///   [`into_stack`](NativeContext::into_stack)); a started switch is only ever resumed on the home thread, and
///   `drop` never resumes or unwinds it. It is taken out of its `ManuallyDrop` only by `reuse` (which puts a new
///   one in at once), `into_stack` and `drop` (which end the context), and by
///   [`return_stack`](NativeContext::return_stack), which sets `stack_gone`; after that nothing touches it.
/// - `stack_gone` is set once, by the owner's drop of a finished coroutine that handles still refer to
///   ([`retire`]); the context is then never resumed, reused or made a spare again.
/// - `yielder` is null until the coroutine starts, then points at the corosensei `Yielder` in the first frame
///   of the coroutine's stack; it is read only by the coroutine itself ([`suspend`](NativeContext::suspend)).
pub(crate) struct NativeContext {
    home: AtomicU64,
    /// The stack's pool bucket (its usable size).
    size: usize,
    /// The lowest address of the stack's guard page, for the overflow report (set again when the context is
    /// reused with another stack).
    #[cfg_attr(not(unix), allow(dead_code))]
    guard: Cell<usize>,
    yielder: Cell<*const Yielder<(), ()>>,
    switch: UnsafeCell<ManuallyDrop<Switch>>,
    stack_gone: Cell<bool>,
}

// SAFETY: `NativeContext` is shared through `Arc<Control>` by `CoroutineRef`s on any thread. Its non-`Sync`
// parts are `switch` and `yielder`, and both are used by one thread only: `switch` by the home thread holding the
// phase word (which one enterer at a time can claim) or by the holder of the only reference, `yielder` by the
// coroutine, which runs only on the home thread. What may cross threads is what `drop` touches on whatever
// thread drops the last reference: an unstarted switch, whose stack holds only the entry (which is `Send`) and
// which `drop` drops in place without switching to the stack, a done one (nothing left on its stack), or a
// suspended one that `drop` only forgets (moving its bytes, running nothing on its stack and touching none of
// the values there). See `docs/native.md`.
unsafe impl Send for NativeContext {}
// SAFETY: as for `Send`: every `&self` method that touches the non-`Sync` fields runs on the home thread only
// (`runs_here` is checked before the phase word is claimed, and `suspend` runs on the coroutine's own stack).
unsafe impl Sync for NativeContext {}

/// The next thread token. Tokens start at 1: a thread's token reads 0 until it gets one.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

/// The `home` of a context bound to no thread yet: never a thread token, and never 0 (the token of a thread
/// that has none yet), so that `home == THREAD_TOKEN` alone says "bound to this thread".
const UNBOUND: u64 = u64::MAX;

std::thread_local! {
    static THREAD_TOKEN: Cell<u64> = const { Cell::new(0) };
}

/// A number that names the calling thread for the life of the process. Unlike a thread-local's address, it is
/// never reused by a later thread, so a context bound to a thread that has exited can never be run again.
#[inline]
fn thread_token() -> u64 {
    let token = THREAD_TOKEN.with(Cell::get);
    if token != 0 {
        token
    } else {
        new_thread_token()
    }
}

/// Gives this thread its token: the first time it binds a native coroutine (or tries to: one bound elsewhere),
/// so before any starts here. Also prepares the thread for the overflow report.
#[cold]
fn new_thread_token() -> u64 {
    let token = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    THREAD_TOKEN.with(|t| t.set(token));
    #[cfg(unix)]
    overflow::prepare_thread();
    // Registers the thread-exit hook that unwinds the orphans still waiting for this thread.
    let _ = ORPHAN_EXIT.try_with(|_| ());
    token
}

/// An orphan: a suspended native coroutine whose owner dropped it on a thread other than its home, with its
/// home's token and how the owner's drop unwinds it.
struct Orphan {
    home: u64,
    co: Arc<Control>,
    unwind: Unwind,
}

/// The orphans of every thread: only the home can unwind them ([`unwind_orphans`]).
static ORPHANS: Mutex<Vec<Orphan>> = Mutex::new(Vec::new());
/// How many coroutines `ORPHANS` holds: a home thread's check costs one load while there are none.
static ORPHAN_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Hands an orphan to its home thread (see [`ORPHANS`]).
fn adopt(orphan: Orphan) {
    let mut orphans = ORPHANS.lock();
    orphans.push(orphan);
    ORPHAN_COUNT.store(orphans.len(), Ordering::Release);
}

/// On a home thread: unwinds the orphans handed to it (their destructors run here, their stacks go back to the
/// pool). Called when the thread creates a native coroutine and when it exits.
pub(crate) fn unwind_orphans() {
    if ORPHAN_COUNT.load(Ordering::Acquire) == 0 {
        return;
    }
    let me = THREAD_TOKEN.with(Cell::get);
    let mine: Vec<Orphan> = {
        let mut orphans = ORPHANS.lock();
        let (mine, others) = mem::take(&mut *orphans)
            .into_iter()
            .partition(|orphan| orphan.home == me);
        *orphans = others;
        ORPHAN_COUNT.store(orphans.len(), Ordering::Release);
        mine
    };
    for Orphan { co, unwind, .. } in mine {
        unwind(&co);
        // Not kept as a spare: this may run while the thread exits.
        retire(co, false);
    }
}

/// Unwinds this thread's orphans when it exits.
struct OrphanExit;

impl Drop for OrphanExit {
    fn drop(&mut self) {
        unwind_orphans();
    }
}

std::thread_local! {
    static ORPHAN_EXIT: OrphanExit = const { OrphanExit };
}

/// The first frame of a native coroutine's stack: records the `Yielder`, then runs the entry.
///
/// # Safety
/// Called as the first resume's switch lands: `CURRENT` is this coroutine's control block (`coroutine.rs` sets
/// it before every native resume), which the resumer keeps alive for the whole resume.
unsafe fn run_entry(yielder: &Yielder<(), ()>, entry: impl Entry) {
    let co = current_ptr::<Context>();
    // The coroutine's own `Arc<Control>`, for the entry: a copy of the pointer that owns no reference (never
    // dropped). It is used only while the coroutine runs, that is inside a `resume`,
    // whose caller holds a reference for the whole call; so no count is needed (two fewer atomic operations per
    // lifecycle), and the stack holds no reference to its own `Control` (no cycle: a suspended coroutine whose
    // owner was leaked does not keep its `Control` alive).
    // SAFETY: `co` is `Arc::as_ptr` of a live `Arc` (the caller's promise and `CURRENT`'s invariant), a valid
    // argument for `Arc::from_raw`; `ManuallyDrop` makes sure it never gives back a reference it did not take.
    let own = mem::ManuallyDrop::new(unsafe { Arc::from_raw(co) });
    let Context::Native(context) = &own.context else {
        unreachable!("cothread: a native stack runs a coroutine of another backend");
    };
    context.yielder.set(yielder);
    entry(&own);
}

impl NativeContext {
    /// [`runs_here`](ContextOps::runs_here) when `home` is not this thread's token: binds an unbound context to
    /// this thread (giving the thread a token first if it has none, which prepares it for the overflow report).
    #[cold]
    fn bind(&self, co: &Arc<Control>, owner: bool) -> bool {
        let me = thread_token();
        // No `Weak` is ever made of a control block, so for an owner (calling with `&mut Coroutine`) a strong
        // count of 1 means that nobody else can enter or bind the context meanwhile: a plain store binds it. The
        // fence makes whatever the holders of dropped references did (a handle that bound the context on its
        // thread, say) happen before this, through their `Release` decrements.
        let bound = if owner && Arc::strong_count(co) == 1 {
            fence(Ordering::Acquire);
            let unbound = self.home.load(Ordering::Relaxed) == UNBOUND;
            if unbound {
                self.home.store(me, Ordering::Relaxed);
            }
            unbound
        } else {
            self.home
                .compare_exchange(UNBOUND, me, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        };
        bound || self.home.load(Ordering::Relaxed) == me
    }

    /// Makes a finished context new, for `entry` on the same stack, unbound.
    ///
    /// # Safety
    /// The caller holds the only reference to the coroutine whose context this is, and that coroutine has
    /// finished (its switch is done).
    unsafe fn reuse(&self, entry: impl Entry) {
        // SAFETY: the caller holds the only reference: nobody else touches `switch`.
        let slot = unsafe { &mut *self.switch.get() };
        debug_assert!(slot.done());
        // Between taking the old switch out and putting the new one in, the slot holds a moved-out value that
        // `drop` would use again, so an unwind there (none is expected: `into_stack` of a done switch and
        // `with_stack` do not panic) aborts instead.
        let abort = AbortOnUnwind;
        // SAFETY: the old switch is taken out once, and the slot gets a new one before anything else can
        // touch it (the guard sees to that).
        let done = unsafe { ManuallyDrop::take(slot) };
        *slot = ManuallyDrop::new(new_switch(done.into_stack(), entry));
        mem::forget(abort);
        self.home.store(UNBOUND, Ordering::Relaxed);
        self.yielder.set(std::ptr::null());
    }

    /// The owner dropped a finished coroutine that handles still refer to: they keep the control block (for its
    /// phase and id), but the stack goes back to the pool now.
    ///
    /// # Safety
    /// The caller is the owner's drop, holding a reference; every other reference is a handle, and the
    /// coroutine's phase says `Finished` (so a handle's enter stops at the claim and never touches `switch`).
    unsafe fn return_stack(&self) {
        // SAFETY: the caller's promise: nobody else touches `switch` while we hold our reference, and whoever
        // drops the last one later (`drop`) sees `stack_gone` through the reference count's release/acquire.
        let switch = unsafe { &mut *self.switch.get() };
        if self.stack_gone.get() || !switch.done() {
            return; // a suspended stack (left by a drop under `panic = "abort"`) stays where it is
        }
        // SAFETY: taken out once: `stack_gone` keeps everything else away from it from now on.
        let done = unsafe { ManuallyDrop::take(switch) };
        self.stack_gone.set(true);
        stacks::put_back(self.size, done.into_stack());
    }

    /// Ends a finished context (a spare, which always has its stack), keeping its stack.
    fn into_stack(self) -> DefaultStack {
        debug_assert!(!self.stack_gone.get());
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped or used again, so the switch is taken out once; nothing else of a
        // context needs dropping.
        let done = unsafe { ManuallyDrop::take(this.switch.get_mut()) };
        done.into_stack()
    }
}

/// Aborts the process if dropped (see [`NativeContext::reuse`]).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!("cothread: a panic while a native context was being reused");
        std::process::abort();
    }
}

/// The lowest address of the guard page of the native stack running on this thread, or 0 if none runs: for
/// the stack overflow handler, so only plain loads (a thread-local without a destructor, then the running
/// coroutine's control block).
#[cfg(unix)]
fn running_guard() -> usize {
    let current = current_ptr::<Context>();
    // SAFETY: a non-null `CURRENT` points at the control block of the coroutine running on this thread, which
    // its resumer keeps alive (also between a switch back and its restoring `CURRENT`).
    match unsafe { current.as_ref() }.map(|co| &co.context) {
        Some(Context::Native(context)) => context.guard.get(),
        Some(Context::Generator(context)) => context.guard(),
        _ => 0,
    }
}

impl ContextOps for NativeContext {
    const CLAIM_STARTS: bool = false;
    const ENTERER_WAITS: bool = false;

    fn new(spec: &Spec, entry: impl Entry) -> io::Result<Self> {
        let size = stacks::bucket(spec.stack_size)?;
        let stack = stacks::take(size)?;
        let guard = corosensei::stack::Stack::limit(&stack).get();
        Ok(NativeContext {
            home: AtomicU64::new(UNBOUND),
            size,
            guard: Cell::new(guard),
            yielder: Cell::new(std::ptr::null()),
            switch: UnsafeCell::new(ManuallyDrop::new(new_switch(stack, entry))),
            stack_gone: Cell::new(false),
        })
    }

    #[inline]
    fn into_context(self) -> Context {
        Context::Native(self)
    }

    /// Reuses this thread's spare (a finished coroutine's control block and stack) if it has one of the right
    /// stack size and the coroutine is unnamed: no allocation.
    #[inline]
    fn spawn(spec: Spec, entry: impl Entry) -> io::Result<Arc<Control>> {
        let entry = if spec.name.is_none() {
            match reuse_spare(&spec, entry) {
                Ok(co) => return Ok(co),
                Err(entry) => entry,
            }
        } else {
            entry
        };
        let context = Self::new(&spec, entry)?.into_context();
        Ok(Arc::new(Control::new(context, spec.name)))
    }

    #[inline]
    fn resume(&self, co: &Arc<Control>) -> Phase {
        debug_assert_eq!(self.home.load(Ordering::Relaxed), thread_token());
        debug_assert!(std::ptr::eq(current_ptr::<Context>(), Arc::as_ptr(co)));
        // SAFETY: the caller holds the phase word (so no other enterer is in here) and runs on the home thread
        // (`runs_here` was checked before the claim), so this is the only reference to `switch`. The coroutine
        // that runs during the switch below touches only `yielder`, never `switch`: entering itself fails the
        // claim, and dropping its owner from inside returns before touching the context. (A done switch is
        // never resumed: its phase says `Finished`; corosensei would panic if it were.)
        let running = unsafe { &mut *self.switch.get() };
        // The stack overflow handler finds the running stack's guard page through the coroutine's `Control`
        // (`CURRENT`), so nothing is recorded around the switch.
        match running.resume(()) {
            // `yield_local` has made the phase `Idle` already; a coroutine abandoned during its drop (or under
            // `panic = "abort"`) finished it before its last suspend.
            CoroutineResult::Yield(()) if co.phase.phase() != Phase::Finished => Phase::Yielded,
            CoroutineResult::Yield(()) => Phase::Finished,
            // The stack stays with the context until it is reused or dropped.
            CoroutineResult::Return(()) => {
                co.phase.finish_local();
                Phase::Finished
            }
        }
    }

    #[inline]
    fn claim(&self, word: &PhaseWord) -> Result<(), Phase> {
        word.claim_local()
    }

    #[inline]
    fn yield_to_enterer(&self, word: &PhaseWord) -> Result<(), Cancelled> {
        word.yield_local()
    }

    fn finish(&self, word: &PhaseWord) {
        word.finish();
    }

    #[inline]
    fn suspend(&self, co: &Control) -> Result<(), Cancelled> {
        let yielder = self.yielder.get();
        debug_assert!(!yielder.is_null());
        // SAFETY: `suspend` is called by the running coroutine (from `yield_now`), so its first frame, which
        // holds the `Yielder` that `yielder` points at, is live below us on this stack.
        unsafe { (*yielder).suspend(()) };
        // A dropped coroutine is resumed to unwind itself (`coroutine.rs` raises its own forced unwind, which
        // can also stop at a destructor's wait; corosensei's would be raised again there).
        if co.phase.is_cancelled() {
            return Err(Cancelled);
        }
        Ok(())
    }

    fn discard_unstarted(&self) -> bool {
        // SAFETY: as in `resume`: the caller holds the phase word on the home thread, and the coroutine is not
        // running (it would hold the phase word otherwise).
        let switch = unsafe { &mut *self.switch.get() };
        if switch.started() {
            return false;
        }
        // Drops the entry in place (corosensei does not switch to the stack for that); the switch is done.
        switch.force_unwind();
        true
    }

    fn orphan(&self, co: &Arc<Control>, unwind: Unwind) {
        adopt(Orphan {
            home: self.home.load(Ordering::Relaxed),
            co: Arc::clone(co),
            unwind,
        });
    }

    #[inline]
    fn retire(co: Arc<Control>) {
        let reusable = co.name.is_none();
        retire(co, reusable);
    }

    fn pool_stats() -> PoolStats {
        stacks::stats()
    }

    fn trim_pool(max: usize) {
        stacks::trim(max);
    }

    #[inline]
    fn runs_here(&self, co: &Arc<Control>, owner: bool) -> bool {
        self.home.load(Ordering::Relaxed) == THREAD_TOKEN.with(Cell::get) || self.bind(co, owner)
    }
}

/// A switch that runs `entry` on `stack` when first resumed. The entry is moved onto the stack itself (no
/// allocation).
fn new_switch(stack: DefaultStack, entry: impl Entry) -> Switch {
    let body = move |yielder: &Yielder<(), ()>, ()| {
        // SAFETY: this runs as the first resume lands, with `CURRENT` set to this coroutine (see `resume`).
        unsafe { run_entry(yielder, entry) }
    };
    corosensei::Coroutine::with_stack(stack, body)
}

impl Drop for NativeContext {
    fn drop(&mut self) {
        if self.stack_gone.get() {
            return;
        }
        // SAFETY: `drop` runs once and ends the context, and the switch is still there (`stack_gone` is
        // false): it is taken out once.
        let mut switch = unsafe { ManuallyDrop::take(self.switch.get_mut()) };
        if !switch.started() {
            // Drops the entry in place (corosensei does not switch to the stack for that).
            switch.force_unwind();
        }
        if switch.done() {
            stacks::put_back(self.size, switch.into_stack());
        } else {
            // A suspended stack (its owner was leaked, or dropped under `panic = "abort"`, or abandoned during
            // its drop): it can only be unwound on its home thread, and this may not be it. Leak it rather than
            // let corosensei's own drop unwind it here. (One dropped on another thread is an orphan, unwound by
            // its home thread before it gets here.)
            mem::forget(switch);
        }
    }
}

/// The owner drops a native coroutine (after `coroutine.rs` has done what dropping means), or its home thread
/// an orphan it unwound. One that finished
/// and that nothing else refers to becomes, with its stack, this thread's spare (QEMU's pool keeps whole
/// `Coroutine` objects the same way) if it is `reusable` (unnamed), for [`reuse_spare`] (with pooling off,
/// [`stacks::keep_spare`] frees it); one that finished and that handles still refer to gives its stack back
/// (the handles keep only the control block); any other is just dropped.
fn retire(co: Arc<Control>, reusable: bool) {
    let Context::Native(context) = &co.context else {
        return;
    };
    // No `Weak` is ever made of a control block, so a strong count of 1 means that ours is the only reference;
    // the fence makes what the other references' owners did before dropping them (their counts' `Release`
    // decrements) happen before what we do with it, as `Arc::get_mut` does.
    if Arc::strong_count(&co) != 1 {
        if co.phase.phase() == Phase::Finished {
            // SAFETY: we are the owner's drop, and every other reference is a handle (only the owner's
            // `Coroutine` and handles hold references while the coroutine does not run); the phase is `Finished`.
            unsafe { context.return_stack() };
        }
        return;
    }
    if !reusable {
        return;
    }
    fence(Ordering::Acquire);
    // SAFETY: ours is the only reference (above).
    if unsafe { &*context.switch.get() }.done() {
        // SAFETY: as above.
        unsafe { co.renew() };
        stacks::keep_spare(context.size, co);
    }
}

/// A coroutine for `entry` made from this thread's spare, if it has one with a stack of the size `spec` asks
/// for: no allocation, no stack from the pool (the spare got its new id when it was renewed). `Err(entry)` if
/// there is none (the caller's ordinary path then makes one, or reports why it cannot).
#[inline]
fn reuse_spare<E: Entry>(spec: &Spec, entry: E) -> Result<Arc<Control>, E> {
    let Ok(size) = stacks::bucket(spec.stack_size) else {
        return Err(entry);
    };
    let Some(co) = stacks::take_spare(size) else {
        return Err(entry);
    };
    let Context::Native(context) = &co.context else {
        return Err(entry);
    };
    // SAFETY: a spare is held by nobody else (see `retire`) and has finished, and `take_spare` gave it to us.
    unsafe { context.reuse(entry) };
    Ok(co)
}

/// The stack of a spare, whose control block is freed (for [`stacks`], when it needs the stack alone). `None`
/// if it is somehow not a native spare held by nobody else (then it is dropped the ordinary way).
pub(crate) fn spare_into_stack(co: Arc<Control>) -> Option<DefaultStack> {
    let control = Arc::try_unwrap(co).ok()?;
    match control.context {
        Context::Native(context) => Some(context.into_stack()),
        Context::Generator(context) => context.take_stack(),
        Context::Thread(_) => None,
    }
}
