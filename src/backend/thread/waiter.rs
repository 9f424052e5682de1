//! The thread backend's waiter: how an enterer waits for the coroutine it entered, and a coroutine for its
//! next enter, each on a thread of its own.
//!
//! The phase itself is the control block's [`PhaseWord`]; this adds what waiting needs, keeping its two bits
//! in that word's waiter bits. A waiter first spins on the word for a bounded number of rounds (see
//! [`set_spin_limit`]), then parks on its side's `Condvar`; a waker takes that side's lock and notifies only
//! when the word it replaced says somebody parked.
//!
//! # Invariants
//! - `PARKED` is set only by a thread that holds its side's `lock` and goes on to wait on that side's `cvar`
//!   without releasing it in between. Every transition that a parked thread waits for clears `PARKED` in the
//!   same atomic step (see [`PhaseWord`]) and, if it was set, takes the waiting side's `lock` before notifying,
//!   so the wake-up cannot fall between the waiter's check and its wait. One bit serves both sides because only
//!   the side that does not run can be parked.
//! - At most one thread waits on a coroutine at a time: the enterer waits while the phase is `Running`, the
//!   coroutine waits while it is not, and only one of them runs.
//! - `NESTED` is set only while `Running`, by the coroutine, around its own enter of a coroutine that runs on a
//!   thread of its own (the coroutine then waits too); it is a hint (stop spinning), never a condition anybody
//!   waits for.
//!
//! Code under `cfg(cothread_planted_bug = "...")` is deliberately broken: `loom-tests/` builds with one such
//! bug at a time to show that its models catch it (see `loom-tests/README.md`). Normal builds contain none.

use crate::control::{Cancelled, Phase, PhaseWord};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::sync::{Condvar, Mutex, spin_loop, thread};

/// Somebody is parked on a side's `cvar` (or about to be, holding its `lock`).
const PARKED: u32 = 0b100;
/// The running coroutine has itself entered another coroutine and waits for it: its own enterer will wait
/// long, so it parks at once instead of spinning. Set and cleared only by the coroutine, while `Running`.
const NESTED: u32 = 0b1_0000;
const _: () = assert!((PARKED | NESTED) & !PhaseWord::WAITER_BITS == 0);

/// Which side waits, as an index into `Waiter::sides`.
const ENTERER: usize = 0;
const COROUTINE: usize = 1;
/// Adaptive spinning: the spin bound is cut by at most `>> MAX_SHIFT`; while cut, every `PROBE_EVERY`th
/// wait spins the whole bound.
const MAX_SHIFT: u32 = 6;
const SHIFT_MASK: u32 = 0xff;
const PROBE_EVERY: u32 = 8;

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

/// Where the two sides of one thread-backed coroutine wait. See the module documentation for the invariants.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// One per waiting side, indexed by `ENTERER` and `COROUTINE`.
    sides: [Side; 2],
}

/// Where one side waits. Each side parks on its own lock and condition variable, so that a woken thread
/// reacquiring its lock never collides with the waker, which goes on to park on the other one.
#[derive(Debug)]
struct Side {
    /// The adaptive spin state, see [`Waiter::wait_until`]. Written only by this side's waiter.
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

impl Waiter {
    pub(crate) fn new() -> Waiter {
        Waiter {
            sides: [Side::new(), Side::new()],
        }
    }

    /// Enterer: `Idle -> Running` ([`PhaseWord::claim`]), waking the coroutine if it parked. On failure
    /// returns the phase found.
    pub(crate) fn claim(&self, word: &PhaseWord) -> Result<(), Phase> {
        let old = word.claim()?;
        // Planted bug: the coroutine may have parked, and nobody wakes it.
        #[cfg(not(cothread_planted_bug = "claim_skips_wake"))]
        self.wake_if_parked(old, COROUTINE);
        #[cfg(cothread_planted_bug = "claim_skips_wake")]
        let _ = old;
        Ok(())
    }

    /// Enterer: waits until the coroutine stops running, then takes control back. Returns `Yielded` or
    /// `Finished`.
    pub(crate) fn wait_for_coroutine(&self, word: &PhaseWord) -> Phase {
        let state = self.wait_until(word, ENTERER, PhaseWord::stopped_running);
        word.take_back(state)
    }

    /// Coroutine: `Running -> Yielded`, waking the enterer. Fails, changing nothing, if the coroutine was
    /// cancelled: then it must unwind instead of yielding.
    pub(crate) fn yield_to_enterer(&self, word: &PhaseWord) -> Result<(), Cancelled> {
        let old = word.yield_to_enterer()?;
        self.wake_if_parked(old, ENTERER);
        Ok(())
    }

    /// Coroutine: waits until entered again.
    pub(crate) fn wait_for_enterer(&self, word: &PhaseWord) {
        self.wait_until(word, COROUTINE, PhaseWord::entered_again);
    }

