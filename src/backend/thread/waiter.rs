//! The thread backend's waiter: how an enterer waits for the coroutine it entered, and a coroutine for its
//! next enter, each on a thread of its own.
//!
//! The phase itself is the control block's [`PhaseWord`]; this adds what waiting needs, keeping its two bits
//! in that word's waiter bits. A waiter first spins on the word for a bounded number of rounds (see
//! [`set_spin_limit`]), then parks on its side's `Condvar`; a waker takes that side's lock and notifies only
//! when the word it replaced says somebody parked. A coroutine's side whose waits show that its thread shares
//! its enterer's CPU moves the thread to another one (Linux; see [`Waiter::wait_until`]).
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
const SHIFT_MASK: u32 = 0x0f;
const PROBE_EVERY: u32 = 8;
/// The coroutine's side counts, in `adapt` bits 4-7, its waits in a row that ended right after a `yield_now`:
/// the sign that it runs on its enterer's CPU (see [`Waiter::wait_until`]). At `SHARED_MOVE_AT` it moves.
const SHARED_ONE: u32 = 0x10;
const SHARED_MOVE_AT: u32 = 2;
/// Every this many spin rounds a waiter calls `yield_now` instead of `spin_loop`.
const YIELD_EVERY: u32 = 64;

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
    /// When the coroutine's thread last moved off its enterer's CPU, and how far its moves back off.
    moves: cpu_move::Moves,
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
            moves: cpu_move::Moves::default(),
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
    ///
    /// Spinning pays only while the two sides run on two CPUs. A coroutine's thread woken after a sleep may be
    /// put on its enterer's CPU and left there (the load balancer does not move threads that ran a moment
    /// ago); then every wait ends right after the `yield_now` that let the other side run, about 20x a
    /// spinning round trip, for good. After `SHARED_MOVE_AT` such waits in a row, the coroutine's side moves
    /// its thread to another CPU it may run on ([`cpu_move`], Linux; rate-limited), and the waits after that
    /// spin again. Two waits in a row ending just after a yield while the sides run on two CPUs are rare
    /// (about one in `YIELD_EVERY` squared), and a move then costs a few microseconds.
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
        let mut after_yield = false;
        while round < limit {
            let s = word.load();
            if done(s) {
                // A successful spin restores the whole bound and, on the coroutine's side, counts the waits
                // in a row that a yield let succeed.
                let mut now = 0;
                if after_yield && side == COROUTINE {
                    now = (adapt & !SHIFT_MASK & 0xff) + SHARED_ONE;
                    if now >= SHARED_MOVE_AT * SHARED_ONE {
                        self.moves.move_off_this_cpu();
                        now = 0;
                    }
                }
                if now != adapt {
                    self.sides[side].adapt.store(now, Ordering::Relaxed);
                }
                return s;
            }
            if s & NESTED != 0 {
                // The other side waits for a coroutine of its own: this wait will be long.
                break;
            }
            round += 1;
            after_yield = round % YIELD_EVERY == 0;
            if after_yield {
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

/// Moving a coroutine's thread off the CPU its enterer runs on (see [`Waiter::wait_until`]).
mod cpu_move {
    /// The last move of one coroutine's thread and its backoff, written only by that thread.
    #[derive(Debug, Default)]
    pub(super) struct Moves {
        /// Nanoseconds from the process's first move check to the last move (low 56 bits), and the backoff
        /// exponent (high 8 bits): moves are at least `MIN_GAP_NS << exponent` apart; 0 before the first.
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        last: crate::sync::atomic::AtomicU64,
    }

    /// The least time between two moves of one thread. A move that comes within `4 * gap` of the one before
    /// doubles the gap (up to `MIN_GAP_NS << MAX_BACKOFF`, about a second), as when the other CPUs are busy
    /// too and moving does not help; a later one starts again from `MIN_GAP_NS`.
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    const MIN_GAP_NS: u64 = 1_000_000;
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    const MAX_BACKOFF: u64 = 10;
    /// The time bits of `Moves::last`.
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    const TIME_MASK: u64 = (1 << 56) - 1;

    impl Moves {
        /// Moves the calling thread to another CPU its affinity allows, keeping its affinity, unless it moved
        /// too recently (see `MIN_GAP_NS`) or may run on one CPU only.
        #[cfg(all(target_os = "linux", not(loom), not(miri)))]
        pub(super) fn move_off_this_cpu(&self) {
            use crate::sync::atomic::Ordering;
            static EPOCH: crate::sync::OnceLock<std::time::Instant> = crate::sync::OnceLock::new();
            let now = EPOCH
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_nanos() as u64
                & TIME_MASK;
            let last = self.last.load(Ordering::Relaxed);
            let (since, backoff) = (now.wrapping_sub(last & TIME_MASK), last >> 56);
            let gap = MIN_GAP_NS << backoff;
            if last != 0 && since < gap {
                return;
            }
            let backoff = if last != 0 && since < 4 * gap {
                (backoff + 1).min(MAX_BACKOFF)
            } else {
                0
            };
            self.last
                .store(now.max(1) | (backoff << 56), Ordering::Relaxed);
            let size = size_of::<libc::cpu_set_t>();
            // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; each call gets a valid set of the size
            // passed, and `CPU_CLR` a CPU number below CPU_SETSIZE (checked).
            unsafe {
                let Ok(cpu) = usize::try_from(libc::sched_getcpu()) else {
                    return;
                };
                let mut old: libc::cpu_set_t = std::mem::zeroed();
                if cpu >= libc::CPU_SETSIZE as usize
                    || libc::sched_getaffinity(0, size, &mut old) != 0
                {
                    return;
                }
                let mut others = old;
                libc::CPU_CLR(cpu, &mut others);
                if libc::CPU_COUNT(&others) == 0 {
                    return;
                }
                // A mask without this CPU migrates the thread at once; the old mask back leaves it where it is
                // (should that fail, the thread keeps the smaller mask: CPUs it was allowed anyway).
                if libc::sched_setaffinity(0, size, &others) == 0 {
                    libc::sched_setaffinity(0, size, &old);
                }
            }
        }

        /// Elsewhere the thread stays where the scheduler puts it.
        #[cfg(not(all(target_os = "linux", not(loom), not(miri))))]
        pub(super) fn move_off_this_cpu(&self) {}
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

    /// The calling thread's CPU set and the CPU it runs on.
    #[cfg(all(target_os = "linux", not(miri)))]
    fn affinity() -> (libc::cpu_set_t, usize) {
        // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; the call gets a valid, writable set of
        // the size passed.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set),
                0
            );
            (
                set,
                usize::try_from(libc::sched_getcpu()).expect("sched_getcpu"),
            )
        }
    }

    /// Sets the calling thread's CPU set.
    #[cfg(all(target_os = "linux", not(miri)))]
    fn set_affinity(set: &libc::cpu_set_t) {
        // SAFETY: `set` is a valid `cpu_set_t` of the size passed.
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) };
        assert_eq!(rc, 0, "sched_setaffinity");
    }

    /// The scheduler may leave a coroutine's thread on its enterer's CPU; spinning there only ends in the
    /// other side's turn at each `yield_now`, so the coroutine's side moves off that CPU.
    #[test]
    #[cfg(all(target_os = "linux", not(miri)))]
    fn a_coroutine_sharing_its_enterers_cpu_moves_off_it() {
        let _serial = SPIN_SETTING.lock();
        let (all, _) = affinity();
        // SAFETY: `all` is a valid `cpu_set_t`.
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &all) })
            .collect();
        if cpus.len() < 2 {
            eprintln!("skipped: this thread may run on one CPU only");
            return;
        }
        // The enterer stays on the first CPU; the coroutine's thread starts there too, then may run anywhere.
        // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed; `cpus[0]` is below CPU_SETSIZE.
        let first = unsafe {
            let mut first: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpus[0], &mut first);
            first
        };
        set_affinity(&first);
        let old = spin_limit();
        set_spin_limit(DEFAULT_SPIN_LIMIT);
        let b = pair();
        let (tx, rx) = std::sync::mpsc::channel();
        let co = {
            let b = b.clone();
            std::thread::spawn(move || {
                set_affinity(&first);
                set_affinity(&all);
                // Whether it ran anywhere else at some point: once moved, the scheduler may still bring it back
                // when the other CPU gets busy (CI failed a check of the last CPU only, under qemu-user with the
                // other tests running beside it).
                let mut left = false;
                for _ in 0..200 {
                    b.waiter.wait_for_enterer(&b.word);
                    left |= affinity().1 != cpus[0];
                    b.waiter.yield_to_enterer(&b.word).unwrap();
                }
                b.waiter.wait_for_enterer(&b.word);
                tx.send(left).unwrap();
                b.waiter.finish(&b.word);
            })
        };
        loop {
            b.waiter.claim(&b.word).unwrap();
            if b.waiter.wait_for_coroutine(&b.word) == Phase::Finished {
                break;
            }
        }
        let left = rx.recv().unwrap();
        co.join().unwrap();
        set_spin_limit(old);
        set_affinity(&all);
        assert!(left, "the coroutine's thread stayed on its enterer's CPU");
    }

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
