//! The public API and the caller chain: creating, entering and yielding coroutines, written once for every
//! backend (QEMU's `qemu-coroutine.c`).
//!
//! Each coroutine has a control block ([`crate::control`]) shared by its owner ([`Coroutine`]), its handles
//! ([`CoroutineRef`]) and the coroutine itself. The caller chain is implicit: whoever claims a coroutine's
//! phase word waits on it until the coroutine yields or finishes, so a yield or a return always goes back to the
//! immediate caller, and a coroutine that is in the chain (running, or waiting for a coroutine it entered) is
//! "entered" and cannot be entered again.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};
use std::panic::{self, AssertUnwindSafe};

pub(crate) use crate::backend::Control;
use crate::backend::{self, Backend, ContextOps, OTHER_THREAD, Spec, with_context};
use crate::control::{NOT_UNWINDING, Out, Phase, PhaseWord, SchedulerRecord, UNWINDING};
use crate::sync::atomic::Ordering;
use crate::sync::{Arc, Mutex, thread};

/// The message of the panic for entering a coroutine that is already in the caller chain (QEMU aborts with
/// "Co-routine re-entered recursively").
pub(crate) const REENTERED: &str = "coroutine re-entered recursively";
/// The message of the panic for `yield_now()` outside a coroutine.
pub(crate) const YIELD_OUTSIDE: &str = "yield_now() called outside a coroutine";
/// The message of the panic for entering a coroutine that has finished.
pub(crate) const FINISHED: &str = "entered a coroutine that has finished";
/// The message of the panic when a dropped coroutine catches its forced unwind and yields again.
pub(crate) const YIELD_WHILE_DROPPED: &str =
    "a coroutine being dropped caught its forced unwind and yielded again";
/// The message of the panic for entering a generator's coroutine through a [`CoroutineRef`].
pub(crate) const HANDLE_ENTERED_GENERATOR: &str = "entered a generator through a CoroutineRef (only its owner resumes it, with ScopedGenerator::resume)";

/// The unwind payload that `yield_now` raises in a coroutine whose owner dropped it. Private: the entry frame
/// catches it, and user code cannot name it.
struct ForcedUnwind;

/// The control block of the coroutine running on this thread, null outside coroutines.
#[inline]
fn current_ptr() -> *const Control {
    crate::control::current_ptr()
}

#[inline]
fn set_current(ptr: *const Control) {
    crate::control::set_current(ptr);
}

/// What [`Coroutine::enter`] found when the coroutine gave control back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a coroutine that returned has finished; its value is in `Returned`"]
pub enum Resume<R> {
    /// The coroutine called [`yield_now`]; enter it again to continue.
    Yielded,
    /// The coroutine's body returned this value; the coroutine has finished.
    Returned(R),
}

impl<R> Resume<R> {
    /// `true` for [`Resume::Yielded`].
    pub fn is_yielded(&self) -> bool {
        matches!(self, Resume::Yielded)
    }

    /// The returned value, or `None` if the coroutine yielded.
    pub fn into_returned(self) -> Option<R> {
        match self {
            Resume::Yielded => None,
            Resume::Returned(r) => Some(r),
        }
    }
}

/// A coroutine (`qemu_coroutine_create`): a body that runs when entered and can suspend itself with
/// [`yield_now`], giving control back to whoever entered it.
///
/// Creating one runs nothing. Each [`enter`](Coroutine::enter) runs the body until it yields or returns; the
/// enterer waits meanwhile, so the body behaves as if it ran on the enterer's stack. On the default thread
/// backend the body runs on an OS thread of its own (see the [crate documentation](crate) for what that
/// changes).
///
/// Dropping a coroutine that is suspended unwinds its stack (running the destructors there) and frees its
/// thread.
///
/// ```
/// use cothread::{yield_now, Coroutine, Resume};
///
/// let mut co = Coroutine::new(|| {
///     yield_now();
///     "done"
/// });
/// assert_eq!(co.enter(), Resume::Yielded);
/// assert_eq!(co.enter(), Resume::Returned("done"));
/// assert!(co.is_finished());
/// ```
pub struct Coroutine<R = ()> {
    /// Taken out by `drop`, which may keep the block for reuse.
    co: ManuallyDrop<Arc<Control>>,
    /// The value the body returns reaches the owner through `co` (the owner's slot, or the stash); this gives
    /// `Coroutine<R>` the auto traits it would have if it held that value behind a lock (`Send` and `Sync` when
    /// `R: Send`: a shared `&Coroutine` never reaches the value).
    value: PhantomData<Mutex<R>>,
}

