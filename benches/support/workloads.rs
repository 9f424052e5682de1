//! The measured operations, shared by the criterion benches (`benches/handoff.rs`) and `examples/perf.rs`.
//!
//! Each function runs an operation `iters` times and returns the time the operations took (set-up excluded),
//! in the shape of criterion's `iter_custom`.

#![allow(dead_code)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cothread::{Builder, Coroutine, GeneratorResult, Resume, Yielder, yield_now};

/// How coroutines are made for a measurement.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    /// Whether waiters spin before parking: with the spin limit the process started with (the default, or
    /// `COTHREAD_SPIN_LIMIT`), or not at all.
    pub spin: bool,
    /// Pool bound (`cothread::pool::set_max_idle`); 0 = no pooling.
    pub max_idle: usize,
}

impl Variant {
    /// Default spinning, default pool.
    pub const SPIN: Variant = Variant {
        spin: true,
        max_idle: cothread::pool::DEFAULT_MAX_IDLE,
    };
    /// Park at once, default pool.
    pub const PARK: Variant = Variant {
        spin: false,
        max_idle: cothread::pool::DEFAULT_MAX_IDLE,
    };
    /// Default spinning, no pool.
    pub const UNPOOLED: Variant = Variant {
        spin: true,
        max_idle: 0,
    };

    fn apply(self) {
        cothread::set_spin_limit(if self.spin { initial_spin() } else { 0 });
        cothread::pool::set_max_idle(self.max_idle);
    }
}

/// The spin limit in effect when the process started measuring.
pub fn initial_spin() -> u32 {
    static INITIAL: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *INITIAL.get_or_init(cothread::spin_limit)
}

/// Puts the default settings back.
pub fn reset() {
    Variant::SPIN.apply();
}

/// Makes the coroutines of one measurement: picks the backend.
pub type MakeBuilder = fn() -> Builder;

/// The thread backend, whatever the default backend of the build is (`--features native` makes it native).
fn thread_builder() -> Builder {
    Builder::new().backend(cothread::Backend::Thread)
}

/// Runs `measure` with the thread backend and settings `v`, then puts the defaults back.
fn on_thread(v: Variant, measure: impl FnOnce(MakeBuilder) -> Duration) -> Duration {
    v.apply();
    let t = measure(thread_builder);
    reset();
    t
}

fn endless(make: MakeBuilder) -> Coroutine {
    make()
        .spawn(|| {
            loop {
                yield_now();
            }
        })
        .expect("coroutine")
}

/// QEMU /perf/yield: one enter + yield round trip.
fn round_trip_with(make: MakeBuilder, iters: u64) -> Duration {
    let mut co = endless(make);
    // First enter starts the body; not measured.
    assert_eq!(co.enter(), Resume::Yielded);
    let start = Instant::now();
    for _ in 0..iters {
        let _ = black_box(co.enter());
    }
    start.elapsed()
    // Dropping `co` unwinds the endless body.
}

/// The run loop's task switch: one task of a loop calls `yield_to_loop` `iters` times (QEMU's
/// `aio_co_schedule(ctx, self)` then `qemu_coroutine_yield()`), measured inside the task.
fn loop_switch_with(make: MakeBuilder, iters: u64) -> Duration {
    let mut rl = cothread::RunLoop::new();
    let task = rl
        .spawn_with(make(), move || {
            let start = Instant::now();
            for _ in 0..iters {
                cothread::runloop::yield_to_loop();
            }
            start.elapsed()
        })
        .expect("coroutine");
    rl.run();
    task.take().expect("finished")
}

/// The run loop's task switch on the thread backend (see `loop_switch_with`).
pub fn loop_switch(v: Variant, iters: u64) -> Duration {
    v.apply();
    loop_switch_with(|| Builder::new().backend(cothread::Backend::Thread), iters)
}

/// Baseline for the run loop's task switch: `tokio::task::yield_now().await` in a task of tokio's
/// current-thread runtime.
pub fn tokio_yield(iters: u64) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                tokio::task::yield_now().await;
            }
            start.elapsed()
        })
        .await
        .expect("tokio task")
    })
}

