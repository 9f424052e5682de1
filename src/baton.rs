//! The baton: the enter/yield handshake between a coroutine and whoever entered it.
//!
//! One `Baton` belongs to each coroutine. Its state word says who may run: the coroutine (`Running`) or the
//! side that entered it (`Yielded`, `Finished`), or nobody yet (`Idle`: suspended, waiting for an enter).
//! A waiter first spins on the word for a bounded number of rounds (see [`set_spin_limit`]), then parks on its
//! side's `Condvar`; a waker takes that side's lock and notifies only when the word says somebody parked.
//!
//! # Invariants
//! - Phase moves only along `Idle -> Running` (an enterer's [`Baton::claim`]), `Running -> Yielded | Finished`
//!   (the coroutine, in [`Baton::yield_to_caller`] / [`Baton::finish`]), `Yielded -> Idle` (the enterer
//!   that was waiting, in [`Baton::wait_for_caller`]) and, under `panic = "abort"` only, `Idle -> Finished`
//!   (the owner's drop, in [`Baton::abandon`]). `Finished` is final.
//! - `PARKED` is set only by a thread that holds its side's `lock` and goes on to wait on that side's `cvar`
//!   without releasing it in between. Every transition that a parked thread waits for clears `PARKED` in the
//!   same atomic step and, if it was set, takes the waiting side's `lock` before notifying, so the wake-up
//!   cannot fall between the waiter's check and its wait. One bit serves both sides because only the side
//!   that does not run can be parked.
//! - At most one thread waits on a baton at a time: the enterer waits while the phase is `Running`, the
//!   coroutine waits while it is not, and only one of them runs.
//! - `CANCEL` is sticky: once set (the owner dropped the coroutine) the coroutine never yields again.
//! - `NESTED` is set only while `Running`, by the coroutine, around its own enter of a coroutine that runs on a
//!   thread of its own (the coroutine then waits too); it is a hint (stop spinning), never a condition anybody
//!   waits for.
//!
//! Code under `cfg(cothread_planted_bug = "...")` is deliberately broken: `loom-tests/` builds with one such
//! bug at a time to show that its models catch it (see `loom-tests/README.md`). Normal builds contain none.

use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Condvar, Mutex, spin_loop, thread};

/// What a coroutine is doing, as the low bits of the baton's state word.
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

const PHASE_MASK: u32 = 0b11;
const IDLE: u32 = 0;
const RUNNING: u32 = 1;
const YIELDED: u32 = 2;
const FINISHED: u32 = 3;
/// Somebody is parked on `cvar` (or about to be, holding `lock`).
const PARKED: u32 = 0b100;
/// The owner dropped the coroutine: it must unwind at its next yield.
const CANCEL: u32 = 0b1000;
/// The running coroutine has itself entered another coroutine and waits for it: its own enterer will wait
/// long, so it parks at once instead of spinning. Set and cleared only by the coroutine, while `Running`.
const NESTED: u32 = 0b1_0000;

/// Which side waits, as an index into `Baton::adapt`.
const ENTERER: usize = 0;
const COROUTINE: usize = 1;
/// Adaptive spinning: the spin bound is cut by at most `>> MAX_SHIFT`; while cut, every `PROBE_EVERY`th
/// wait spins the whole bound.
const MAX_SHIFT: u32 = 6;
const SHIFT_MASK: u32 = 0xff;
const PROBE_EVERY: u32 = 8;

fn phase_of(state: u32) -> Phase {
    match state & PHASE_MASK {
        IDLE => Phase::Idle,
        RUNNING => Phase::Running,
        YIELDED => Phase::Yielded,
        _ => Phase::Finished,
    }
}

/// Default number of spin rounds before parking. Measured on a 2-core virtual machine: a round (a
/// `spin_loop` hint, a `yield_now` every 64th) takes about 40 ns, so 2,048 rounds spin about 80 us, longer
/// than the 35-60 us it takes to wake a parked thread there. A bound shorter than a wake-up lets two
/// threads that once parked stay in park mode; see the README for the figures.
pub const DEFAULT_SPIN_LIMIT: u32 = if cfg!(loom) { 1 } else { 2048 };

