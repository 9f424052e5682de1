//! The public API and the caller chain: creating, entering and yielding coroutines, written once for every
//! backend (QEMU's `qemu-coroutine.c`).
//!
//! Each coroutine has a [`Control`] block shared by its owner ([`Coroutine`]), its handles
//! ([`CoroutineRef`]) and the coroutine itself. The caller chain is implicit: whoever claims a coroutine's
//! baton waits on it until the coroutine yields or finishes, so a yield or a return always goes back to the
//! immediate caller, and a coroutine that is in the chain (running, or waiting for a coroutine it entered) is
//! "entered" and cannot be entered again.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use crate::backend::{Backend, Context, Entry};
use crate::baton::{Baton, Phase};
use crate::pool::Spec;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// The message of the panic for entering a native coroutine from a thread other than the one it runs on.
pub(crate) const OTHER_THREAD: &str = "entered a native coroutine on a thread other than the one it runs on (native coroutines stay on the thread that first entered them)";

crate::sync::thread_local! {
    /// The coroutine running on this thread: a pointer to the `Arc<Control>` held by the entry frame of the
    /// coroutine (see `entry`), null outside coroutines. Set at a coroutine's start and after each of its
    /// resumptions, restored by an enterer when the coroutine it entered gives control back.
    static CURRENT: Cell<*const Arc<Control>> = const { Cell::new(std::ptr::null()) };
}

#[inline]
fn current_ptr() -> *const Arc<Control> {
    CURRENT.with(|c| c.get())
}

#[inline]
fn set_current(ptr: *const Arc<Control>) {
    CURRENT.with(|c| c.set(ptr));
}

/// The unwind payload that `yield_now` raises in a coroutine whose owner dropped it. Private: the entry frame
/// catches it, and user code cannot name it.
struct ForcedUnwind;

/// A coroutine's control block.
///
/// Invariants: `baton` is the only record of the coroutine's phase; `panic` is written by the coroutine
/// before it finishes and taken by the enterer that sees it finish; `unwinding` is set once the forced unwind
/// has been raised.
pub(crate) struct Control {
    pub(crate) baton: Baton,
    context: Context,
    id: u64,
    name: Option<String>,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    unwinding: AtomicBool,
}

crate::sync::global! {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
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
    co: Arc<Control>,
    result: Arc<Mutex<Option<R>>>,
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

    /// Creates the coroutine; runs nothing. Fails if the operating system refuses a thread (or stack), or if
    /// the name contains a NUL byte.
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
        let result = Arc::new(Mutex::new(None));
        let slot = result.clone();
        let entry: Entry = Box::new(move |co: &Arc<Control>| run_body(co, f, &slot));
        let context = Context::new(self.backend, &self.spec, entry)?;
        let co = Arc::new(Control {
            baton: Baton::new(),
            context,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: self.spec.name,
            panic: Mutex::new(None),
            unwinding: AtomicBool::new(false),
        });
        Ok(Coroutine { co, result })
    }
}

/// The first frame of every coroutine: makes it current, runs the body, and records how it ended.
fn run_body<F, R>(co: &Arc<Control>, f: F, slot: &Mutex<Option<R>>)
where
    F: FnOnce() -> R,
{
    set_current(co);
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => *slot.lock() = Some(value),
        Err(payload) if payload.is::<ForcedUnwind>() => {}
        Err(payload) => *co.panic.lock() = Some(payload),
    }
    set_current(std::ptr::null());
}

impl<R> Coroutine<R> {
    /// Creates a coroutine that will run `f`; runs nothing (`qemu_coroutine_create`).
    ///
    /// # Panics
    /// Where [`Builder::spawn`] would return `Err`: if the operating system refuses a thread.
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
    pub fn enter(&mut self) -> Resume<R> {
        match enter(&self.co) {
            Ok(Phase::Yielded) => Resume::Yielded,
            _ => match self.result.lock().take() {
                Some(value) => Resume::Returned(value),
                None => panic!("{FINISHED}"),
            },
        }
    }

    /// Whether the coroutine has finished (its body returned or panicked).
    pub fn is_finished(&self) -> bool {
        self.co.baton.phase() == Phase::Finished
    }

    /// A handle to this coroutine.
    pub fn handle(&self) -> CoroutineRef {
        CoroutineRef {
            co: self.co.clone(),
        }
    }
}

impl<R> Drop for Coroutine<R> {
    fn drop(&mut self) {
        drop_coroutine(&self.co);
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
        .field("id", &co.id)
        .field("name", &co.name)
        .field("phase", &co.baton.phase())
        .finish()
}

impl CoroutineRef {
    /// Whether the coroutine is entered (`qemu_coroutine_entered`): true while it runs, and while it waits for
    /// a coroutine it entered; false while suspended or finished.
    pub fn is_entered(&self) -> bool {
        matches!(self.co.baton.phase(), Phase::Running | Phase::Yielded)
    }

    /// Whether the coroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.co.baton.phase() == Phase::Finished
    }