/// QEMU /perf/lifecycle: create, enter and finish an empty coroutine.
fn lifecycle_with(make: MakeBuilder, iters: u64) -> Duration {
    // Warm the pool so the first measured lifecycle finds an idle thread or stack, as every later one does.
    let mut warm = make().spawn(|| ()).expect("coroutine");
    let _ = warm.enter();
    drop(warm);
    let start = Instant::now();
    for _ in 0..iters {
        let mut co = make().spawn(|| black_box(1)).expect("coroutine");
        let _ = black_box(co.enter());
    }
    start.elapsed()
}

fn chain(make: MakeBuilder, depth: u32) {
    if depth > 1 {
        let mut child = make()
            .spawn(move || chain(make, depth - 1))
            .expect("coroutine");
        let _ = child.enter();
    }
}

/// QEMU /perf/nesting: a chain `depth` deep created, entered and unwound, per chain.
fn nesting_with(make: MakeBuilder, depth: u32, iters: u64) -> Duration {
    chain(make, depth); // warm the pool with `depth` threads or stacks
    let start = Instant::now();
    for _ in 0..iters {
        chain(make, depth);
    }
    start.elapsed()
}

/// New threads or stacks per chain `depth` deep (the pool's `created` counter, `counted`), over `rounds` chains
/// after one that warms the pool: what a repeated deep chain costs the pool in steady state.
fn new_per_chain(make: MakeBuilder, depth: u32, rounds: u32, counted: fn() -> u64) -> f64 {
    chain(make, depth);
    let before = counted();
    for _ in 0..rounds {
        chain(make, depth);
    }
    (counted() - before) as f64 / f64::from(rounds)
}

/// A scheduler's pattern: `n` suspended coroutines entered in turn, each yielding at once; per enter.
fn round_robin_with(make: MakeBuilder, n: usize, iters: u64) -> Duration {
    let mut cos: Vec<Coroutine> = (0..n).map(|_| endless(make)).collect();
    for co in &mut cos {
        assert_eq!(co.enter(), Resume::Yielded);
    }
    let start = Instant::now();
    let mut done = 0;
    'outer: loop {
        for co in &mut cos {
            if done == iters {
                break 'outer;
            }
            let _ = black_box(co.enter());
            done += 1;
        }
    }
    start.elapsed()
}

/// A generator round trip: `resume` carrying a `u64` in, `Yielder::suspend` carrying one out.
fn generator_round_trip_with(make: MakeBuilder, iters: u64) -> Duration {
    let mut g = make()
        .generator(|y: &Yielder<u64, u64>, mut x| -> () {
            loop {
                x = y.suspend(x.wrapping_add(1));
            }
        })
        .expect("generator");
    let _ = g.resume(0); // starts the body; not measured
    let start = Instant::now();
    let mut x = 0;
    for _ in 0..iters {
        if let GeneratorResult::Yield(v) = g.resume(black_box(x)) {
            x = v;
        }
    }
    black_box(x);
    start.elapsed()
}

/// A generator's lifecycle: create, resume once to its end (a `u64` in, one out), drop.
fn generator_lifecycle_with(make: MakeBuilder, iters: u64) -> Duration {
    let warm = make().generator(|_: &Yielder<u64, ()>, x: u64| x);
    let _ = warm.expect("generator").resume(0); // warms the pool, as in `lifecycle_with`
    let start = Instant::now();
    for i in 0..iters {
        let mut g = make()
            .generator(|_: &Yielder<u64, ()>, x: u64| x + 1)
            .expect("generator");
        black_box(g.resume(i));
    }
    start.elapsed()
}

/// The generator round trip on the thread backend (its baseline: [`round_trip`], the QEMU-style one).
pub fn generator_round_trip(v: Variant, iters: u64) -> Duration {
    on_thread(v, |make| generator_round_trip_with(make, iters))
}

/// QEMU /perf/yield on the thread backend.
pub fn round_trip(v: Variant, iters: u64) -> Duration {
    on_thread(v, |make| round_trip_with(make, iters))
}

