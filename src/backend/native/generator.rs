//! The native generator's lean path: a generator is corosensei's coroutine typed `<I, MaybeUninit<Y>, R>` on a
//! pooled stack, so that the values travel in corosensei's own registers and a resume is corosensei's resume plus
//! a few instructions: the thread check, `CURRENT` saved, set and restored (so that [`current`](crate::current)
//! and [`in_coroutine`](crate::in_coroutine) work inside the body), and the check for a `yield_now()` that
//! gave control back without a value.
//!
//! A generator here does not go through `coroutine.rs`'s enter and yield: only its owner resumes it, so it has no
//! baton to claim and no caller chain to check (entering itself is impossible: the owner's `&mut` is held by
//! the running `resume`). It still has a control block ([`generator_control`]), only so that `CURRENT` names
//! it: `current()` hands out handles to it (their `enter` panics, the block being owner-only), and `yield_now`
//! inside the body reaches [`GeneratorContext`]'s `suspend`, which gives control back without a value. Its
//! phase stays `Idle` while the generator is suspended or runs, and becomes `Finished` when the body ends if a
//! handle can see it. An unnamed generator's block is reused with its stack: when the generator is dropped after
//! its end with no handle left, the two become the thread's spare in the stack pool ([`stacks::keep_spare`], as
//! a finished coroutine's block and stack do), and the next unnamed generator of that stack size takes both.
//!
//! The rule of the native backend holds: a generator runs only on the thread that first resumed it (its home,
//! a thread token as in [`NativeContext`](super::NativeContext)); resuming it elsewhere panics, dropping it
//! elsewhere while it is suspended leaks its stack without running anything on it.

use std::cell::Cell;
use std::io;
use std::mem::{ManuallyDrop, MaybeUninit};

use corosensei::stack::{DefaultStack, Stack};
use corosensei::{CoroutineResult, Yielder as Switcher};

use super::{THREAD_TOKEN, UNBOUND, stacks, thread_token};
use crate::backend::{Context, ContextOps, Control, Entry, Spec};
use crate::backend::{OTHER_THREAD, PoolStats, RESUMED_DONE, YIELDED_NOTHING};
use crate::control::{Cancelled, Phase, PhaseWord, current_ptr, replace_current, set_current};
use crate::sync::Arc;
use crate::sync::atomic::Ordering;

/// The `home` of a generator that has finished: never a thread token (tokens count up from 1) nor `UNBOUND`, so
/// the resume's one compare catches it too.
const DONE: u64 = u64::MAX - 1;

/// corosensei's coroutine for a generator: the yielded value is `MaybeUninit` so that `yield_now()` can give
/// control back without one (and says so in [`GeneratorContext::yielded_nothing`]).
type Switch<I, Y, R> = corosensei::Coroutine<I, MaybeUninit<Y>, R, DefaultStack>;

/// The context of a lean generator's control block. Its cells are touched by one thread at a time: the
/// generator's home thread while the generator lives (its owner's `resume` and drop, and the body, which runs
/// inside them), the thread that drops it, and then the thread whose spare slot holds the block.
pub(crate) struct GeneratorContext {
    /// The lowest address of the stack's guard page, for the overflow report.
    guard: Cell<usize>,
    /// The body's corosensei `Yielder` (type-erased), set as the body starts.
    switcher: Cell<*const ()>,
    /// Suspends the body through `switcher` without a value: `suspend_nothing::<I, Y>` for the generator's types.
    suspend_nothing: Cell<unsafe fn(*const ())>,
    /// Set by `yield_now()` in the body before it gives control back, cleared by the `resume` that gets it.
    yielded_nothing: Cell<bool>,
    /// While the block is a thread's spare (see `stacks`), the stack of its last generator, kept with it so that
    /// the next generator takes both at once; `stack_size` is its bucket.
    stack: Cell<Option<DefaultStack>>,
    stack_size: Cell<usize>,
}