/// A shared handle to a coroutine (`Coroutine *` in QEMU): cheap to clone, `Send + Sync`, and equal to another
/// handle exactly when both name the same coroutine.
///
/// A handle can also enter the coroutine, so that whoever holds only the handle (a wait queue, a scheduler) can
/// resume it. The value the body returns is kept for the owner: after a handle's enter finished the coroutine,
/// the owner's next [`Coroutine::enter`] returns [`Resume::Returned`] with it (once). A panic in the body
/// reaches whoever entered it, handle or owner; the owner's next enter then panics saying the coroutine has
/// finished.
#[derive(Clone)]
pub struct CoroutineRef {
    co: Arc<Control>,
}

/// Makes coroutines with settings: the fallible way to create one.
///
/// ```
/// let mut co = cothread::Builder::new()
///     .name("worker")
///     .stack_size(256 * 1024)
///     .spawn(|| cothread::current().unwrap().name().map(str::to_owned))?;
/// assert_eq!(co.enter().into_returned(), Some(Some("worker".to_owned())));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    spec: Spec,
    backend: Backend,
}

impl Builder {
    /// Default settings: no name, the platform's default stack size.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the coroutine. On the thread backend this is also the name of its thread, which panic messages
    /// report.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.spec.name = Some(name.into());
        self
    }

    /// The size of the coroutine's stack in bytes (on the thread backend, its thread's stack).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.spec.stack_size = Some(bytes);
        self
    }

    /// The backend that runs the coroutine (default: [`Backend::default`]).
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = backend;
        self
    }

    /// Creates the coroutine; runs nothing.
    ///
    /// # Errors
    /// - [`io::ErrorKind::InvalidInput`] if the name contains a NUL byte;
    /// - [`io::ErrorKind::Unsupported`] if the backend is not [available](Backend::is_available);
    /// - the operating system's error if it refuses a new thread or stack (for example `EAGAIN` past the
    ///   limits on threads: `ulimit -u`, `kernel.threads-max`, `kernel.pid_max`);
    /// - on Linux, [`io::ErrorKind::OutOfMemory`] when the coroutine needs a new thread or stack and the
    ///   process's memory mappings are near the kernel's limit (`vm.max_map_count`, 65,530 by default): a
    ///   thread adds about 4 mappings, a native stack 2, so about 15,000 coroutines of the thread backend or
    ///   30,000 native ones can be live at once. cothread refuses before the operating system would (std's
    ///   start-up of a thread aborts the process if it cannot map the thread's signal stack), keeping a 16th
    ///   of the limit for the rest of the process; the environment variable `COTHREAD_MAX_MAPS` lowers that
    ///   threshold. A coroutine that reuses a pooled thread or stack is not refused. See the README's
    ///   "Limits".
    pub fn spawn<F, R>(self, f: F) -> io::Result<Coroutine<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.spec.name.as_deref().is_some_and(|n| n.contains('\0')) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "coroutine name contains a NUL byte",
            ));
        }
        let entry = move |co: &Arc<Control>| run_body(co, f);
        // This thread's orphans (native coroutines dropped elsewhere) are unwound at its next creation.
        backend::unwind_orphans();
        let co = backend::spawn(self.backend, self.spec, entry)?;
        Ok(Coroutine {
            co: ManuallyDrop::new(co),
            value: PhantomData,
        })
    }
}

impl Builder {
    /// The settings, for the native generator's lean path.
    #[cfg(cothread_native)]
    pub(crate) fn parts(&self) -> (&Spec, Backend) {
        (&self.spec, self.backend)
    }
}