/// QEMU /perf/lifecycle on the thread backend.
pub fn lifecycle(v: Variant, iters: u64) -> Duration {
    on_thread(v, |make| lifecycle_with(make, iters))
}

/// QEMU /perf/nesting on the thread backend.
pub fn nesting(v: Variant, depth: u32, iters: u64) -> Duration {
    on_thread(v, |make| nesting_with(make, depth, iters))
}

/// Threads spawned per chain `depth` deep on the thread backend, repeated (see [`new_per_chain`]).
pub fn nesting_new_threads(v: Variant, depth: u32, rounds: u32) -> f64 {
    v.apply();
    let n = new_per_chain(thread_builder, depth, rounds, || {
        cothread::pool::stats().created
    });
    reset();
    n
}

/// Round robin over `n` coroutines on the thread backend.
pub fn round_robin(v: Variant, n: usize, iters: u64) -> Duration {
    on_thread(v, |make| round_robin_with(make, n, iters))
}

/// Runs `a(iters)` and `b(iters)` alternately, `pairs` times (`b` first in every other pair), and returns
/// each pair's ns per operation, `(a, b)`.
///
/// For comparisons whose cost depends on the machine's state more than on the code: on the development VM a
/// parked round trip costs about 6 us while the guest scheduler keeps both threads on one vCPU and about
/// 80 us while it keeps them on two (every wake-up then wakes a halted vCPU), and which of the two it does
/// changes over seconds with the state of the machine. Criterion measures one line after another, seconds
/// apart; the two runs of a pair are milliseconds apart, so such a change hits both alike, and what differs
/// within a pair is the code (including where its wake-ups lead the scheduler to put its threads).
pub fn interleaved(
    pairs: usize,
    iters: u64,
    mut a: impl FnMut(u64) -> Duration,
    mut b: impl FnMut(u64) -> Duration,
) -> Vec<(f64, f64)> {
    let ns = |t: Duration| t.as_nanos() as f64 / iters as f64;
    (0..pairs)
        .map(|i| {
            if i % 2 == 0 {
                let ta = ns(a(iters));
                (ta, ns(b(iters)))
            } else {
                let tb = ns(b(iters));
                (ns(a(iters)), tb)
            }
        })
        .collect()
}

/// Per-round-trip times, in ns: `trips` round trips of `trip`, each timed from the end of the one before.
fn timed_trips(trips: usize, mut trip: impl FnMut()) -> Vec<f64> {
    let mut ends = Vec::with_capacity(trips + 1);
    ends.push(Instant::now());
    for _ in 0..trips {
        trip();
        ends.push(Instant::now());
    }
    ends.windows(2)
        .map(|w| (w[1] - w[0]).as_nanos() as f64)
        .collect()
}

/// One phase of [`sticky`]: each round trip's ns, right after a parking_lot batch.
pub struct StickyPhase {
    /// The thread backend's enter + yield round trips (one coroutine for the whole run, spinning enabled).
    pub cothread: Vec<f64>,
    /// The raw atomic spin ping-pong's round trips ([`ping_pong_spin_park`]'s hand-off).
    pub raw_spin: Vec<f64>,
}

/// The sticky-park case: `phases` times, a batch of `park_trips` parking_lot round trips (the two threads it
/// uses park on every hand-off, the coroutine's thread waits unentered meanwhile), then `trips` timed
/// round trips of one long-lived thread-backed coroutine; then another parking_lot batch and `trips` timed
/// round trips of the raw spin ping-pong, its partner kept off this thread's CPU (Linux; left to itself the
/// raw spin gets stuck on one CPU after parking as well), so that each phase has the baseline the cothread
/// batch is read against: the bare hand-off between two CPUs. Spinning at the starting limit
/// ([`initial_spin`]).
pub fn sticky(phases: usize, park_trips: u64, trips: usize) -> Vec<StickyPhase> {
    Variant::SPIN.apply();
    let mut co = endless(thread_builder);
    assert_eq!(co.enter(), Resume::Yielded);
    let spin = initial_spin();
    let out = (0..phases)
        .map(|_| {
            ping_pong_parking_lot(park_trips);
            let cothread = timed_trips(trips, || {
                let _ = black_box(co.enter());
            });
            ping_pong_parking_lot(park_trips);
            let mut raw_spin = Vec::new();
            spin_park_ping_pong_with(spin, trips as u64, true, |iters, trip| {
                raw_spin = timed_trips(iters as usize, trip);
            });
            StickyPhase { cothread, raw_spin }
        })
        .collect();
    reset();
    out
}