    /// Coroutine: `Running -> Finished`, waking the enterer. The coroutine must not wait on this word again.
    pub(crate) fn finish(&self, word: &PhaseWord) {
        #[cfg(not(cothread_planted_bug = "state_after_notify"))]
        self.wake_if_parked(word.finish(), ENTERER);
        // Planted bug: the enterer, woken before the state changes, can go back to sleep for good.
        #[cfg(cothread_planted_bug = "state_after_notify")]
        {
            self.wake_if_parked(word.load(), ENTERER);
            word.finish_late();
        }
    }

    /// Coroutine: says whether it is waiting for a coroutine it entered (see `NESTED`).
    pub(crate) fn set_nested(word: &PhaseWord, nested: bool) {
        word.set_waiter_hint(NESTED, nested);
    }

    /// Wakes `side` if the word `old`, just replaced, said somebody parked (only the side the transition was
    /// for can have).
    fn wake_if_parked(&self, old: u32, side: usize) {
        if old & PARKED != 0 {
            let side = &self.sides[side];
            // Taking the lock orders this notify after the parked thread's wait began.
            #[cfg(not(cothread_planted_bug = "notify_without_lock"))]
            let _guard = side.lock.lock();
            side.cvar.notify_one();
        }
    }

    /// Spin, then park, until `done(word)`; returns that word.
    ///
    /// The spin adapts to how this side's recent waits went: a wait that spun in vain (and parked) halves
    /// the next one's spin, down to 1/64 of [`spin_limit`]; a wait that spinning satisfied restores the whole
    /// bound. While cut down, every 8th wait probes with the whole bound, so a partner that became fast again
    /// is noticed. A coroutine that a scheduler re-enters only after many others thus stops burning a core
    /// after each yield, while a generator-style ping-pong keeps spinning.
    fn wait_until(&self, word: &PhaseWord, side: usize, done: impl Fn(u32) -> bool) -> u32 {
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
            let s = word.load();
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
        let s = self.park_until(word, side, done);
        if limit > 0 {
            let shift = (shift + 1).min(MAX_SHIFT);
            self.sides[side]
                .adapt
                .store(shift | (waits.wrapping_add(1) << 8), Ordering::Relaxed);
        }
        s
    }

    fn park_until(&self, word: &PhaseWord, side: usize, done: impl Fn(u32) -> bool) -> u32 {
        let side = &self.sides[side];
        #[cfg(not(cothread_planted_bug = "park_check_without_lock"))]
        let mut guard = side.lock.lock();
        loop {
            let s = word.load();
            if done(s) {
                return s;
            }
            if s & PARKED == 0 && !word.try_set_waiter_bit(s, PARKED) {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;

    /// A coroutine's phase word and waiter, as a thread-backed coroutine has them.
    #[derive(Debug)]
    struct Pair {
        word: PhaseWord,
        waiter: Waiter,
    }

    fn pair() -> Arc<Pair> {
        Arc::new(Pair {
            word: PhaseWord::new(),
            waiter: Waiter::new(),
        })
    }

    /// Tests that change the global spin limit run one at a time.
    static SPIN_SETTING: Mutex<()> = Mutex::new(());

    #[test]
    fn a_vain_spin_cuts_the_next_and_a_successful_one_restores_it() {
        let _serial = SPIN_SETTING.lock();
        let old = spin_limit();
        set_spin_limit(64);
        let b = pair();
        b.waiter.claim(&b.word).unwrap();
        // The coroutine yields only after the enterer has surely spun its 64 rounds and parked.
        let co = {
            let b = b.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                b.waiter.yield_to_enterer(&b.word).unwrap();
            })
        };
        assert_eq!(b.waiter.wait_for_coroutine(&b.word), Phase::Yielded);
        co.join().unwrap();
        assert_eq!(
            b.waiter.sides[ENTERER].adapt.load(Ordering::Relaxed) & SHIFT_MASK,
            1
        );
        // Now the state is already what the enterer waits for: the first check succeeds and restores.
        b.waiter.claim(&b.word).unwrap();
        b.waiter.yield_to_enterer(&b.word).unwrap();
        assert_eq!(b.waiter.wait_for_coroutine(&b.word), Phase::Yielded);
        assert_eq!(b.waiter.sides[ENTERER].adapt.load(Ordering::Relaxed), 0);
        set_spin_limit(old);
    }

    #[test]
    fn hand_off_between_threads_parked_and_spinning() {
        let _serial = SPIN_SETTING.lock();
        for spin in [0, DEFAULT_SPIN_LIMIT] {
            let rounds = if cfg!(miri) { 20 } else { 2000 };
            let b = pair();
            let co = {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..rounds {
                        b.waiter.wait_for_enterer(&b.word);
                        if i + 1 == rounds {
                            b.waiter.finish(&b.word);
                        } else {
                            b.waiter.yield_to_enterer(&b.word).unwrap();
                        }
                    }
                })
            };
            let old = spin_limit();
            set_spin_limit(spin);
            let mut yields = 0;
            loop {
                b.waiter.claim(&b.word).unwrap();
                match b.waiter.wait_for_coroutine(&b.word) {
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