// SAFETY: the control block holding this context is shared through `Arc<Control>` by handles on any thread, but
// they never reach the context: their enter panics first (the block is owner-only). Only the generator's owner
// (its `resume` and drop), the body (running inside a resume or the drop's unwind) and, after the generator, the
// holder of the spare slot touch the cells, one at a time; what may cross threads with them is a stack
// (`DefaultStack` is `Send`) and plain values.
unsafe impl Send for GeneratorContext {}
// SAFETY: as for `Send`.
unsafe impl Sync for GeneratorContext {}

/// Never called: a placeholder until a body sets its own.
unsafe fn no_switcher(_: *const ()) {
    unreachable!("cothread: yield_now() reached a generator that has not started");
}

/// `yield_now()` inside a generator: gives control back without a value.
///
/// # Safety
/// `switcher` points at the running body's `Switcher<I, MaybeUninit<Y>>`, and the caller runs in that body.
unsafe fn suspend_nothing<I, Y>(switcher: *const ()) {
    // SAFETY: the caller's promise.
    let switcher = unsafe { &*switcher.cast::<Switcher<I, MaybeUninit<Y>>>() };
    // The input of the resume that continues the body is dropped: `yield_now` returns nothing.
    drop(switcher.suspend(MaybeUninit::uninit()));
}

impl GeneratorContext {
    /// The guard page of the stack, for the overflow report.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn guard(&self) -> usize {
        self.guard.get()
    }

    /// The stack kept with a spare block, for `stacks` when it needs the stack alone.
    pub(crate) fn take_stack(&self) -> Option<DefaultStack> {
        self.stack.take()
    }
}

impl Drop for GeneratorContext {
    fn drop(&mut self) {
        if let Some(stack) = self.stack.take() {
            stacks::put_back(self.stack_size.get(), stack);
        }
    }
}

/// A control block for a native generator: owner-only (a handle's enter panics), phase `Idle`, with `context`;
/// it only names the generator for `current()` and `yield_now`.
fn generator_control(context: Context, name: Option<String>) -> Arc<Control> {
    let control = Control::new(context, name);
    control.owner_only.store(true, Ordering::Relaxed);
    Arc::new(control)
}

impl ContextOps for GeneratorContext {
    const CLAIM_STARTS: bool = false;
    const ENTERER_WAITS: bool = false;

    fn new(_: &Spec, _: impl Entry) -> io::Result<Self> {
        unreachable!("cothread: a generator's context is made by its generator")
    }

    fn into_context(self) -> Context {
        Context::Generator(self)
    }

    fn resume(&self, _: &Arc<Control>) -> Phase {
        unreachable!("cothread: a generator was entered through coroutine.rs")
    }

    /// `yield_now()` in the body: see [`suspend_nothing`].
    fn suspend(&self, _: &Control) -> Result<(), Cancelled> {
        self.yielded_nothing.set(true);
        // SAFETY: `yield_now` runs in the body (the control block is `CURRENT` only while it runs), which set
        // `switcher` and `suspend_nothing` for its own types as it started.
        unsafe { (self.suspend_nothing.get())(self.switcher.get()) };
        Ok(())
    }

    fn discard_unstarted(&self) -> bool {
        false
    }

    /// Only the owner resumes a generator; `coroutine.rs` stops a handle before it claims.
    fn claim(&self, _: &PhaseWord) -> Result<(), Phase> {
        Err(Phase::Running)
    }

    /// The phase stays as it is (see the module documentation).
    fn yield_to_enterer(&self, _: &PhaseWord) -> Result<(), Cancelled> {
        Ok(())
    }

    /// Never called: `coroutine.rs` neither discards nor abandons a generator's block (only its owner holds it).
    fn finish(&self, word: &PhaseWord) {
        word.finish_local();
    }

    /// Generators' stacks are counted with the native backend's.
    fn pool_stats() -> PoolStats {
        PoolStats::default()
    }