/// Where the two threads of a pinned round trip run.
#[derive(Clone, Copy, Debug)]
pub enum Placement {
    /// Both on one CPU: every hand-off is a context switch on that CPU.
    OneCpu,
    /// On two CPUs: every hand-off wakes a thread on the other CPU.
    TwoCpus,
}

/// Pins the calling thread to one CPU and puts its old CPU set back when dropped (Linux only).
#[cfg(target_os = "linux")]
pub struct Pinned(libc::cpu_set_t);

#[cfg(target_os = "linux")]
impl Pinned {
    /// The calling thread's CPU set.
    fn affinity() -> libc::cpu_set_t {
        // SAFETY: `cpu_set_t` is a plain bit array, valid when zeroed.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
        let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
        assert_eq!(rc, 0, "sched_getaffinity");
        set
    }

    /// The CPUs the calling thread may run on.
    fn allowed() -> Vec<usize> {
        let set = Pinned::affinity();
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `c` is below CPU_SETSIZE, the number of CPUs a `cpu_set_t` holds.
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }

    /// The CPU for `side` (0: the measuring thread, 1: its partner) under `placement`, if the calling thread
    /// may use enough CPUs.
    pub fn cpu_for(placement: Placement, side: usize) -> Option<usize> {
        let cpus = Pinned::allowed();
        match placement {
            Placement::OneCpu => cpus.first().copied(),
            Placement::TwoCpus => cpus.get(1).map(|_| cpus[side]),
        }
    }

    /// Pins the calling thread to `cpu`.
    pub fn to(cpu: usize) -> Pinned {
        let old = Pinned::affinity();
        // SAFETY: as in `affinity`.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` came from `allowed`, so it is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: `one` is a valid `cpu_set_t` of the size passed.
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one) };
        assert_eq!(rc, 0, "sched_setaffinity");
        Pinned(old)
    }
}

#[cfg(target_os = "linux")]
impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the valid `cpu_set_t` read in `to`.
        unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &self.0) };
    }
}

/// The parked round trip (spin limit 0) with the enterer and the coroutine's thread pinned by `placement`.
/// `None` if there are not enough CPUs (or not on Linux).
#[cfg(target_os = "linux")]
pub fn round_trip_pinned(placement: Placement, iters: u64) -> Option<Duration> {
    let (mine, theirs) = (
        Pinned::cpu_for(placement, 0)?,
        Pinned::cpu_for(placement, 1)?,
    );
    Some(on_thread(Variant::PARK, |make| {
        let _pinned = Pinned::to(mine);
        let mut co = make()
            .spawn(move || {
                // Dropped in the forced unwind when `co` is dropped: the pooled thread gets its CPUs back.
                let _pinned = Pinned::to(theirs);
                loop {
                    yield_now();
                }
            })
            .expect("coroutine");
        assert_eq!(co.enter(), Resume::Yielded);
        let start = Instant::now();
        for _ in 0..iters {
            let _ = black_box(co.enter());
        }
        start.elapsed()
    }))
}

/// The parking_lot ping-pong with both threads pinned by `placement`; `None` as for `round_trip_pinned`.
#[cfg(target_os = "linux")]
pub fn ping_pong_parking_lot_pinned(placement: Placement, iters: u64) -> Option<Duration> {
    let (mine, theirs) = (
        Pinned::cpu_for(placement, 0)?,
        Pinned::cpu_for(placement, 1)?,
    );
    let _pinned = Pinned::to(mine);
    Some(parking_lot_ping_pong_with(iters, move || {
        Pinned::to(theirs)
    }))
}

#[inline(never)]
fn callee(x: u64) -> u64 {
    black_box(x).wrapping_add(1)
}

