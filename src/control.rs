//! The floor every backend and the API stand on (QEMU's `coroutine_int.h`): a coroutine's control block, the
//! pointer to the coroutine running on this thread, and the phase word with all of its transitions.
//!
//! This module names no backend and no API: the control block is generic over the context it carries (the
//! crate uses one type, `backend::Context`), and a backend that waits (the thread backend) keeps its own bits
//! in the phase word ([`PhaseWord::WAITER_BITS`]) and wakes whoever the old word it gets back says is parked.
//!
//! Code under `cfg(cothread_planted_bug = "...")` is deliberately broken: `loom-tests/` builds with one such
//! bug at a time to show that its models catch it (see `loom-tests/README.md`). Normal builds contain none.

use std::any::{Any, TypeId};
use std::cell::Cell;

use crate::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use crate::sync::cell::UnsafeCell;

/// What a coroutine is doing, as the low bits of its [`PhaseWord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Suspended (or not started): waiting for an enter.
    Idle,
    /// Entered: the coroutine runs, the enterer waits.
    Running,
    /// Has yielded; the enterer has not taken control back yet.
    Yielded,
    /// The body returned or panicked.
    Finished,
}

/// The coroutine was cancelled (its owner dropped it) and must unwind instead of yielding.
#[derive(Debug)]
pub(crate) struct Cancelled;

const PHASE_MASK: u32 = 0b11;
const IDLE: u32 = 0;
const RUNNING: u32 = 1;
const YIELDED: u32 = 2;
const FINISHED: u32 = 3;
/// The owner dropped the coroutine: it must unwind at its next yield.
const CANCEL: u32 = 0b1000;

/// The phase of the word `state`.
pub(crate) fn phase_of(state: u32) -> Phase {
    match state & PHASE_MASK {
        IDLE => Phase::Idle,
        RUNNING => Phase::Running,
        YIELDED => Phase::Yielded,
        _ => Phase::Finished,
    }
}

/// One coroutine's phase, the only record of it.
///
/// # Invariants
/// - Phase moves only along `Idle -> Running` (an enterer's [`claim`](PhaseWord::claim)),
///   `Running -> Yielded | Finished` (the coroutine, in [`yield_to_enterer`](PhaseWord::yield_to_enterer) /
///   [`finish`](PhaseWord::finish)), `Yielded -> Idle` (the enterer that was waiting, in
///   [`take_back`](PhaseWord::take_back)) and, under `panic = "abort"` only, `Idle -> Finished` (the owner's
///   drop, in [`abandon`](PhaseWord::abandon)). `Finished` is final, but for a finished control block reused
///   whole ([`reset_local`](PhaseWord::reset_local)).
/// - `CANCEL` is sticky: once set (the owner dropped the coroutine) the coroutine never yields again.
/// - The [`WAITER_BITS`](PhaseWord::WAITER_BITS) belong to the backend's waiter. A transition that hands
///   control to the other side (`claim`, `yield_to_enterer`, `finish`) clears them, since they describe the
///   side that was waiting for it, and returns the old word, so that the waiter can wake whoever it says is
///   parked; `take_back` keeps them (the coroutine's waiter may have set them meanwhile).
/// - A one-writer word (the `_local` transitions: a native coroutine's, which only its home thread writes)
///   never has waiter bits set.
#[derive(Debug)]
pub(crate) struct PhaseWord(AtomicU32);

impl PhaseWord {
    /// The bits a backend's waiter may keep in the word (see the invariants).
    pub(crate) const WAITER_BITS: u32 = !(PHASE_MASK | CANCEL);

    pub(crate) fn new() -> PhaseWord {
        PhaseWord(AtomicU32::new(IDLE))
    }

    /// The current phase (a snapshot; only meaningful to the side allowed to move it).
    #[inline]
    pub(crate) fn phase(&self) -> Phase {
        phase_of(self.0.load(Ordering::Acquire))
    }