/// The first frame of every coroutine, called by its backend on the coroutine's own context: makes it current,
/// runs the body, and records how it ended.
pub(crate) fn run_body<F, R>(co: &Arc<Control>, f: F)
where
    F: FnOnce() -> R,
    R: Send + 'static,
{
    set_current(Arc::as_ptr(co));
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => {
            // SAFETY: the coroutine is running, so `out` is what the enterer that resumed it wrote before
            // resuming (or null, where the claim starts the coroutine), and that enterer waits; a non-null `out`
            // is the owner's `Option<R>` (a `Coroutine<R>` is only made with a body that returns `R`), alive for
            // as long as the owner's enter waits; `stash` is the coroutine's to write until it finishes.
            co.out.with_mut(|out| unsafe {
                match *out {
                    Out(slot) if !slot.is_null() => *slot.cast::<Option<R>>() = Some(value),
                    _ => co.stash.with_mut(|stash| *stash = Some(Box::new(value))),
                }
            });
        }
        Err(payload) if payload.is::<ForcedUnwind>() => {}
        // SAFETY: the payload is the coroutine's to write until it finishes.
        Err(payload) => co.panic.with_mut(|p| unsafe { *p = Some(payload) }),
    }
    set_current(std::ptr::null());
}

impl<R> Coroutine<R> {
    /// Creates a coroutine that will run `f`; runs nothing (`qemu_coroutine_create`).
    ///
    /// # Panics
    /// Where [`Builder::spawn`] would return `Err`: if the operating system refuses a thread or stack, or
    /// near the limit on memory mappings (see its errors).
    pub fn new<F>(f: F) -> Coroutine<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match Builder::new().spawn(f) {
            Ok(co) => co,
            Err(e) => panic!("cothread: failed to create a coroutine: {e}"),
        }
    }

    /// Runs the coroutine until it yields or returns (`qemu_coroutine_enter`). The caller waits meanwhile and
    /// becomes the coroutine's caller: the coroutine's [`yield_now`] comes back here.
    ///
    /// If a handle's [`CoroutineRef::enter`] finished the coroutine since the last call, returns its value.
    ///
    /// # Panics
    /// - "coroutine re-entered recursively" if the coroutine is running or is in the current caller chain;
    /// - "entered a coroutine that has finished" if it has finished and its value was already returned (or it
    ///   panicked);
    /// - with the coroutine's own panic payload if its body panics during this call.
    #[inline(always)]
    pub fn enter(&mut self) -> Resume<R> {
        let mut value: Option<R> = None;
        match enter(&self.co, Out((&raw mut value).cast())) {
            Ok(Phase::Yielded) => Resume::Yielded,
            _ => self.returned(value),
        }
    }

    /// The body's value, once the coroutine has finished: put in `value` if this enter finished it, stashed if a
    /// handle's did.
    fn returned(&mut self, value: Option<R>) -> Resume<R> {
        let stashed = || {
            // SAFETY: `self` is the owner, the only reader of the stash, and `enter` saw the phase `Finished`.
            let boxed = self.co.stash.with_mut(|stash| unsafe { (*stash).take() })?;
            // SAFETY: the stash holds a `Box<R>` for the owner's `R` (the body of a `Coroutine<R>` returns `R`);
            // dropping the vtable gives back the box's own pointer. (`downcast` would check this, but needs
            // `R: 'static` on `enter`, which the public API does not ask for.)
            Some(*unsafe { Box::from_raw(Box::into_raw(boxed).cast::<R>()) })
        };
        match value.or_else(stashed) {
            Some(value) => Resume::Returned(value),
            None => panic!("{FINISHED}"),
        }
    }

    /// Whether the coroutine has finished (its body returned or panicked).
    pub fn is_finished(&self) -> bool {
        self.co.phase.phase() == Phase::Finished
    }

    /// Makes this coroutine a generator's, which only its owner may enter (a handle's enter panics), and
    /// returns its control block, for the generator's `Yielder`. Called before the coroutine first runs.
    pub(crate) fn make_owner_only(&self) -> &Control {
        self.co.owner_only.store(true, Ordering::Relaxed);
        &self.co
    }

    /// Hangs a scheduler's record on this coroutine (the run loop's task: QEMU's `co->ctx`), for
    /// [`with_current_scheduler`] to find while it runs.
    ///
    /// # Safety
    /// The coroutine has not run yet, and no other thread can reach it (no handle has been given out).
    pub(crate) unsafe fn attach_scheduler(&self, record: SchedulerRecord) {
        // SAFETY: the caller guarantees that nobody else touches the cell now; the enter that first runs the
        // coroutine orders this write before its reads.
        self.co
            .scheduler
            .with_mut(|cell| unsafe { *cell = Some(record) });
    }

    /// Whether the calling thread may run (and so unwind) this coroutine: always on the thread backend; on the
    /// native one, only on its own thread (binding an unbound one here).
    pub(crate) fn runs_here(&self) -> bool {
        with_context!(&self.co.context, ctx => ctx.runs_here(&self.co, true))
    }

    /// A handle to this coroutine.
    pub fn handle(&self) -> CoroutineRef {
        CoroutineRef {
            co: Arc::clone(&self.co),
        }
    }
}