/// QEMU /perf/function-call: the baseline, a call of a `noinline` function.
pub fn function_call(iters: u64) -> Duration {
    let start = Instant::now();
    let mut x = 0;
    for _ in 0..iters {
        x = callee(x);
    }
    black_box(x);
    start.elapsed()
}

/// `std::thread::spawn` + `join` of an empty closure.
pub fn spawn_join(iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        thread::spawn(|| black_box(())).join().expect("join");
    }
    start.elapsed()
}

/// Runs `job` on the baselines' partner thread, a long-lived thread that runs one job at a time; the returned
/// receiver gets a message when the job is done (and is disconnected if the job panicked).
///
/// The partner outlives each measurement as the thread backend's pooled thread does, so that a baseline and
/// a coroutine line differ in the hand-off only. With a fresh thread per measurement, as the baselines once
/// spawned, the scheduler placed each new partner anew while the pooled coroutine thread kept its place: on
/// the development VM a parked round trip costs about 6 us while both threads run on one vCPU and about
/// 80 us across two, so that alone moved the parked lines by up to 10x in either direction.
fn on_partner(job: impl FnOnce() + Send + 'static) -> std::sync::mpsc::Receiver<()> {
    type Job = Box<dyn FnOnce() + Send>;
    static PARTNER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let partner = PARTNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        thread::Builder::new()
            .name("baseline partner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("partner thread");
        std::sync::Mutex::new(tx)
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    partner
        .lock()
        .expect("partner")
        .send(Box::new(move || {
            job();
            let _ = done_tx.send(());
        }))
        .expect("partner thread");
    done_rx
}

/// Runs `iters` round trips between this thread and the partner thread; `ping` passes the turn and waits for
/// it back.
fn ping_pong<S: Send + Sync + 'static>(
    state: Arc<S>,
    iters: u64,
    ping: impl Fn(&S) + Send + 'static,
    pong: impl Fn(&S) + Send + 'static,
) -> Duration {
    ping_pong_with(state, iters, || (), ping, pong)
}

/// `ping_pong`, with the partner running `setup` first and keeping what it returns until it is done.
fn ping_pong_with<S: Send + Sync + 'static, G>(
    state: Arc<S>,
    iters: u64,
    setup: impl FnOnce() -> G + Send + 'static,
    ping: impl Fn(&S) + Send + 'static,
    pong: impl Fn(&S) + Send + 'static,
) -> Duration {
    let partner = {
        let state = state.clone();
        on_partner(move || {
            let _kept = setup();
            for _ in 0..iters {
                pong(&state);
            }
        })
    };
    let start = Instant::now();
    for _ in 0..iters {
        ping(&state);
    }
    let t = start.elapsed();
    partner.recv().expect("partner");
    t
}

/// Two threads passing a turn flag under `std::sync::{Mutex, Condvar}`.
pub fn ping_pong_std(iters: u64) -> Duration {
    use std::sync::{Condvar, Mutex};
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    // false: the pinger's turn; true: the partner's.
    fn pass(s: &(Mutex<bool>, Condvar), mine: bool) {
        let (m, c) = s;
        let mut turn = m.lock().expect("lock");
        *turn = !mine;
        c.notify_one();
        while *turn != mine {
            turn = c.wait(turn).expect("wait");
        }
    }
    ping_pong(
        state,
        iters,
        |s| pass(s, false),
        |s| {
            let (m, c) = s;
            let mut turn = m.lock().expect("lock");
            while !*turn {
                turn = c.wait(turn).expect("wait");
            }
            *turn = false;
            c.notify_one();
        },
    )
}

/// The same on `parking_lot::{Mutex, Condvar}`.
pub fn ping_pong_parking_lot(iters: u64) -> Duration {
    parking_lot_ping_pong_with(iters, || ())
}