    /// The whole word, for a waiter.
    #[inline]
    pub(crate) fn load(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Waiter: sets `bit` (one of [`WAITER_BITS`](PhaseWord::WAITER_BITS)) if the word is still `seen`.
    pub(crate) fn try_set_waiter_bit(&self, seen: u32, bit: u32) -> bool {
        debug_assert_eq!(bit & !Self::WAITER_BITS, 0);
        self.0
            .compare_exchange(seen, seen | bit, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Waiter: sets or clears a hint `bit` (one of [`WAITER_BITS`](PhaseWord::WAITER_BITS)) that nobody waits
    /// for.
    pub(crate) fn set_waiter_hint(&self, bit: u32, on: bool) {
        debug_assert_eq!(bit & !Self::WAITER_BITS, 0);
        if on {
            self.0.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.0.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Enterer: `Idle -> Running`. Returns the old word, or the phase found.
    #[inline]
    pub(crate) fn claim(&self) -> Result<u32, Phase> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & PHASE_MASK != IDLE {
                return Err(phase_of(cur));
            }
            #[cfg(not(cothread_planted_bug = "claim_drops_cancel"))]
            let new = (cur & CANCEL) | RUNNING;
            // Planted bug (loom-tests/README.md): the claim forgets that the owner cancelled.
            #[cfg(cothread_planted_bug = "claim_drops_cancel")]
            let new = RUNNING;
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Enterer, once the coroutine stopped running (the word was `seen`): takes control back
    /// (`Yielded -> Idle`). Returns `Yielded` or `Finished`.
    pub(crate) fn take_back(&self, seen: u32) -> Phase {
        if seen & PHASE_MASK == YIELDED {
            // Only this thread moves the phase out of `Yielded`; the coroutine's waiter may set bits meanwhile,
            // which `fetch_and` keeps.
            #[cfg(not(cothread_planted_bug = "consume_with_store"))]
            self.0.fetch_and(!PHASE_MASK, Ordering::AcqRel);
            // Planted bug: a plain store loses the waiter bits (and CANCEL) set meanwhile.
            #[cfg(cothread_planted_bug = "consume_with_store")]
            self.0.store(IDLE, Ordering::Release);
            Phase::Yielded
        } else {
            Phase::Finished
        }
    }

    /// Whether the word `state` says the coroutine stopped running (so its enterer may take control back).
    #[inline]
    pub(crate) fn stopped_running(state: u32) -> bool {
        state & PHASE_MASK != RUNNING
    }

    /// Whether the word `state` says the coroutine has been entered again (so its wait for that is over).
    #[inline]
    pub(crate) fn entered_again(state: u32) -> bool {
        #[cfg(not(cothread_planted_bug = "coroutine_wakes_on_idle"))]
        return state & PHASE_MASK == RUNNING;
        // Planted bug: the coroutine resumes as soon as the enterer has taken control back.
        #[cfg(cothread_planted_bug = "coroutine_wakes_on_idle")]
        return state & PHASE_MASK != YIELDED;
    }

    /// Coroutine: `Running -> Yielded`. Returns the old word; fails, changing nothing, if the coroutine was
    /// cancelled: then it must unwind instead of yielding.
    pub(crate) fn yield_to_enterer(&self) -> Result<u32, Cancelled> {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            debug_assert_eq!(cur & PHASE_MASK, RUNNING);
            if cur & CANCEL != 0 {
                return Err(Cancelled);
            }
            // Planted bug: a relaxed yield publishes nothing the coroutine wrote before it.
            #[cfg(cothread_planted_bug = "relaxed_yield")]
            let (success, failure) = (Ordering::Relaxed, Ordering::Relaxed);
            #[cfg(not(cothread_planted_bug = "relaxed_yield"))]
            let (success, failure) = (Ordering::AcqRel, Ordering::Acquire);
            match self.0.compare_exchange_weak(cur, YIELDED, success, failure) {
                Ok(_) => return Ok(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Coroutine: `Running -> Finished`, clearing the waiter bits and `CANCEL` (moot once finished). Returns
    /// the old word.
    #[cfg_attr(cothread_planted_bug = "state_after_notify", allow(dead_code))]
    pub(crate) fn finish(&self) -> u32 {
        let old = self.0.swap(FINISHED, Ordering::AcqRel);
        debug_assert_eq!(old & PHASE_MASK, RUNNING);
        old
    }

    /// [`finish`](PhaseWord::finish) as a plain store, for the planted bug `state_after_notify` only (the
    /// waiter wakes the enterer before the phase changes).
    #[cfg(cothread_planted_bug = "state_after_notify")]
    pub(crate) fn finish_late(&self) {
        self.0.store(FINISHED, Ordering::Release);
    }

    /// Owner, under `panic = "abort"`: `Idle -> Finished` without running the coroutine again, which then never
    /// runs. On failure returns the phase found.
    pub(crate) fn abandon(&self) -> Result<(), Phase> {
        let cur = self.0.load(Ordering::Acquire);
        if cur & PHASE_MASK != IDLE {
            return Err(phase_of(cur));
        }
        self.0
            .compare_exchange(cur, FINISHED, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|_| Phase::Idle)
    }

    /// Owner: marks the coroutine cancelled. Returns the phase it had.
    pub(crate) fn cancel(&self) -> Phase {
        phase_of(self.0.fetch_or(CANCEL, Ordering::AcqRel))
    }

    /// Whether [`cancel`](PhaseWord::cancel) was called.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) & CANCEL != 0
    }
}

/// The same transitions for a word that only one thread ever writes: a native coroutine's, which only its home
/// thread claims, runs, yields, finishes and cancels (the native backend checks the thread before any of these;
/// other threads only read the phase). With one writer, a load and a store do what the read-modify-write does,
/// nobody waits (the switch returns only once the coroutine has stopped), so no waiter bit is ever set; a yield
/// skips `Yielded` (see [`yield_local`](PhaseWord::yield_local)). Stores are `Release` so that another thread's
/// [`phase`](PhaseWord::phase) that sees `Finished` also sees what the coroutine did before it finished.
#[cfg(cothread_native)]
impl PhaseWord {
    /// [`claim`](PhaseWord::claim) on a one-writer word.
    #[inline]
    pub(crate) fn claim_local(&self) -> Result<(), Phase> {
        let cur = self.0.load(Ordering::Relaxed);
        if cur & PHASE_MASK != IDLE {
            return Err(phase_of(cur));
        }
        self.0.store((cur & CANCEL) | RUNNING, Ordering::Release);
        Ok(())
    }

    /// [`yield_to_enterer`](PhaseWord::yield_to_enterer) and the enterer's [`take_back`](PhaseWord::take_back)
    /// in one step, `Running -> Idle`: on one thread the enterer is the next to run, so the coroutine takes the
    /// second step for it, and the enterer has nothing left to do when the switch comes back.
    #[inline]
    pub(crate) fn yield_local(&self) -> Result<(), Cancelled> {
        let cur = self.0.load(Ordering::Relaxed);
        debug_assert_eq!(cur & PHASE_MASK, RUNNING);
        if cur & CANCEL != 0 {
            return Err(Cancelled);
        }
        self.0.store(IDLE, Ordering::Release);
        Ok(())
    }

    /// [`finish`](PhaseWord::finish) on a one-writer word, called by the enterer once the body has returned.
    #[inline]
    pub(crate) fn finish_local(&self) {
        debug_assert_eq!(self.0.load(Ordering::Relaxed) & PHASE_MASK, RUNNING);
        self.0.store(FINISHED, Ordering::Release);
    }

    /// `Finished -> Idle`, the one move out of `Finished`: for a finished coroutine's control block reused
    /// whole for a new coroutine, by whoever holds the only reference to it.
    #[inline]
    pub(crate) fn reset_local(&self) {
        debug_assert_eq!(self.0.load(Ordering::Relaxed) & PHASE_MASK, FINISHED);
        self.0.store(IDLE, Ordering::Relaxed);
    }
}

/// A panic's payload; also a body's value, boxed, that only the owner (which knows its type) takes out again.
pub(crate) type Payload = Box<dyn Any + Send>;

/// `Control::unwinding`: no forced unwind raised.
pub(crate) const NOT_UNWINDING: u8 = 0;
/// `Control::unwinding`: `yield_now` raised the forced unwind.
pub(crate) const UNWINDING: u8 = 1;

/// A coroutine's control block: one allocation per coroutine, shared by its owner, its handles and the
/// coroutine itself, with the backend's context `K` in it. The body itself is not here: the backend keeps it
/// until it runs (on the native stack, or in the thread backend's start message).
///
/// Invariants:
/// - `phase` is the only record of the coroutine's phase;
/// - `unwinding` becomes [`UNWINDING`] once `yield_now` has raised the forced unwind; touched only by the
///   coroutine;
/// - `yielded_panicking` says whether the thread was panicking at the coroutine's last yield; touched only by
///   the coroutine;
/// - `out` is written only where the claim does not itself start the coroutine (the native backend), by each
///   enterer after its claim succeeds and before it resumes the coroutine: the owner's own slot for the value
///   (an `Option<R>` of the owner's `R`) when the owner enters, null otherwise; the coroutine reads it when its
///   body returns, before it finishes. Elsewhere it stays null (a thread-backed coroutine may run, and return,
///   as soon as the claim succeeds, so no enterer could set it in time);
/// - `stash` holds the value, boxed, if the body returned while `out` was null (a handle's enter); written by
///   the coroutine before it finishes, taken by the owner after it has seen the phase `Finished`;
/// - `panic` holds the body's panic payload; written by the coroutine before it finishes, taken by the one
///   enterer that gets control back from the run in which it finished;
/// - `scheduler` holds the record of the scheduler that owns the coroutine, if any (QEMU's `co->ctx`: the run
///   loop's task): set before the coroutine first runs, read by the coroutine while it runs, taken back only
///   once the coroutine has finished (or with the block).
///
/// The phase word's release/acquire transitions order every access to the cells, so that one side at a time
/// touches each.
pub(crate) struct Control<K> {
    pub(crate) phase: PhaseWord,
    pub(crate) context: K,
    /// Changes only when the block is reused whole for a new coroutine (native spares).
    pub(crate) id: AtomicU64,
    pub(crate) name: Option<String>,
    /// Set by a generator's owner before it first resumes it (and cleared when the block is renewed): only the
    /// owner may enter it, since its body may borrow what only the owner's lifetime keeps alive.
    pub(crate) owner_only: AtomicBool,
    pub(crate) unwinding: AtomicU8,
    pub(crate) yielded_panicking: AtomicBool,
    pub(crate) out: UnsafeCell<Out>,
    pub(crate) stash: UnsafeCell<Option<Payload>>,
    pub(crate) panic: UnsafeCell<Option<Payload>>,
    pub(crate) scheduler: UnsafeCell<Option<SchedulerRecord>>,
}

// SAFETY: the cells (`out`, `stash`, `panic`) are shared between a coroutine's context and its enterers, which
// may be different threads, but each is touched by one side at a time, in the order the phase word's
// release/acquire transitions impose (see the invariants above). What they pass between threads is `Send`: the
// value and the payload are `Send`, and `out` points at an `Option<R>` with `R: Send`. The context is `Sync`.
unsafe impl<K: Sync> Sync for Control<K> {}

/// A scheduler's record hung on a coroutine ([`Control::scheduler`]), with its type read once when it is hung,
/// so that the running coroutine finds it without a virtual call.
pub(crate) struct SchedulerRecord {
    /// The type of what `record` holds.
    type_id: TypeId,
    record: Box<dyn Any + Send + Sync>,
}

impl SchedulerRecord {
    /// `record`, boxed.
    pub(crate) fn new<T: Any + Send + Sync>(record: T) -> SchedulerRecord {
        SchedulerRecord {
            type_id: TypeId::of::<T>(),
            record: Box::new(record),
        }
    }

    /// The record, if it is a `T`.
    #[inline]
    pub(crate) fn downcast_ref<T: Any>(&self) -> Option<&T> {
        // SAFETY: `type_id` is the type of the boxed value, so it is a `T` when they match.
        (self.type_id == TypeId::of::<T>()).then(|| unsafe {
            &*std::ptr::from_ref::<dyn Any + Send + Sync>(&*self.record).cast::<T>()
        })
    }
}

impl<K> Control<K> {
    /// A new coroutine's control block, with a new id.
    pub(crate) fn new(context: K, name: Option<String>) -> Control<K> {
        Control {
            phase: PhaseWord::new(),
            context,
            id: AtomicU64::new(next_id()),
            name,
            owner_only: AtomicBool::new(false),
            unwinding: AtomicU8::new(NOT_UNWINDING),
            yielded_panicking: AtomicBool::new(false),
            out: UnsafeCell::new(Out::NONE),
            stash: UnsafeCell::new(None),
            panic: UnsafeCell::new(None),
            scheduler: UnsafeCell::new(None),
        }
    }

    /// Gives a reused block a new id (a native generator's, which keeps the rest: see
    /// `backend/native/generator.rs`).
    #[cfg(cothread_native)]
    #[inline]
    pub(crate) fn renew_id(&self) {
        self.id.store(next_id(), Ordering::Relaxed);
    }

    /// Readies the control block of a finished coroutine for a new coroutine, with a new id: phase `Idle`, and
    /// nothing left of the last body (a value its owner never took is dropped now, as it would have been with
    /// the block).
    ///
    /// # Safety
    /// The caller holds the only reference to `self`.
    #[cfg(cothread_native)]
    #[inline]
    pub(crate) unsafe fn renew(&self) {
        self.phase.reset_local();
        self.id.store(next_id(), Ordering::Relaxed);
        self.unwinding.store(NOT_UNWINDING, Ordering::Relaxed);
        self.yielded_panicking.store(false, Ordering::Relaxed);
        self.owner_only.store(false, Ordering::Relaxed);
        // SAFETY: the caller holds the only reference: nobody else touches the cells.
        unsafe {
            self.out.with_mut(|out| *out = Out::NONE);
            self.stash.with_mut(|stash| *stash = None);
            self.panic.with_mut(|panic| *panic = None);
            self.scheduler.with_mut(|scheduler| *scheduler = None);
        }
    }
}

/// Where the body of a coroutine puts its value: a pointer to the owner's `Option<R>`, or null.
#[derive(Clone, Copy)]
pub(crate) struct Out(pub(crate) *mut ());

// SAFETY: an `Out` is only written and read under the rules of `Control::out`; the `Option<R>` it points at
// has `R: Send`, and its owner waits, in `enter`, for as long as the coroutine may write through it.
unsafe impl Send for Out {}

impl Out {
    pub(crate) const NONE: Out = Out(std::ptr::null_mut());

    /// Whether this is an owner's slot (only the owner passes one).
    #[inline]
    pub(crate) fn is_owner(self) -> bool {
        !self.0.is_null()
    }
}

crate::sync::global! {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
}

/// Coroutine ids are handed to threads in blocks of this many, so that creating a coroutine takes no atomic
/// read-modify-write.
const ID_BLOCK: u64 = 1024;

crate::sync::thread_local! {
    /// This thread's block of ids: the next one and the end of the block.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// A new coroutine id, unique within the process.
#[inline]
fn next_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            next
        } else {
            let start = NEXT_ID.fetch_add(ID_BLOCK, Ordering::Relaxed);
            ids.set((start + 1, start + ID_BLOCK));
            start
        }
    })
}

crate::sync::thread_local! {
    /// The coroutine running on this thread: its control block (`Arc::as_ptr` of an `Arc<Control<K>>`, with
    /// the one `K` the crate uses, stored untyped so that this module need not name it), null outside
    /// coroutines. Set by a coroutine's first frame when it starts on a thread of its own, or by the enterer
    /// just before it switches stacks to a coroutine that runs on its thread; restored by an enterer when the
    /// coroutine it entered gives control back. While a coroutine is current, a reference keeps its control
    /// block alive: its entry frame's on the thread backend, the resumer's (held for the whole resume) on the
    /// native one. One load of a thread-local that has no destructor, so it can be read in a signal handler.
    static CURRENT: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// The control block of the coroutine running on this thread, null outside coroutines. The pointee is alive
/// while the coroutine runs (see `CURRENT`). `K` must be the crate's one context type (`backend::Context`).
#[inline]
pub(crate) fn current_ptr<K>() -> *const Control<K> {
    CURRENT.with(|c| c.get()).cast()
}

/// Makes `ptr` (null, or `Arc::as_ptr` of a live control block) the running coroutine on this thread.
#[inline]
pub(crate) fn set_current<K>(ptr: *const Control<K>) {
    CURRENT.with(|c| c.set(ptr.cast()));
}

/// [`set_current`], returning the coroutine that was current (the native generator's lean path, which switches
/// stacks without `enter`).
#[cfg(cothread_native)]
#[inline]
pub(crate) fn replace_current<K>(ptr: *const Control<K>) -> *const Control<K> {
    CURRENT.with(|c| c.replace(ptr.cast())).cast()
}

/// Whether the caller runs inside a coroutine.
#[inline]
pub(crate) fn in_coroutine() -> bool {
    !CURRENT.with(|c| c.get()).is_null()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claim_only_from_idle() {
        let w = PhaseWord::new();
        assert_eq!(w.phase(), Phase::Idle);
        w.claim().unwrap();
        assert_eq!(w.claim(), Err(Phase::Running));
        w.yield_to_enterer().unwrap();
        assert_eq!(w.claim(), Err(Phase::Yielded));
        assert_eq!(w.take_back(w.load()), Phase::Yielded);
        w.claim().unwrap();
        w.finish();
        assert_eq!(w.take_back(w.load()), Phase::Finished);
        assert_eq!(w.claim(), Err(Phase::Finished));
    }

    #[test]
    fn cancel_stops_yield() {
        let w = PhaseWord::new();
        w.claim().unwrap();
        assert_eq!(w.cancel(), Phase::Running);
        assert!(w.yield_to_enterer().is_err());
        assert!(w.is_cancelled());
        w.finish();
        assert_eq!(w.take_back(w.load()), Phase::Finished);
    }

    #[test]
    fn hand_overs_clear_waiter_bits_and_return_them() {
        let bit = 0b100;
        let w = PhaseWord::new();
        assert!(w.try_set_waiter_bit(w.load(), bit));
        assert_eq!(w.claim().unwrap() & bit, bit);
        assert_eq!(w.load() & bit, 0);
        w.set_waiter_hint(bit, true);
        assert_eq!(w.load() & bit, bit);
        w.set_waiter_hint(bit, false);
        assert_eq!(w.load() & bit, 0);
        w.set_waiter_hint(bit, true);
        assert_eq!(w.finish() & bit, bit);
        assert_eq!(w.load() & bit, 0);
    }
}