    /// Generators' stacks are trimmed with the native backend's.
    fn trim_pool(_: usize) {}
}

/// A native generator. See the module documentation.
///
/// Invariants: `home` is `UNBOUND` until the first resume, then the home thread's token, then `DONE` once the
/// body returned or panicked (`switch` is then done). `control`'s context is a [`GeneratorContext`].
pub(crate) struct NativeGenerator<I, Y, R> {
    home: u64,
    switch: ManuallyDrop<Switch<I, Y, R>>,
    control: ManuallyDrop<Arc<Control>>,
    /// The stack's pool bucket.
    size: usize,
    /// Whether the control block may be reused (unnamed).
    reusable: bool,
}

/// The generator context of a control block, if it is a lean generator's.
fn context_of_any(control: &Control) -> Option<&GeneratorContext> {
    match &control.context {
        Context::Generator(context) => Some(context),
        _ => None,
    }
}

/// The generator context of a lean generator's control block.
#[inline(always)]
fn context_of(control: &Control) -> &GeneratorContext {
    match &control.context {
        Context::Generator(context) => context,
        // SAFETY: a lean generator's control block is made with a generator context (`NativeGenerator::new`)
        // and keeps it (reuse only gives it a new id).
        _ => unsafe { std::hint::unreachable_unchecked() },
    }
}

impl<I, Y, R> NativeGenerator<I, Y, R> {
    /// A generator that will run `f` on a pooled stack of `spec`'s size. `f` gets corosensei's yielder, to wrap
    /// in the public `Yielder`.
    ///
    /// # Safety
    /// The caller makes sure that the generator is dropped, unwinding its body, before anything `f` borrows ends
    /// (see "Borrowing" on `ScopedGenerator`).
    #[inline]
    pub(crate) unsafe fn new<F>(spec: &Spec, f: F) -> io::Result<Self>
    where
        F: FnOnce(&Switcher<I, MaybeUninit<Y>>, I) -> R,
    {
        let size = stacks::bucket(spec.stack_size)?;
        // The thread's spare, if it is a generator's block with a stack of this bucket (and the generator is
        // unnamed: a name stays with its block): both at once. A coroutine's spare gives just its stack.
        let (spare, stack) = match spec.name {
            None => match stacks::take_spare(size) {
                Some(co) => match context_of_any(&co).and_then(GeneratorContext::take_stack) {
                    Some(stack) => (Some(co), stack),
                    None => match super::spare_into_stack(co) {
                        Some(stack) => (None, stack),
                        None => (None, stacks::take(size)?),
                    },
                },
                None => (None, stacks::take(size)?),
            },
            Some(_) => (None, stacks::take(size)?),
        };
        let guard = stack.limit().get();
        let control = match spare {
            Some(control) => {
                control.renew_id();
                context_of(&control).guard.set(guard);
                control
            }
            None => generator_control(
                Context::Generator(GeneratorContext {
                    guard: Cell::new(guard),
                    switcher: Cell::new(std::ptr::null()),
                    suspend_nothing: Cell::new(no_switcher),
                    yielded_nothing: Cell::new(false),
                    stack: Cell::new(None),
                    stack_size: Cell::new(0),
                }),
                spec.name.clone(),
            ),
        };
        let context: *const GeneratorContext = context_of(&control);
        let body = move |switcher: &Switcher<I, MaybeUninit<Y>>, input: I| {
            // SAFETY: the control block outlives the body's run: the owner holds it while it resumes or drops
            // the body, the only times the body runs.
            let context = unsafe { &*context };
            context
                .switcher
                .set((switcher as *const Switcher<I, MaybeUninit<Y>>).cast());
            context.suspend_nothing.set(suspend_nothing::<I, Y>);
            f(switcher, input)
        };
        // SAFETY: the caller keeps what `f` borrows alive until the generator is dropped, and the drop unwinds the
        // body (on its home thread) or leaves it never to run again.
        let switch = unsafe { Switch::with_stack_unchecked(stack, body) };
        Ok(NativeGenerator {
            home: UNBOUND,
            switch: ManuallyDrop::new(switch),
            control: ManuallyDrop::new(control),
            size,
            reusable: spec.name.is_none(),
        })
    }