/// The largest `COTHREAD_SPIN_LIMIT` taken (about 40 ms of spinning); a larger one is cut to this, with a warning.
const MAX_ENV_SPIN_LIMIT: u32 = 1_000_000;

crate::sync::global! {
    /// `COTHREAD_SPIN_LIMIT`, read on first use, overrides the default.
    static SPIN_LIMIT: AtomicU32 = AtomicU32::new(
        crate::settings::env_number("COTHREAD_SPIN_LIMIT", DEFAULT_SPIN_LIMIT.into(), MAX_ENV_SPIN_LIMIT.into())
            as u32,
    );
}

/// Sets how many rounds a waiting thread checks the baton before it parks (0: park at once).
///
/// Spinning turns a hand-off between two cores from a futex wake-up (tens of microseconds on a virtual
/// machine whose idle CPUs halt) into a cache-line transfer (about 100 ns), at the price of burning CPU
/// while the other side runs. The bound keeps that price small when a coroutine runs for long; set it to 0
/// on an oversubscribed machine. Each round is one `spin_loop` hint; every 64th round is a
/// `thread::yield_now`, so a waiter that shares a core with the thread it waits for lets it run. The
/// environment variable `COTHREAD_SPIN_LIMIT`, read once on first use, sets the initial value.
///
/// ```
/// cothread::set_spin_limit(0); // always park
/// assert_eq!(cothread::spin_limit(), 0);
/// cothread::set_spin_limit(cothread::DEFAULT_SPIN_LIMIT);
/// ```
pub fn set_spin_limit(rounds: u32) {
    SPIN_LIMIT.store(rounds, Ordering::Relaxed);
}

/// The current spin bound set by [`set_spin_limit`].
pub fn spin_limit() -> u32 {
    SPIN_LIMIT.load(Ordering::Relaxed)
}

/// The hand-off state of one coroutine. See the module documentation for the invariants.
#[derive(Debug)]
pub(crate) struct Baton {
    state: AtomicU32,
    /// One per waiting side, indexed by `ENTERER` and `COROUTINE`.
    sides: [Side; 2],
}

/// Where one side of a baton waits. Each side parks on its own lock and condition variable, so that a
/// woken thread reacquiring its lock never collides with the waker, which goes on to park on the other one.
#[derive(Debug)]
struct Side {
    /// The adaptive spin state, see [`Baton::wait_until`]. Written only by this side's waiter.
    adapt: AtomicU32,
    lock: Mutex<()>,
    cvar: Condvar,
}

impl Side {
    fn new() -> Side {
        Side {
            adapt: AtomicU32::new(0),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
        }
    }
}

impl Baton {
    pub(crate) fn new() -> Self {
        Baton {
            state: AtomicU32::new(IDLE),
            sides: [Side::new(), Side::new()],
        }
    }

    /// The current phase (a snapshot; only meaningful to the side allowed to move it).
    pub(crate) fn phase(&self) -> Phase {
        phase_of(self.state.load(Ordering::Acquire))
    }