/// The parking_lot ping-pong; the partner runs `setup` first and keeps what it returns until it is done.
fn parking_lot_ping_pong_with<G>(
    iters: u64,
    setup: impl FnOnce() -> G + Send + 'static,
) -> Duration {
    use parking_lot::{Condvar, Mutex};
    let state = Arc::new((Mutex::new(false), Condvar::new()));
    ping_pong_with(
        state,
        iters,
        setup,
        |(m, c)| {
            let mut turn = m.lock();
            *turn = true;
            c.notify_one();
            while *turn {
                c.wait(&mut turn);
            }
        },
        |(m, c)| {
            let mut turn = m.lock();
            while !*turn {
                c.wait(&mut turn);
            }
            *turn = false;
            c.notify_one();
        },
    )
}

/// A `crossbeam_channel::bounded(0)` rendezvous each way.
pub fn ping_pong_crossbeam(iters: u64) -> Duration {
    let (to_partner, from_main) = crossbeam_channel::bounded::<()>(0);
    let (to_main, from_partner) = crossbeam_channel::bounded::<()>(0);
    let state = Arc::new((to_partner, from_partner, from_main, to_main));
    ping_pong(
        state,
        iters,
        |s| {
            s.0.send(()).expect("send");
            s.1.recv().expect("recv");
        },
        |s| {
            s.2.recv().expect("recv");
            s.3.send(()).expect("send");
        },
    )
}

/// The raw hardware-bound hand-off: an atomic turn flag, spinning up to `spin` rounds (a `thread::yield_now`
/// every 64th) before parking with `thread::park`/`unpark`.
pub fn ping_pong_spin_park(spin: u32, iters: u64) -> Duration {
    let mut t = Duration::ZERO;
    spin_park_ping_pong_with(spin, iters, false, |iters, trip| {
        let start = Instant::now();
        for _ in 0..iters {
            trip();
        }
        t = start.elapsed();
    });
    t
}