impl<R> Drop for Coroutine<R> {
    fn drop(&mut self) {
        // A finished coroutine has nothing to cancel (and this takes no atomic read-modify-write in a lifecycle).
        if self.co.phase.phase() != Phase::Finished {
            drop_coroutine(&self.co);
        }
        // SAFETY: `drop` runs once, and `self.co` is not used after this.
        backend::retire(unsafe { ManuallyDrop::take(&mut self.co) });
    }
}

impl<R> fmt::Debug for Coroutine<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_control(&self.co, "Coroutine", f)
    }
}

impl fmt::Debug for CoroutineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_control(&self.co, "CoroutineRef", f)
    }
}

fn debug_control(co: &Control, what: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct(what)
        .field("id", &co.id.load(Ordering::Relaxed))
        .field("name", &co.name)
        .field("phase", &co.phase.phase())
        .finish()
}

impl CoroutineRef {
    /// Whether the coroutine is entered (`qemu_coroutine_entered`): true while it runs, and while it waits for
    /// a coroutine it entered; false while suspended or finished.
    pub fn is_entered(&self) -> bool {
        matches!(self.co.phase.phase(), Phase::Running | Phase::Yielded)
    }

    /// Whether the coroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.co.phase.phase() == Phase::Finished
    }

    /// Takes back the record [`Coroutine::attach_scheduler`] hung on the coroutine, once it has finished (`None`
    /// before that).
    pub(crate) fn detach_scheduler(&self) -> Option<SchedulerRecord> {
        if !self.is_finished() {
            return None;
        }
        // SAFETY: the coroutine has finished (the acquire load above saw it), so it no longer reads the cell;
        // the one who detaches is its scheduler, the only other user of the cell.
        self.co.scheduler.with_mut(|cell| unsafe { (*cell).take() })
    }

    /// Runs the coroutine until it yields or returns, like [`Coroutine::enter`]; the returned value (if any)
    /// stays for the owner, so this returns `Resume::Returned(())`.
    ///
    /// # Panics
    /// As [`Coroutine::enter`]: re-entered recursively, entered after finishing, or the body's own panic.
    pub fn enter(&self) -> Resume<()> {
        self.check_not_generator();
        match enter(&self.co, Out::NONE) {
            Ok(Phase::Yielded) => Resume::Yielded,
            Ok(_) => Resume::Returned(()),
            Err(_) => panic!("{FINISHED}"),
        }
    }

    /// Enters the coroutine unless it is entered already (`qemu_coroutine_enter_if_inactive`). Returns
    /// whether it entered.
    ///
    /// # Panics
    /// If the coroutine has finished, or with the body's own panic.
    pub fn enter_if_inactive(&self) -> bool {
        self.check_not_generator();
        if self.is_entered() {
            return false;
        }
        let co = &self.co;
        with_context!(&co.context, ctx => {
            if !ctx.runs_here(co, false) {
                // A native coroutine of another thread: never claim it from here.
                match co.phase.phase() {
                    Phase::Finished => panic!("{FINISHED}"),
                    Phase::Running | Phase::Yielded => return false,
                    Phase::Idle => panic!("{OTHER_THREAD}"),
                }
            }
            match ctx.claim(&co.phase) {
                Ok(()) => {
                    let _ = run_claimed(co, ctx, Out::NONE);
                    true
                }
                Err(Phase::Finished) => panic!("{FINISHED}"),
                Err(_) => false,
            }
        })
    }

    /// Panics if the coroutine is a generator's, which only its owner resumes.
    #[inline]
    fn check_not_generator(&self) {
        if self.co.owner_only.load(Ordering::Relaxed) {
            panic!("{HANDLE_ENTERED_GENERATOR}");
        }
    }

    /// A number that identifies the coroutine within this process.
    pub fn id(&self) -> u64 {
        self.co.id.load(Ordering::Relaxed)
    }

    /// The name given with [`Builder::name`].
    pub fn name(&self) -> Option<&str> {
        self.co.name.as_deref()
    }
}