    /// Enterer: `Idle -> Running`, waking the coroutine if it parked. On failure returns the phase found.
    pub(crate) fn claim(&self) -> Result<(), Phase> {
        let mut cur = self.state.load(Ordering::Acquire);
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
                .state
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // Planted bug: the coroutine may have parked, and nobody wakes it.
                    #[cfg(not(cothread_planted_bug = "claim_skips_wake"))]
                    self.wake_if_parked(cur, COROUTINE);
                    return Ok(());
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Enterer: waits until the coroutine stops running, then takes control back (`Yielded -> Idle`).
    /// Returns `Yielded` or `Finished`.
    pub(crate) fn wait_for_caller(&self) -> Phase {
        let state = self.wait_until(ENTERER, |s| s & PHASE_MASK != RUNNING);
        if state & PHASE_MASK == YIELDED {
            // Only this thread moves the phase out of `Yielded`; the coroutine may set PARKED meanwhile,
            // which `fetch_and` keeps.
            #[cfg(not(cothread_planted_bug = "consume_with_store"))]
            self.state.fetch_and(!PHASE_MASK, Ordering::AcqRel);
            // Planted bug: a plain store loses the PARKED (and CANCEL) the coroutine may have set.
            #[cfg(cothread_planted_bug = "consume_with_store")]
            self.state.store(IDLE, Ordering::Release);
            Phase::Yielded
        } else {
            Phase::Finished
        }
    }

    /// Coroutine: `Running -> Yielded`, waking the enterer. Fails, changing nothing, if the coroutine was
    /// cancelled: then it must unwind instead of yielding.
    pub(crate) fn yield_to_caller(&self) -> Result<(), Cancelled> {
        let mut cur = self.state.load(Ordering::Acquire);
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
            match self
                .state
                .compare_exchange_weak(cur, YIELDED, success, failure)
            {
                Ok(_) => {
                    self.wake_if_parked(cur, ENTERER);
                    return Ok(());
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Coroutine: waits until entered again.
    pub(crate) fn wait_for_coroutine(&self) {
        #[cfg(not(cothread_planted_bug = "coroutine_wakes_on_idle"))]
        self.wait_until(COROUTINE, |s| s & PHASE_MASK == RUNNING);
        // Planted bug: the coroutine resumes as soon as the enterer has taken control back.
        #[cfg(cothread_planted_bug = "coroutine_wakes_on_idle")]
        self.wait_until(COROUTINE, |s| s & PHASE_MASK != YIELDED);
    }

    /// Coroutine: `Running -> Finished`, waking the enterer. The coroutine must not wait on this baton again.
    pub(crate) fn finish(&self) {
        // The swap clears PARKED (only the enterer can have set it) and CANCEL (moot once finished).
        #[cfg(not(cothread_planted_bug = "state_after_notify"))]
        {
            let old = self.state.swap(FINISHED, Ordering::AcqRel);
            debug_assert_eq!(old & PHASE_MASK, RUNNING);
            self.wake_if_parked(old, ENTERER);
        }
        // Planted bug: the enterer, woken before the state changes, can go back to sleep for good.
        #[cfg(cothread_planted_bug = "state_after_notify")]
        {
            self.wake_if_parked(self.state.load(Ordering::Acquire), ENTERER);
            self.state.store(FINISHED, Ordering::Release);
        }
    }

    /// Coroutine: says whether it is waiting for a coroutine it entered (see `NESTED`).
    pub(crate) fn set_nested(&self, nested: bool) {
        if nested {
            self.state.fetch_or(NESTED, Ordering::Relaxed);
        } else {
            self.state.fetch_and(!NESTED, Ordering::Relaxed);
        }
    }

    /// Owner, under `panic = "abort"`: `Idle -> Finished` without running the coroutine again, which then never
    /// runs: a suspended coroutine's thread keeps waiting for `Running` (parked, if it had parked: nobody
    /// wakes it). On failure returns the phase found.
    pub(crate) fn abandon(&self) -> Result<(), Phase> {
        let cur = self.state.load(Ordering::Acquire);
        if cur & PHASE_MASK != IDLE {
            return Err(phase_of(cur));
        }
        self.state
            .compare_exchange(cur, FINISHED, Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(|_| Phase::Idle)
    }

    /// Owner: marks the coroutine cancelled. Returns the phase it had.
    pub(crate) fn cancel(&self) -> Phase {
        phase_of(self.state.fetch_or(CANCEL, Ordering::AcqRel))
    }

    /// Whether [`Baton::cancel`] was called.
    #[inline]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) & CANCEL != 0
    }

    /// Wakes `side` if the state word `old`, just replaced, said somebody parked (only the side the
    /// transition was for can have).
    fn wake_if_parked(&self, old: u32, side: usize) {
        if old & PARKED != 0 {
            let side = &self.sides[side];
            // Taking the lock orders this notify after the parked thread's wait began.
            #[cfg(not(cothread_planted_bug = "notify_without_lock"))]
            let _guard = side.lock.lock();
            side.cvar.notify_one();
        }
    }

    /// Spin, then park, until `done(state)`; returns that state.
    ///
    /// The spin adapts to how this side's recent waits went: a wait that spun in vain (and parked) halves
    /// the next one's spin, down to 1/64 of [`spin_limit`]; a wait that spinning satisfied restores the whole
    /// bound. While cut down, every 8th wait probes with the whole bound, so a partner that became fast again
    /// is noticed. A coroutine that a scheduler re-enters only after many others thus stops burning a core
    /// after each yield, while a generator-style ping-pong keeps spinning.
    fn wait_until(&self, side: usize, done: impl Fn(u32) -> bool) -> u32 {
        let adapt = self.sides[side].adapt.load(Ordering::Relaxed);
        let (shift, waits) = (adapt & SHIFT_MASK, adapt >> 8);
        let probe = shift != 0 && waits % PROBE_EVERY == 0;
        let limit = if probe {
            spin_limit()
        } else {
            spin_limit() >> shift
        };
        let mut round = 0;
        while round < limit {
            let s = self.state.load(Ordering::Acquire);
            if done(s) {
                if shift != 0 {
                    self.sides[side].adapt.store(0, Ordering::Relaxed);
                }
                return s;
            }
            if s & NESTED != 0 {
                // The other side waits for a coroutine of its own: this wait will be long.
                break;
            }
            round += 1;
            if round % 64 == 0 {
                thread::yield_now();
            } else {
                spin_loop();
            }
        }
        let s = self.park_until(side, done);
        if limit > 0 {
            let shift = (shift + 1).min(MAX_SHIFT);
            self.sides[side]
                .adapt
                .store(shift | (waits.wrapping_add(1) << 8), Ordering::Relaxed);
        }
        s
    }

    fn park_until(&self, side: usize, done: impl Fn(u32) -> bool) -> u32 {
        let side = &self.sides[side];
        #[cfg(not(cothread_planted_bug = "park_check_without_lock"))]
        let mut guard = side.lock.lock();
        loop {
            let s = self.state.load(Ordering::Acquire);
            if done(s) {
                return s;
            }
            if s & PARKED == 0
                && self
                    .state
                    .compare_exchange(s, s | PARKED, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            // Planted bug: the state was checked and PARKED set before taking the lock, so the wake-up
            // can come before this wait.
            #[cfg(cothread_planted_bug = "park_check_without_lock")]
            let mut guard = side.lock.lock();
            side.cvar.wait(&mut guard);
        }
    }
}

/// The coroutine was cancelled (its owner dropped it) and must unwind instead of yielding.
#[derive(Debug)]
pub(crate) struct Cancelled;

/// The same transitions for a baton whose word only one thread ever writes: a native coroutine's, which only
/// its home thread claims, runs, yields, finishes and cancels (the native backend checks the thread before any
/// of these; other threads only read the phase). With one writer, a load and a store do what the
/// read-modify-write does for the thread backend, nobody waits (the switch returns only once the coroutine
/// has stopped), and nobody parks, so `PARKED` is never set; a yield skips `Yielded` (see
/// [`yield_local`](Baton::yield_local)). Stores are `Release` so that another thread's [`Baton::phase`] that
/// sees `Finished` also sees what the coroutine did before it finished.
#[cfg(cothread_native)]
impl Baton {
    /// [`Baton::claim`] on a one-writer baton.
    #[inline]
    pub(crate) fn claim_local(&self) -> Result<(), Phase> {
        let cur = self.state.load(Ordering::Relaxed);
        if cur & PHASE_MASK != IDLE {
            return Err(phase_of(cur));
        }
        self.state
            .store((cur & CANCEL) | RUNNING, Ordering::Release);
        Ok(())
    }

    /// [`Baton::yield_to_caller`] and the enterer's `Yielded -> Idle` ([`Baton::wait_for_caller`]) in one
    /// step, `Running -> Idle`: on one thread the enterer is the next to run, so the coroutine takes the second
    /// step for it, and the enterer has nothing left to do when the switch comes back.
    #[inline]
    pub(crate) fn yield_local(&self) -> Result<(), Cancelled> {
        let cur = self.state.load(Ordering::Relaxed);
        debug_assert_eq!(cur & PHASE_MASK, RUNNING);
        if cur & CANCEL != 0 {
            return Err(Cancelled);
        }
        self.state.store(IDLE, Ordering::Release);
        Ok(())
    }

    /// [`Baton::finish`] on a one-writer baton, called by the enterer once the body has returned.
    #[inline]
    pub(crate) fn finish_local(&self) {
        debug_assert_eq!(self.state.load(Ordering::Relaxed) & PHASE_MASK, RUNNING);
        self.state.store(FINISHED, Ordering::Release);
    }

    /// `Finished -> Idle`, the one move out of `Finished`: for a finished coroutine's control block reused
    /// whole for a new coroutine, by whoever holds the only reference to it.
    #[inline]
    pub(crate) fn reset_local(&self) {
        debug_assert_eq!(self.state.load(Ordering::Relaxed) & PHASE_MASK, FINISHED);
        self.state.store(IDLE, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn claim_only_from_idle() {
        let b = Baton::new();
        assert_eq!(b.phase(), Phase::Idle);
        b.claim().unwrap();
        assert_eq!(b.claim(), Err(Phase::Running));
        b.yield_to_caller().unwrap();
        assert_eq!(b.claim(), Err(Phase::Yielded));
        assert_eq!(b.wait_for_caller(), Phase::Yielded);
        b.claim().unwrap();
        b.finish();
        assert_eq!(b.wait_for_caller(), Phase::Finished);
        assert_eq!(b.claim(), Err(Phase::Finished));
    }

    #[test]
    fn cancel_stops_yield() {
        let b = Baton::new();
        b.claim().unwrap();
        assert_eq!(b.cancel(), Phase::Running);
        assert!(b.yield_to_caller().is_err());
        assert!(b.is_cancelled());
        b.finish();
        assert_eq!(b.wait_for_caller(), Phase::Finished);
    }

    /// Tests that change the global spin limit run one at a time.
    static SPIN_SETTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_vain_spin_cuts_the_next_and_a_successful_one_restores_it() {
        let _serial = SPIN_SETTING.lock().unwrap_or_else(|e| e.into_inner());
        let old = spin_limit();
        set_spin_limit(64);
        let b = Arc::new(Baton::new());
        b.claim().unwrap();
        // The coroutine yields only after the enterer has surely spun its 64 rounds and parked.
        let co = {
            let b = b.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                b.yield_to_caller().unwrap();
            })
        };
        assert_eq!(b.wait_for_caller(), Phase::Yielded);
        co.join().unwrap();
        assert_eq!(
            b.sides[ENTERER].adapt.load(Ordering::Relaxed) & SHIFT_MASK,
            1
        );
        // Now the state is already what the enterer waits for: the first check succeeds and restores.
        b.claim().unwrap();
        b.yield_to_caller().unwrap();
        assert_eq!(b.wait_for_caller(), Phase::Yielded);
        assert_eq!(b.sides[ENTERER].adapt.load(Ordering::Relaxed), 0);
        set_spin_limit(old);
    }

    #[test]
    fn hand_off_between_threads_parked_and_spinning() {
        let _serial = SPIN_SETTING.lock().unwrap_or_else(|e| e.into_inner());
        for spin in [0, DEFAULT_SPIN_LIMIT] {
            let rounds = if cfg!(miri) { 20 } else { 2000 };
            let b = Arc::new(Baton::new());
            let co = {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        b.wait_for_coroutine();
                        if i + 1 == rounds {
                            b.finish();
                        } else {
                            b.yield_to_caller().unwrap();
                        }
                    }
                })
            };
            let old = spin_limit();
            set_spin_limit(spin);
            let mut yields = 0;
            loop {
                b.claim().unwrap();
                match b.wait_for_caller() {
                    Phase::Yielded => yields += 1,
                    Phase::Finished => break,
                    p => panic!("unexpected phase {p:?}"),
                }
            }
            set_spin_limit(old);
            co.join().unwrap();
            assert_eq!(yields, rounds - 1);
        }
    }
}