    /// Runs the body with `input` until it suspends or returns. Inlined into the caller, as corosensei's own
    /// resume is: the switch clobbers every callee-saved register, and a call of its own would save and restore
    /// them all at every resume.
    #[inline(always)]
    pub(crate) fn resume(&mut self, input: I) -> CoroutineResult<Y, R> {
        let here = THREAD_TOKEN.with(Cell::get);
        if self.home != here {
            // The first resume binds it (inline: a lifecycle always gets here once); anything else is cold.
            if self.home == UNBOUND && here != 0 {
                self.home = here;
            } else {
                self.bind();
            }
        }
        let caller = replace_current(Arc::as_ptr(&self.control));
        // If the body panics, corosensei raises the panic again here: the generator is done.
        let unwinding = Unwinding {
            generator: self,
            caller,
        };
        let result = unwinding.generator.switch.resume(input);
        let this = unwinding.defuse();
        set_current(caller);
        match result {
            CoroutineResult::Yield(value) => {
                if context_of(&this.control).yielded_nothing.get() {
                    yielded_nothing(&this.control);
                }
                // SAFETY: `Yielder::suspend` yields an initialised value; only `yield_now` does not, and it sets
                // `yielded_nothing`, checked above.
                CoroutineResult::Yield(unsafe { value.assume_init() })
            }
            CoroutineResult::Return(value) => {
                finished(&mut this.home, &this.control);
                CoroutineResult::Return(value)
            }
        }
    }

    /// The resume's thread check failed: binds an unbound generator to this thread, or panics.
    #[cold]
    #[inline(never)]
    fn bind(&mut self) {
        match self.home {
            DONE => panic!("{RESUMED_DONE}"),
            UNBOUND => self.home = thread_token(),
            _ => panic!("{OTHER_THREAD}"),
        }
    }

    /// Whether the generator has been resumed at least once.
    pub(crate) fn started(&self) -> bool {
        self.switch.started()
    }

    /// Whether the body returned or panicked.
    pub(crate) fn done(&self) -> bool {
        self.home == DONE
    }

    /// Whether this thread may unwind the generator (it never ran, or it runs here).
    pub(crate) fn runs_here(&self) -> bool {
        self.home == UNBOUND || self.home == THREAD_TOKEN.with(Cell::get)
    }
}

/// The body ended (returned, or panicked out of `resume`): the generator is done, and a handle sees it finished.
#[inline]
fn finished(home: &mut u64, control: &Arc<Control>) {
    *home = DONE;
    // With no handle (the usual case) nobody can look at the phase.
    if Arc::strong_count(control) > 1 {
        finish_for_handles(control);
    }
}

/// Makes the phase `Finished` for the handles to see (with the one-writer transitions: only the home thread
/// writes it), unless it is already.
fn finish_for_handles(control: &Control) {
    if control.phase.claim_local().is_ok() {
        control.phase.finish_local();
    }
}

/// `yield_now()` gave control back without a value.
#[cold]
#[inline(never)]
fn yielded_nothing(control: &Control) -> ! {
    context_of(control).yielded_nothing.set(false);
    panic!("{YIELDED_NOTHING}");
}

/// Restores `CURRENT` and marks the generator done if its body's panic comes out of `resume`.
struct Unwinding<'g, I, Y, R> {
    generator: &'g mut NativeGenerator<I, Y, R>,
    caller: *const Control,
}

impl<'g, I, Y, R> Unwinding<'g, I, Y, R> {
    /// The resume came back: the generator, without the guard.
    #[inline(always)]
    fn defuse(self) -> &'g mut NativeGenerator<I, Y, R> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: read once from a guard that is never dropped; the reference is the one it held.
        unsafe { std::ptr::read(&this.generator) }
    }
}