impl PartialEq for CoroutineRef {
    fn eq(&self, other: &CoroutineRef) -> bool {
        Arc::ptr_eq(&self.co, &other.co)
    }
}

impl Eq for CoroutineRef {}

impl std::hash::Hash for CoroutineRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

/// Enters `co`: `Ok(Yielded | Finished)`, or `Err(Finished)` if it had finished before.
///
/// The hot paths (this, [`claim`], [`run_claimed`], [`yield_now`]) are generic over the backend's context type
/// and picked by one `match` at the top, so that each backend gets its own straight-line copy.
#[inline(always)]
fn enter(co: &Arc<Control>, out: Out) -> Result<Phase, Phase> {
    with_context!(&co.context, ctx => {
        claim(co, ctx, out.is_owner())?;
        Ok(run_claimed(co, ctx, out))
    })
}

/// Claims the phase word of `co`, whose context is `ctx`. `Err(Finished)` if it has finished. `owner`: the caller is
/// the coroutine's owner (it holds the `Coroutine`, by `&mut`).
#[inline(always)]
fn claim<C: ContextOps>(co: &Arc<Control>, ctx: &C, owner: bool) -> Result<(), Phase> {
    if ctx.runs_here(co, owner) && ctx.claim(&co.phase).is_ok() {
        return Ok(());
    }
    claim_slow(co, ctx, owner)
}

/// The claim that did not succeed at once: a coroutine of another thread, one that runs or has finished, or
/// one that has just yielded to an enterer on another thread that has not taken control back yet (waited out).
#[cold]
fn claim_slow<C: ContextOps>(co: &Arc<Control>, ctx: &C, owner: bool) -> Result<(), Phase> {
    if !ctx.runs_here(co, owner) {
        // A native coroutine of another thread: never switch to its stack from here.
        match co.phase.phase() {
            Phase::Finished => return Err(Phase::Finished),
            Phase::Running => panic!("{REENTERED}"),
            Phase::Idle | Phase::Yielded => panic!("{OTHER_THREAD}"),
        }
    }
    loop {
        match ctx.claim(&co.phase) {
            Ok(()) => return Ok(()),
            Err(Phase::Running) => panic!("{REENTERED}"),
            Err(Phase::Yielded) => thread::yield_now(),
            Err(Phase::Finished) => return Err(Phase::Finished),
            Err(Phase::Idle) => {}
        }
    }
}

/// Runs a coroutine whose phase word the caller holds, until it gives control back; resumes its panic, if any.
#[inline(always)]
fn run_claimed<C: ContextOps>(co: &Arc<Control>, ctx: &C, out: Out) -> Phase {
    if !C::CLAIM_STARTS {
        // SAFETY: the caller holds the phase word and the coroutine has not been resumed yet: it does not run, and no
        // other enterer is here.
        co.out.with_mut(|slot| unsafe { *slot = out });
    }
    let caller = current_ptr();
    // The NESTED hint tells the enterer of a thread-backed caller, which waits on another thread, that its
    // coroutine now waits too, for a coroutine on a thread of its own (`CLAIM_STARTS`). A coroutine that runs
    // on the caller's thread is, to that enterer, just more of the caller running: no hint. (Looked up again
    // afterwards rather than kept across the switch: one value less to save around it.)
    let outer = || {
        // SAFETY: as in `yield_now`: a non-null CURRENT points at the running coroutine's control block, alive
        // while it runs, that is for this whole call.
        unsafe { caller.as_ref() }.filter(|_| C::CLAIM_STARTS)
    };
    if let Some(outer) = outer() {
        outer.context.set_nested(&outer.phase, true);
    }
    if !C::CLAIM_STARTS {
        // The coroutine runs on this thread: it is current from the switch on (and finds itself there when it
        // first starts).
        set_current(Arc::as_ptr(co));
    }
    let phase = ctx.resume(co);
    set_current(caller);
    if let Some(outer) = outer() {
        outer.context.set_nested(&outer.phase, false);
    }
    match phase {
        Phase::Finished => {
            resume_panic(co);
            Phase::Finished
        }
        _ => Phase::Yielded,
    }
}