    /// Runs the coroutine until it yields or returns, like [`Coroutine::enter`]; the returned value (if any)
    /// stays for the owner, so this returns `Resume::Returned(())`.
    ///
    /// # Panics
    /// As [`Coroutine::enter`]: re-entered recursively, entered after finishing, or the body's own panic.
    pub fn enter(&self) -> Resume<()> {
        match enter(&self.co) {
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
        if self.is_entered() {
            return false;
        }
        if !self.co.context.runs_here() {
            // A native coroutine of another thread: never claim it from here.
            match self.co.baton.phase() {
                Phase::Finished => panic!("{FINISHED}"),
                Phase::Running | Phase::Yielded => return false,
                Phase::Idle => panic!("{OTHER_THREAD}"),
            }
        }
        match self.co.context.claim(&self.co.baton) {
            Ok(()) => {
                let _ = run_claimed(&self.co);
                true
            }
            Err(Phase::Finished) => panic!("{FINISHED}"),
            Err(_) => false,
        }
    }

    /// A number that identifies the coroutine within this process.
    pub fn id(&self) -> u64 {
        self.co.id
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
        self.co.id.hash(state);
    }
}

/// Claims the baton, waiting out a coroutine that has just yielded to an enterer on another thread that has
/// not taken control back yet. `Err(Finished)` if it has finished.
#[inline]
fn claim(co: &Control) -> Result<(), Phase> {
    if !co.context.runs_here() {
        // A native coroutine of another thread: never switch to its stack from here.
        match co.baton.phase() {
            Phase::Finished => return Err(Phase::Finished),
            Phase::Running => panic!("{REENTERED}"),
            Phase::Idle | Phase::Yielded => panic!("{OTHER_THREAD}"),
        }
    }
    loop {
        match co.context.claim(&co.baton) {
            Ok(()) => return Ok(()),
            Err(Phase::Running) => panic!("{REENTERED}"),
            Err(Phase::Yielded) => thread::yield_now(),
            Err(Phase::Finished) => return Err(Phase::Finished),
            Err(Phase::Idle) => {}
        }
    }
}

/// Enters `co`: `Ok(Yielded | Finished)`, or `Err(Finished)` if it had finished before.
#[inline]
fn enter(co: &Arc<Control>) -> Result<Phase, Phase> {
    claim(co)?;
    Ok(run_claimed(co))
}

/// Runs a coroutine whose baton the caller holds, until it gives control back; resumes its panic, if any.
#[inline]
fn run_claimed(co: &Arc<Control>) -> Phase {
    let caller = current_ptr();
    // The NESTED hint only matters to an enterer that waits on another thread.
    // SAFETY: as in `yield_now`: a non-null CURRENT points at the running coroutine's `Arc<Control>`, owned
    // by its entry frame below us on this stack.
    let outer = unsafe { caller.as_ref() }.filter(|outer| outer.context.enterer_waits());
    if let Some(outer) = outer {
        outer.baton.set_nested(true);
    }
    let phase = co.context.resume(co);
    set_current(caller);
    if let Some(outer) = outer {
        outer.baton.set_nested(false);
    }
    if phase == Phase::Finished
        && let Some(payload) = co.panic.lock().take()
    {
        panic::resume_unwind(payload);
    }
    phase
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
        panic!("{YIELD_OUTSIDE}");
    }
    // SAFETY: a non-null CURRENT points at the `Arc<Control>` owned by the entry frame (`run_body`) of the
    // coroutine running on this thread; that frame is below us on this stack and outlives this call.
    let co: &Arc<Control> = unsafe { &*ptr };
    if co.context.yield_to_caller(&co.baton).is_err() {
        forced_unwind(co);
    }
    co.context.suspend(co);
    set_current(ptr);
    if co.baton.is_cancelled() {
        forced_unwind(co);
    }
}

/// Unwinds a coroutine whose owner dropped it, back to its entry frame.
fn forced_unwind(co: &Control) -> ! {
    if co.unwinding.swap(true, Ordering::Relaxed) {
        panic!("{YIELD_WHILE_DROPPED}");
    }
    panic::resume_unwind(Box::new(ForcedUnwind));
}

/// Whether the caller runs inside a coroutine (`qemu_in_coroutine`).
///
/// ```
/// assert!(!cothread::in_coroutine());
/// let mut co = cothread::Coroutine::new(cothread::in_coroutine);
/// assert_eq!(co.enter().into_returned(), Some(true));
/// ```
pub fn in_coroutine() -> bool {
    !current_ptr().is_null()
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
    // SAFETY: as in `yield_now`: the pointee is owned by the running coroutine's entry frame.
    let co = unsafe { &*ptr };
    Some(CoroutineRef { co: co.clone() })
}

/// The owner drops a coroutine: a suspended one is unwound (its stack's destructors run) and its thread freed;
/// one that never ran has its body dropped unrun; one running elsewhere (entered through a handle) unwinds at
/// its next yield.
fn drop_coroutine(co: &Arc<Control>) {
    if !co.context.runs_here() {
        // A native coroutine dropped on a thread other than its own: its stack can only run on its own thread,
        // so it is left as it is (leaked if suspended; a handle can still enter it there).
        return;
    }
    if co.baton.phase() == Phase::Finished {
        return; // nothing to cancel (and no atomic read-modify-write in every lifecycle)
    }
    match co.baton.cancel() {
        Phase::Finished | Phase::Running => return,
        Phase::Idle | Phase::Yielded => {}
    }
    if claim(co).is_err() {
        return;
    }
    if co.context.discard_unstarted() {
        co.baton.finish();
        return;
    }
    if cfg!(panic = "abort") {
        // No unwinding: the suspended stack cannot be unwound. Mark the coroutine finished without running it
        // again: its thread stays parked for good and its stack's destructors never run (a leak), rather than
        // abort the process.
        co.baton.finish();
        return;
    }
    let caller = current_ptr();
    let phase = co.context.resume(co);
    set_current(caller);
    debug_assert_eq!(phase, Phase::Finished);
    if let Some(payload) = co.panic.lock().take() {
        if std::thread::panicking() {
            // Already unwinding: a second panic would abort. Report and go on.
            eprintln!("cothread: a coroutine panicked while being dropped during a panic");
        } else {
            panic::resume_unwind(payload);
        }
    }
}