impl<I, Y, R> Drop for Unwinding<'_, I, Y, R> {
    fn drop(&mut self) {
        set_current(self.caller);
        finished(&mut self.generator.home, &self.generator.control);
    }
}

impl<I, Y, R> Drop for NativeGenerator<I, Y, R> {
    fn drop(&mut self) {
        if self.home == DONE {
            // The usual case: nothing left to run.
            // SAFETY: `drop` runs once; neither field is used after this.
            let control = unsafe { ManuallyDrop::take(&mut self.control) };
            return retire_done(&mut self.switch, control, self.size, self.reusable);
        }
        // SAFETY: as above.
        let switch = unsafe { ManuallyDrop::take(&mut self.switch) };
        // SAFETY: as above.
        let control = unsafe { ManuallyDrop::take(&mut self.control) };
        /// Retires the generator even if the body's destructors panic while it unwinds.
        struct Retire<I, Y, R> {
            switch: Option<Switch<I, Y, R>>,
            control: Option<Arc<Control>>,
            size: usize,
            reusable: bool,
            caller: *const Control,
        }
        impl<I, Y, R> Drop for Retire<I, Y, R> {
            fn drop(&mut self) {
                set_current(self.caller);
                if let (Some(switch), Some(control)) = (self.switch.take(), self.control.take()) {
                    retire(switch, control, self.size, self.reusable);
                }
            }
        }
        // Under `panic = "abort"` nothing can unwind: a suspended body is leaked, as a coroutine's is.
        let unwind =
            !cfg!(panic = "abort") && switch.started() && !switch.done() && self.runs_here();
        let caller = current_ptr();
        if unwind {
            // Suspended here: unwind the body (its destructors run as the generator, as they would in it).
            set_current(Arc::as_ptr(&control));
        }
        let mut retire = Retire {
            switch: Some(switch),
            control: Some(control),
            size: self.size,
            reusable: self.reusable,
            caller,
        };
        if let Some(switch) = retire.switch.as_mut()
            && (unwind || !switch.started())
        {
            // Unwinds the suspended body, or drops an unstarted one in place (corosensei does not switch to the
            // stack for that). A panic of the body's destructors comes out of here, after `retire` did its work.
            switch.force_unwind();
        }
    }
}

/// After its generator: a done switch's stack stays with the control block as the thread's spare if the block is
/// `reusable` (unnamed), nothing else refers to it and its phase is still `Idle` (no handle saw it finish);
/// otherwise the stack goes back to the pool and the block is dropped (finished first for the handles that
/// remain). A switch that is not done (suspended on another thread, or under `panic = "abort"`) is leaked:
/// nothing on its stack may run here.
fn retire<I, Y, R>(switch: Switch<I, Y, R>, control: Arc<Control>, size: usize, reusable: bool) {
    if switch.done() {
        retire_done(&mut ManuallyDrop::new(switch), control, size, reusable);
    } else {
        std::mem::forget(switch);
        if Arc::strong_count(&control) > 1 {
            finish_for_handles(&control);
        }
    }
}

/// [`retire`] for a switch that is done, taken out of its `ManuallyDrop` here (the caller never uses it again).
#[inline]
fn retire_done<I, Y, R>(
    switch: &mut ManuallyDrop<Switch<I, Y, R>>,
    control: Arc<Control>,
    size: usize,
    reusable: bool,
) {
    // SAFETY: the caller's promise: taken out once.
    let stack = unsafe { ManuallyDrop::take(switch) }.into_stack();
    if reusable && Arc::strong_count(&control) == 1 && control.phase.phase() == Phase::Idle {
        let context = context_of(&control);
        context.stack.set(Some(stack));
        context.stack_size.set(size);
        return stacks::keep_spare(size, control);
    }
    stacks::put_back(size, stack);
    if Arc::strong_count(&control) > 1 {
        finish_for_handles(&control);
    }
}