/// After a coroutine finished in the run that the caller entered: resumes the body's panic, if it panicked.
#[inline(never)]
fn resume_panic(co: &Control) {
    // SAFETY: the caller is the enterer that got control back from the run in which the body ended.
    if let Some(payload) = co.panic.with_mut(|p| unsafe { (*p).take() }) {
        panic::resume_unwind(payload);
    }
}

/// Suspends the current coroutine and gives control back to whoever entered it (`qemu_coroutine_yield`).
/// Returns when the coroutine is entered again.
///
/// # Panics
/// "yield_now() called outside a coroutine" when called outside a coroutine.
///
/// ```
/// use cothread::{yield_now, Coroutine, Resume};
///
/// let mut co = Coroutine::new(|| {
///     for _ in 0..5 {
///         yield_now();
///     }
/// });
/// let mut enters = 1;
/// while co.enter() == Resume::Yielded {
///     enters += 1;
/// }
/// assert_eq!(enters, 6);
/// ```
#[inline]
pub fn yield_now() {
    let ptr = current_ptr();
    if ptr.is_null() {
        yield_outside();
    }
    // SAFETY: a non-null CURRENT points at the control block of the coroutine running on this thread, which a
    // reference keeps alive while it runs (see `CURRENT`), that is for this whole call: the coroutine runs
    // whenever this code does.
    yield_from(unsafe { &*ptr });
}

/// [`yield_now`] from the coroutine `co`, which the caller runs in (a generator's `Yielder` knows its own).
///
/// Always inlined, so that the native switch sits in the caller's own frame: one more frame between the
/// caller's loop and the switch cost about 20 ns a round trip on the development machine (docs/performance.md,
/// "the run loop's switch"), more than the whole bare switch.
#[inline(always)]
pub(crate) fn yield_from(co: &Control) {
    // Written only when it changes (rarely): the flag shares a cache line with the phase word, which the
    // enterer is spinning on, and a store would pull that line away from it once more each round trip.
    let panicking = std::thread::panicking();
    if co.yielded_panicking.load(Ordering::Relaxed) != panicking {
        co.yielded_panicking.store(panicking, Ordering::Relaxed);
    }
    with_context!(any: &co.context, ctx => {
        if ctx.yield_to_enterer(&co.phase).is_err() {
            return cancelled(co, ctx);
        }
        // `CURRENT` is `co` again when this returns: on a thread of its own nobody else changed it, and on the
        // enterer's thread the enterer set it before switching back in.
        if ctx.suspend(co).is_err() {
            cancelled(co, ctx);
        }
    });
}

#[cold]
fn yield_outside() -> ! {
    panic!("{YIELD_OUTSIDE}");
}

/// A yield of a coroutine whose owner dropped it (the rules are in the crate documentation, "Rules"): it never
/// suspends again. A coroutine whose stack is already unwinding (the forced unwind, or a panic of its own that
/// a destructor yielded in) is in a destructor: raising there would abort the process, so the yield returns at
/// once and the unwind goes on. Otherwise the forced unwind starts here; under `panic = "abort"` the coroutine
/// is abandoned instead.
///
/// "Already unwinding" is `thread::panicking()`, which on the native backend is the home thread's: there it
/// also counts when the thread was panicking at the last yield (a coroutine suspended in a destructor during
/// its own panic keeps its thread panicking), or when our forced unwind has been raised.
#[cold]
fn cancelled<C: ContextOps>(co: &Control, ctx: &C) {
    if cfg!(panic = "abort") {
        abandon(co, ctx);
    }
    let unwinding = co.unwinding.load(Ordering::Relaxed) != NOT_UNWINDING;
    let own_unwind = C::CLAIM_STARTS || unwinding || co.yielded_panicking.load(Ordering::Relaxed);
    if own_unwind && std::thread::panicking() {
        return;
    }
    if unwinding {
        panic!("{YIELD_WHILE_DROPPED}");
    }
    co.unwinding.store(UNWINDING, Ordering::Relaxed);
    panic::resume_unwind(Box::new(ForcedUnwind));
}