/// [`ping_pong_spin_park`]'s two threads, `iters` round trips; `measure(iters, trip)` runs this thread's side,
/// calling `trip` once per round trip. `apart`: the partner keeps off this thread's CPU meanwhile (Linux), so
/// that the figure is the hand-off between two CPUs wherever the scheduler last left the threads.
fn spin_park_ping_pong_with(
    spin: u32,
    iters: u64,
    apart: bool,
    measure: impl FnOnce(u64, &mut dyn FnMut()),
) {
    struct Flag {
        turn: AtomicU32,
        threads: std::sync::OnceLock<[thread::Thread; 2]>,
    }
    fn wait_for(f: &Flag, me: u32, spin: u32) {
        let mut round = 0;
        while f.turn.load(Ordering::Acquire) != me {
            round += 1;
            if round <= spin {
                if round % 64 == 0 {
                    thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            } else {
                thread::park();
            }
        }
    }
    fn give(f: &Flag, to: u32) {
        f.turn.store(to, Ordering::Release);
        if let Some(t) = f.threads.get() {
            t[to as usize].unpark();
        }
    }
    let flag = Arc::new(Flag {
        turn: AtomicU32::new(0),
        threads: std::sync::OnceLock::new(),
    });
    let (tx, rx) = std::sync::mpsc::channel();
    // SAFETY: `sched_getcpu` has no preconditions.
    #[cfg(target_os = "linux")]
    let this_cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok();
    let partner = {
        let flag = flag.clone();
        on_partner(move || {
            #[cfg(target_os = "linux")]
            let _apart = this_cpu
                .filter(|_| apart)
                .and_then(|cpu| Pinned::allowed().into_iter().find(|&c| c != cpu))
                .map(Pinned::to);
            #[cfg(not(target_os = "linux"))]
            let _ = apart;
            let _ = tx.send(thread::current());
            for _ in 0..iters {
                wait_for(&flag, 1, spin);
                give(&flag, 0);
            }
        })
    };
    let other = rx.recv().expect("partner thread");
    let _ = flag.threads.set([thread::current(), other]);
    measure(iters, &mut || {
        give(&flag, 1);
        wait_for(&flag, 0, spin);
    });
    partner.recv().expect("partner");
}

/// The same operations on the native backend (`--features native`), and corosensei's bare switch as their
/// baseline. Pooling is at its default (`pool::DEFAULT_MAX_IDLE`); spinning does not apply.
#[cfg(cothread_native)]
pub mod native {
    use super::*;

    fn native_builder() -> Builder {
        Builder::new().backend(cothread::Backend::Native)
    }

    /// QEMU /perf/yield on the native backend.
    pub fn round_trip(iters: u64) -> Duration {
        round_trip_with(native_builder, iters)
    }

    /// The run loop's task switch on the native backend (see `loop_switch_with`).
    pub fn loop_switch(iters: u64) -> Duration {
        loop_switch_with(native_builder, iters)
    }

    /// QEMU /perf/lifecycle on the native backend: create, enter and finish, with a pooled stack.
    pub fn lifecycle(iters: u64) -> Duration {
        lifecycle_with(native_builder, iters)
    }

    /// The same with pooling off: every coroutine maps a fresh stack (and unmaps it).
    pub fn lifecycle_unpooled(iters: u64) -> Duration {
        cothread::pool::set_max_idle(0);
        let t = lifecycle(iters);
        reset();
        t
    }

    /// QEMU /perf/nesting on the native backend: a chain `depth` deep, per chain.
    pub fn nesting(depth: u32, iters: u64) -> Duration {
        cothread::pool::set_max_idle(depth as usize + 1);
        let t = nesting_with(native_builder, depth, iters);
        reset();
        t
    }

    /// The same with the default pool, which follows the chain's demand after the first (warming) chain.
    pub fn nesting_default_pool(depth: u32, iters: u64) -> Duration {
        reset();
        nesting_with(native_builder, depth, iters)
    }

    /// Stacks mapped per chain `depth` deep with the default pool, repeated (see [`new_per_chain`]).
    pub fn nesting_new_stacks(depth: u32, rounds: u32) -> f64 {
        reset();
        new_per_chain(native_builder, depth, rounds, || {
            cothread::pool::native_stats().created
        })
    }

    /// `n` suspended native coroutines entered in turn; per enter.
    pub fn round_robin(n: usize, iters: u64) -> Duration {
        round_robin_with(native_builder, n, iters)
    }

    /// A native generator's round trip, a `u64` each way (baseline: [`raw_generator_round_trip`]).
    pub fn generator_round_trip(iters: u64) -> Duration {
        generator_round_trip_with(native_builder, iters)
    }

    /// A native generator's lifecycle with a pooled stack (baseline: [`raw_lifecycle`]).
    pub fn generator_lifecycle(iters: u64) -> Duration {
        generator_lifecycle_with(native_builder, iters)
    }

    /// Baseline: corosensei's resume + suspend carrying a `u64` each way, nothing else.
    pub fn raw_generator_round_trip(iters: u64) -> Duration {
        let mut co =
            corosensei::Coroutine::new(|y: &corosensei::Yielder<u64, u64>, mut x: u64| -> () {
                loop {
                    x = y.suspend(x.wrapping_add(1));
                }
            });
        let _ = co.resume(0);
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..iters {
            if let corosensei::CoroutineResult::Yield(v) = co.resume(black_box(x)) {
                x = v;
            }
        }
        black_box(x);
        start.elapsed()
    }

    /// Baseline: corosensei's resume + suspend, nothing else.
    pub fn raw_round_trip(iters: u64) -> Duration {
        let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), ()>, ()| {
            loop {
                y.suspend(());
            }
        });
        co.resume(());
        let start = Instant::now();
        for _ in 0..iters {
            black_box(co.resume(()));
        }
        start.elapsed()
    }

    /// Baseline: corosensei's create + run to completion on one reused stack, nothing else.
    pub fn raw_lifecycle(iters: u64) -> Duration {
        let mut stack = Some(corosensei::stack::DefaultStack::new(2 << 20).expect("stack"));
        let start = Instant::now();
        for _ in 0..iters {
            let body = |_: &corosensei::Yielder<(), ()>, ()| black_box(1);
            let mut co = corosensei::Coroutine::with_stack(stack.take().expect("stack"), body);
            black_box(co.resume(()));
            stack = Some(co.into_stack());
        }
        start.elapsed()
    }
}