/// Gives up a coroutine that its owner dropped and that cannot go on (a wait no one can satisfy during the
/// drop, or any yield under `panic = "abort"`): control goes back to its enterer as if it had finished, and
/// its stack stays suspended for good (leaked, with the destructors still on it). The caller is the running
/// coroutine and has withdrawn from every wait queue.
#[cold]
fn abandon<C: ContextOps>(co: &Control, ctx: &C) -> ! {
    ctx.finish(&co.phase);
    loop {
        // Never entered again: a thread-backed coroutine waits for good, a native one is never resumed.
        let _ = ctx.suspend(co);
    }
}

/// [`abandon`] for the coroutine running on this thread: see [`crate::wait::DROPPED`].
pub(crate) fn abandon_current() -> ! {
    let ptr = current_ptr();
    assert!(!ptr.is_null(), "abandon_current outside a coroutine");
    // SAFETY: as in `yield_now`.
    let co: &Control = unsafe { &*ptr };
    with_context!(&co.context, ctx => abandon(co, ctx))
}

/// Whether the coroutine running on this thread is being dropped (its owner cancelled it), so that a wait can
/// never be satisfied: it will not be entered again after it yields.
pub(crate) fn current_is_dropped() -> bool {
    // SAFETY: as in `yield_now`.
    unsafe { current_ptr().as_ref() }.is_some_and(|co| co.phase.is_cancelled())
}

/// Whether the caller runs inside a coroutine (`qemu_in_coroutine`).
///
/// ```
/// assert!(!cothread::in_coroutine());
/// let mut co = cothread::Coroutine::new(cothread::in_coroutine);
/// assert_eq!(co.enter().into_returned(), Some(true));
/// ```
pub fn in_coroutine() -> bool {
    crate::control::in_coroutine()
}

/// The coroutine the caller runs in (`qemu_coroutine_self`), or `None` outside coroutines.
///
/// ```
/// let mut co = cothread::Coroutine::new(|| cothread::current().unwrap());
/// let me = co.handle();
/// assert_eq!(co.enter().into_returned(), Some(me));
/// ```
pub fn current() -> Option<CoroutineRef> {
    let ptr = current_ptr();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: as in `yield_now`, the pointee is alive; `ptr` is `Arc::as_ptr` of an `Arc<Control>`, so it may
    // be counted and turned into one more.
    let co = unsafe {
        Arc::increment_strong_count(ptr);
        Arc::from_raw(ptr)
    };
    Some(CoroutineRef { co })
}

/// The id of the coroutine the caller runs in (`current()`'s, without counting a handle), or `None` outside
/// coroutines.
#[inline]
pub(crate) fn current_id() -> Option<u64> {
    // SAFETY: as in `yield_now`, the pointee is alive while this coroutine runs.
    unsafe { current_ptr().as_ref() }.map(|co| co.id.load(Ordering::Relaxed))
}

/// Calls `f` with the scheduler's record of the coroutine running on this thread (see
/// [`Coroutine::attach_scheduler`]); `None` outside coroutines or in one no scheduler owns.
#[inline]
pub(crate) fn with_current_scheduler<T>(f: impl FnOnce(Option<&SchedulerRecord>) -> T) -> T {
    // SAFETY: as in `yield_now`, the pointee is alive while this coroutine runs.
    let Some(co) = (unsafe { current_ptr().as_ref() }) else {
        return f(None);
    };
    // SAFETY: the running coroutine only reads the cell, which its scheduler writes only before it first ran or
    // once it has finished.
    co.scheduler.with(|cell| f(unsafe { (*cell).as_ref() }))
}

/// The owner drops a coroutine that had not finished when it looked: a suspended one is unwound (its stack's
/// destructors run) and its thread freed; one that never ran has its body dropped unrun; one running elsewhere
/// (entered through a handle) unwinds at its next yield.
#[inline(never)]
fn drop_coroutine(co: &Arc<Control>) {
    with_context!(&co.context, ctx => drop_on(co, ctx));
}

fn drop_on<C: ContextOps>(co: &Arc<Control>, ctx: &C) {
    if !ctx.runs_here(co, true) {
        // A native coroutine dropped on a thread other than its own: its stack can only run on its own thread,
        // which unwinds it later (a handle can still enter it there meanwhile). Under `panic = "abort"` it is
        // leaked, as on its own thread.
        if !cfg!(panic = "abort") && co.phase.phase() != Phase::Finished {
            ctx.orphan(co, unwind_orphan);
        }
        return;
    }
    if cfg!(panic = "abort") {
        return abandon_suspended(co, ctx);
    }
    match co.phase.cancel() {
        Phase::Finished | Phase::Running => return,
        Phase::Idle | Phase::Yielded => {}
    }
    if !claim_to_drop(co, ctx) {
        return;
    }
    // Finished even if the body's destructor panics.
    struct Finish<'a, C: ContextOps>(&'a C, &'a PhaseWord);
    impl<C: ContextOps> Drop for Finish<'_, C> {
        fn drop(&mut self) {
            self.0.finish(self.1);
        }
    }
    let finish = Finish(ctx, &co.phase);
    if ctx.discard_unstarted() {
        return;
    }
    mem::forget(finish);
    if !C::CLAIM_STARTS {
        // SAFETY: as in `run_claimed`.
        co.out.with_mut(|slot| unsafe { *slot = Out::NONE });
    }
    let caller = current_ptr();
    if !C::CLAIM_STARTS {
        set_current(Arc::as_ptr(co));
    }
    // A panic that escapes the backend's own unwind (one raised during it) comes out of `unwind` itself; one
    // that the body caught and stored, from the panic cell.
    let ended = panic::catch_unwind(AssertUnwindSafe(|| ctx.unwind(co)));
    set_current(caller);
    debug_assert!(matches!(ended, Ok(Phase::Finished)) || (ended.is_err() && !C::CLAIM_STARTS));
    // SAFETY: we are the enterer that got control back from the run in which the body ended.
    let stored = || co.panic.with_mut(|p| unsafe { (*p).take() });
    if let Some(payload) = ended.err().or_else(stored) {
        if std::thread::panicking() {
            // Already unwinding: a second panic would abort. Report and go on.
            eprintln!("cothread: a coroutine panicked while being dropped during a panic");
        } else {
            panic::resume_unwind(payload);
        }
    }
}

/// On its home thread, a coroutine whose owner dropped it on another thread ([`ContextOps::orphan`]): dropped
/// as its owner's drop would have, here. A panic from its unwind has nobody to reach: it is reported on stderr
/// and dropped.
fn unwind_orphan(co: &Arc<Control>) {
    if co.phase.phase() != Phase::Finished
        && panic::catch_unwind(AssertUnwindSafe(|| drop_coroutine(co))).is_err()
    {
        eprintln!(
            "cothread: a panic while unwinding a coroutine dropped on another thread; discarded"
        );
    }
}

/// The owner's claim of a coroutine it cancelled, which was suspended when it looked: true once the owner holds
/// the phase word. False if somebody else got there first: an enterer on another thread (through a handle) that
/// claimed it meanwhile runs it, and its next yield unwinds it there (the cancel is sticky); or it finished.
fn claim_to_drop<C: ContextOps>(co: &Control, ctx: &C) -> bool {
    loop {
        match ctx.claim(&co.phase) {
            Ok(()) => return true,
            // Planted bug (loom-tests/README.md): the owner takes a handle's claim for a recursive enter.
            #[cfg(cothread_planted_bug = "drop_loses_claim_race")]
            Err(Phase::Running) => panic!("{REENTERED}"),
            Err(Phase::Running | Phase::Finished) => return false,
            // Yielded to a handle's enterer that has not taken control back yet.
            Err(Phase::Yielded) => thread::yield_now(),
            Err(Phase::Idle) => {}
        }
    }
}

/// Dropping an unfinished coroutine under `panic = "abort"`, where nothing can unwind: one that never ran has
/// its body dropped unrun; a suspended one is marked finished without running again (its thread stays parked,
/// or its stack suspended, for good: a leak); one running elsewhere is cancelled and abandons itself at its next
/// yield ([`cancelled`]).
fn abandon_suspended<C: ContextOps>(co: &Control, ctx: &C) {
    loop {
        match co.phase.abandon() {
            Ok(()) => {
                // The phase `Finished` keeps every enterer away, as a claim would.
                ctx.discard_unstarted();
                return;
            }
            Err(Phase::Running) => {
                if co.phase.cancel() == Phase::Running {
                    return;
                }
            }
            Err(Phase::Yielded) => thread::yield_now(),
            Err(Phase::Finished) => return,
            Err(Phase::Idle) => {}
        }
    }
}
