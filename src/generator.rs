//! Generators in corosensei's shape: values go in through [`ScopedGenerator::resume`] and out through
//! [`Yielder::suspend`], on either backend.
//!
//! Two forms ([`Inner`]). A native generator takes a lean path (`backend/native/generator.rs`): corosensei's
//! coroutine typed with the generator's value types, so the values pass in its registers. Any other (thread
//! backend, Miri) is a coroutine ([`Coroutine<()>`](crate::Coroutine)) that only its owner enters, plus one heap
//! block of slots ([`Shared`]) through which the values pass: the resumer puts the input in, enters, and takes
//! the yielded (or returned) value out; the body does the mirror image around its yield. Everything else
//! (the caller chain, panics, dropping, pools) is then the coroutine's, written once in `coroutine.rs`.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop};

#[cfg(cothread_native)]
use crate::Backend;
use crate::backend::{RESUMED_DONE, YIELDED_NOTHING};
use crate::coroutine::{Builder, Control, Coroutine, Resume, yield_from};
use crate::sync::cell::UnsafeCell;

/// What [`ScopedGenerator::resume`] found: a value the generator yielded, or the value its body returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneratorResult<Y, R> {
    /// The body called [`Yielder::suspend`] with this value; resume it again to continue.
    Yield(Y),
    /// The body returned this value; the generator is done.
    Return(R),
}

impl<Y, R> GeneratorResult<Y, R> {
    /// The yielded value, or `None` if the body returned.
    pub fn as_yield(self) -> Option<Y> {
        match self {
            GeneratorResult::Yield(y) => Some(y),
            GeneratorResult::Return(_) => None,
        }
    }

    /// The returned value, or `None` if the body yielded.
    pub fn as_return(self) -> Option<R> {
        match self {
            GeneratorResult::Yield(_) => None,
            GeneratorResult::Return(r) => Some(r),
        }
    }
}

/// The body's end of a generator: [`suspend`](Yielder::suspend) hands a value to the resumer and returns the
/// next input. Passed to the body by reference; it cannot leave the body.
pub struct Yielder<I, Y> {
    /// A native generator's corosensei `Yielder` (its lean path, `backend/native/generator.rs`); null for a
    /// generator made of a coroutine and slots, which the other fields serve.
    #[cfg(cothread_native)]
    native: *const corosensei::Yielder<I, std::mem::MaybeUninit<Y>>,
    /// The generator's coroutine: set before the body first runs, alive while it runs (the owner holds it).
    co: *const Control,
    // `input` and `yielded` are touched by one side at a time: the resumer while the body does not run (before
    // it enters the coroutine and after it got control back), the body while it runs; the baton's
    // release/acquire hand-offs order the two sides.
    input: UnsafeCell<Option<I>>,
    yielded: UnsafeCell<Option<Y>>,
}

impl<I, Y> Yielder<I, Y> {
    /// Suspends the generator, handing `value` to the [`resume`](ScopedGenerator::resume) that ran it, and
    /// returns the input of the next `resume`.
    ///
    /// If the owner drops the generator instead of resuming it, this unwinds (the body's destructors run).
    ///
    /// ```
    /// use cothread::{Generator, GeneratorResult};
    ///
    /// let mut sum = Generator::new(|y, mut total: u64| loop {
    ///     total += y.suspend(total);
    /// });
    /// assert_eq!(sum.resume(1), GeneratorResult::Yield(1));
    /// assert_eq!(sum.resume(2), GeneratorResult::Yield(3));
    /// # let _: GeneratorResult<u64, ()> = sum.resume(0);
    /// ```
    #[inline]
    pub fn suspend(&self, value: Y) -> I {
        #[cfg(cothread_native)]
        if !self.native.is_null() {
            // SAFETY: `native` is the running body's own corosensei `Yielder`, on its stack below this frame.
            return unsafe { &*self.native }.suspend(std::mem::MaybeUninit::new(value));
        }
        // SAFETY: the body runs (it called us), so the slots are its own (see `Yielder`).
        self.yielded.with_mut(|y| unsafe { *y = Some(value) });
        // SAFETY: `co` is the coroutine this body runs in, set before it first ran and kept alive by the owner
        // while it runs. The `Yielder` never leaves the body, and the body's nested coroutines cannot reach it
        // (their bodies must be `Send`, and `&Yielder` is not), so the caller runs in `co`.
        yield_from(unsafe { &*self.co });
        // SAFETY: entered again, by the owner's `resume` (the only enterer), which put an input in first.
        match self.input.with_mut(|i| unsafe { (*i).take() }) {
            Some(input) => input,
            None => unreachable!("cothread: a generator was resumed without an input"),
        }
    }
}

impl<I, Y> Yielder<I, Y> {
    /// The `Yielder` of a native generator's body, around its corosensei `Yielder`.
    #[cfg(cothread_native)]
    pub(crate) fn native(
        switcher: &corosensei::Yielder<I, std::mem::MaybeUninit<Y>>,
    ) -> Yielder<I, Y> {
        Yielder {
            native: switcher,
            co: std::ptr::null(),
            input: UnsafeCell::new(None),
            yielded: UnsafeCell::new(None),
        }
    }
}

impl<I, Y> fmt::Debug for Yielder<I, Y> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// The slots a generator's values pass through, on the heap so that the owner can move. Invariant: `returned`
/// is written by the body once, as it returns, and taken by the owner after its enter saw the coroutine finish.
struct Shared<I, Y, R> {
    yielder: Yielder<I, Y>,
    returned: UnsafeCell<Option<R>>,
}

/// A pointer to the slots, for the body (which may run on another thread).
struct SharedPtr<I, Y, R>(*const Shared<I, Y, R>);

// SAFETY: the body reaches the slots only under `Yielder`'s and `Shared`'s invariants, one side at a time, and
// what passes through them (`I`, `Y`, `R`) is `Send`.
unsafe impl<I: Send, Y: Send, R: Send> Send for SharedPtr<I, Y, R> {}

impl<I, Y, R> SharedPtr<I, Y, R> {
    fn get(&self) -> *const Shared<I, Y, R> {
        self.0
    }
}

/// A generator whose body may borrow for `'a` (corosensei's `ScopedCoroutine`; [`Generator`] when it borrows
/// nothing): a body
/// `FnOnce(&Yielder<I, Y>, I) -> R` that takes an input `I` on each [`resume`](ScopedGenerator::resume),
/// hands out `Y`s with [`Yielder::suspend`], and finally returns an `R`.
///
/// It runs on a backend like any coroutine ([`Builder::generator`] picks it), under the same rules: a panic in
/// the body reaches `resume` with its payload and the generator is done; dropping a suspended generator unwinds
/// its stack; a native generator stays on the thread that first resumed it ("entered a native coroutine on a
/// thread other than the one it runs on"). Inside the body, [`in_coroutine`](crate::in_coroutine) is true,
/// [`current`](crate::current) names the generator's coroutine (a handle that can be compared and named, but
/// not entered: that panics; it says [`is_finished`](crate::CoroutineRef::is_finished) once the body ended,
/// and on the native backend [`is_entered`](crate::CoroutineRef::is_entered) stays false even while the body
/// runs), and coroutines and generators nest both ways. A native generator suspended on a thread other than its
/// own when it is dropped is leaked, its body never running again. [`yield_now`](crate::yield_now)
/// inside a generator gives control back without a value: the `resume` that gets it panics ("a generator
/// yielded without a value"); use [`Yielder::suspend`].
///
/// ```
/// use cothread::{GeneratorResult, ScopedGenerator};
///
/// let mut seen = Vec::new();
/// let last = ScopedGenerator::scope(
///     |y, first: i32| {
///         seen.push(first);
///         let second = y.suspend("half way");
///         seen.push(second);
///         seen.len()
///     },
///     |g| {
///         assert_eq!(g.resume(1), GeneratorResult::Yield("half way"));
///         g.resume(2)
///     },
/// );
/// assert_eq!(last, GeneratorResult::Return(2));
/// assert_eq!(seen, [1, 2]);
/// ```
///
/// # Borrowing, and why it is sound
///
/// A generator that borrows (`'a` shorter than `'static`) is only ever lent out, by [`ScopedGenerator::scope`]
/// (or [`Builder::scoped_generator`]), which drops it, unwinding its body, before it returns: corosensei's
/// `ScopedCoroutine::scope`, for the same reason. A generator made by value ([`ScopedGenerator::new`],
/// [`Builder::generator`]) borrows nothing (`'static`), so leaking it is harmless. The reason is not only that
/// a leaked body must never run again (it cannot: only the owner resumes it, see below), but that its frames
/// never return: a reference passed into a call that has not returned is *protected* in Rust's aliasing model
/// (Stacked and Tree Borrows), so touching the borrowed data again after the borrow ended would be undefined
/// behaviour even though the body never runs. Miri reports exactly that for a borrowing generator leaked with
/// `mem::forget`. So:
/// - the body runs only while the owner's [`resume`](ScopedGenerator::resume) waits for it, or while the
///   owner's drop unwinds it; nothing else can run it: its coroutine is owner-only (a
///   [`CoroutineRef`](crate::CoroutineRef) obtained inside the body with [`current`](crate::current) panics
///   if it tries to enter it), and its `Yielder` cannot leave the body (it is neither `Send` nor `Sync`);
/// - the lent `&mut ScopedGenerator<'a, ..>` cannot be swapped for another generator and taken away: the type
///   is invariant in `'a`, and the only generators made by value are `'static` ones;
/// - `scope` unwinds the body's frames before it returns, on the thread that runs `scope`. Where it cannot (a
///   native generator that was resumed on another thread, or a suspended generator under `panic = "abort"`),
///   it aborts the process with a message rather than return while the body still holds its borrows.
/// - a `'static` generator leaked while suspended keeps its thread parked (thread backend) or its stack
///   (native) for good; its body never runs again.
///
/// A borrowing generator cannot be made by value, nor taken out of its scope:
///
/// ```compile_fail
/// # use cothread::{ScopedGenerator, Yielder};
/// let mut n = 0;
/// let g = ScopedGenerator::new(|_: &Yielder<(), ()>, ()| n += 1); // `F` must be `'static`
/// ```
///
/// ```compile_fail
/// # use cothread::{Generator, ScopedGenerator, Yielder};
/// let mut n = 0;
/// ScopedGenerator::scope(|_: &Yielder<(), ()>, ()| n += 1, |g| {
///     let other: Generator<(), (), ()> = Generator::new(|_, ()| {});
///     std::mem::forget(std::mem::replace(g, other)); // `'static` is not the scope's `'a`
/// });
/// ```
///
/// # `Send` bounds
///
/// The body and the values must be `Send` on both backends. The thread backend needs it: the body runs on a
/// pool thread, and the input, the yielded and the returned values cross between that thread and the
/// resumer's. The native backend would not (it runs the body on the resumer's thread), but a generator's
/// backend is picked at run time ([`Builder::backend`]), so the bounds are the thread backend's.
pub struct ScopedGenerator<'a, I, Y, R> {
    inner: Inner<I, Y, R>,
    /// Invariant in `'a`: a lent generator cannot be swapped for a `'static` one (see "Borrowing").
    borrows: PhantomData<std::cell::Cell<&'a ()>>,
}

/// How a generator runs: a native one on corosensei's coroutine directly (the lean path), any other as a
/// coroutine plus slots.
enum Inner<I, Y, R> {
    Slots(Slotted<I, Y, R>),
    #[cfg(cothread_native)]
    Native(crate::backend::native::generator::NativeGenerator<I, Y, R>),
}

/// A generator made of a coroutine and a block of slots (see the module documentation).
struct Slotted<I, Y, R> {
    /// Dropped (unwinding the body) before the slots are freed: see `Drop`.
    co: ManuallyDrop<Coroutine<()>>,
    /// From `Box::into_raw`, freed by `drop`; shared with the body.
    shared: *mut Shared<I, Y, R>,
    started: bool,
}

/// A generator whose body borrows nothing: [`ScopedGenerator<'static, I, Y, R>`] (corosensei's `Coroutine`).
pub type Generator<I, Y, R> = ScopedGenerator<'static, I, Y, R>;

// SAFETY: moving the owner to another thread moves a coroutine (which is `Send`) and the slots, which hold
// `I`, `Y` and `R` (`Send`); or a native generator, whose stack runs only on its home thread (`resume` checks
// it first; a drop elsewhere leaks the suspended stack without running it), as a native `Coroutine` is `Send`
// (docs/native.md). `&ScopedGenerator` offers only `started` and `done`, but `Sync` is not needed.
unsafe impl<I: Send, Y: Send, R: Send> Send for ScopedGenerator<'_, I, Y, R> {}

impl<I, Y, R> ScopedGenerator<'static, I, Y, R>
where
    I: Send + 'static,
    Y: Send + 'static,
    R: Send + 'static,
{
    /// Creates a generator that will run `f` on the default backend; runs nothing. It borrows nothing: for a
    /// body that borrows, see [`scope`](ScopedGenerator::scope).
    ///
    /// # Panics
    /// Where [`Builder::generator`] would return `Err`: if the operating system refuses a thread or stack.
    pub fn new<F>(f: F) -> Generator<I, Y, R>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + Send + 'static,
    {
        match Builder::new().generator(f) {
            Ok(g) => g,
            Err(e) => panic!("cothread: failed to create a generator: {e}"),
        }
    }
}

impl<'a, I, Y, R> ScopedGenerator<'a, I, Y, R>
where
    I: Send + 'a,
    Y: Send + 'a,
    R: Send + 'a,
{
    /// Creates a generator that will run `f`, which may borrow for `'a`, on the default backend; lends it to
    /// `body`; drops it (unwinding its body if it is suspended) and returns what `body` returned.
    ///
    /// # Panics
    /// Where [`Builder::scoped_generator`] would return `Err`; with `body`'s panic (after dropping the
    /// generator). Aborts the process where it cannot unwind a suspended generator (see "Borrowing" above).
    pub fn scope<F, T>(f: F, body: impl FnOnce(&mut ScopedGenerator<'a, I, Y, R>) -> T) -> T
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + Send + 'a,
    {
        match Builder::new().scoped_generator(f, body) {
            Ok(t) => t,
            Err(e) => panic!("cothread: failed to create a generator: {e}"),
        }
    }
}

impl<I, Y, R> ScopedGenerator<'_, I, Y, R> {
    /// Runs the body with `input` (its argument on the first call, the value `suspend` returns after) until it
    /// suspends or returns.
    ///
    /// # Panics
    /// - "resumed a generator that has finished" if it is [`done`](ScopedGenerator::done);
    /// - with the body's own panic payload if it panics during this call (the generator is then done);
    /// - "a generator yielded without a value" if the body called `yield_now()`;
    /// - "entered a native coroutine on a thread other than the one it runs on" for a native generator resumed
    ///   on a thread other than its first.
    #[inline]
    pub fn resume(&mut self, input: I) -> GeneratorResult<Y, R> {
        match &mut self.inner {
            #[cfg(cothread_native)]
            Inner::Native(g) => match g.resume(input) {
                corosensei::CoroutineResult::Yield(value) => GeneratorResult::Yield(value),
                corosensei::CoroutineResult::Return(value) => GeneratorResult::Return(value),
            },
            Inner::Slots(g) => g.resume(input),
        }
    }

    /// Whether the generator has been resumed at least once.
    pub fn started(&self) -> bool {
        match &self.inner {
            #[cfg(cothread_native)]
            Inner::Native(g) => g.started(),
            Inner::Slots(g) => g.started,
        }
    }

    /// Whether the generator has finished: its body returned or panicked.
    pub fn done(&self) -> bool {
        match &self.inner {
            #[cfg(cothread_native)]
            Inner::Native(g) => g.done(),
            Inner::Slots(g) => g.co.is_finished(),
        }
    }

    /// Whether the calling thread may unwind the generator.
    fn runs_here(&self) -> bool {
        match &self.inner {
            #[cfg(cothread_native)]
            Inner::Native(g) => g.runs_here(),
            Inner::Slots(g) => g.co.runs_here(),
        }
    }
}

impl<I, Y, R> Slotted<I, Y, R> {
    /// Out of line where a native generator could be resumed instead, so that the native one inlines alone.
    #[cfg_attr(cothread_native, inline(never))]
    #[cfg_attr(not(cothread_native), inline)]
    fn resume(&mut self, input: I) -> GeneratorResult<Y, R> {
        if self.co.is_finished() {
            panic!("{RESUMED_DONE}");
        }
        // SAFETY: the body does not run (we are its only enterer and we are here), so the slots are ours, and
        // `shared` lives until `drop`.
        let shared = unsafe { &*self.shared };
        shared
            .yielder
            .input
            .with_mut(|i| unsafe { *i = Some(input) });
        self.started = true;
        match self.co.enter() {
            // SAFETY: the body gave control back: the slots are ours again.
            Resume::Yielded => match shared.yielder.yielded.with_mut(|y| unsafe { (*y).take() }) {
                Some(value) => GeneratorResult::Yield(value),
                None => panic!("{YIELDED_NOTHING}"),
            },
            // SAFETY: as above; the body wrote `returned` as it returned.
            Resume::Returned(()) => match shared.returned.with_mut(|r| unsafe { (*r).take() }) {
                Some(value) => GeneratorResult::Return(value),
                None => unreachable!("cothread: a generator returned no value"),
            },
        }
    }
}

impl Builder {
    /// Creates a generator with these settings (name, stack size, backend); runs nothing. Fails as
    /// [`Builder::spawn`] does. For a body that borrows, see [`Builder::scoped_generator`].
    ///
    /// ```
    /// use cothread::{Builder, GeneratorResult};
    ///
    /// let mut g = Builder::new().name("doubler").generator(|y, mut x: u32| loop {
    ///     x = y.suspend(x * 2);
    /// })?;
    /// assert_eq!(g.resume(21), GeneratorResult::<_, ()>::Yield(42));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[inline]
    pub fn generator<F, I, Y, R>(self, f: F) -> io::Result<Generator<I, Y, R>>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + Send + 'static,
        I: Send + 'static,
        Y: Send + 'static,
        R: Send + 'static,
    {
        // SAFETY: `'static`: nothing the body borrows can end.
        unsafe { self.generator_unchecked(f) }
    }

    /// [`ScopedGenerator::scope`] with these settings: creates a generator whose body may borrow for `'a`, lends
    /// it to `body`, drops it and returns what `body` returned. Fails as [`Builder::spawn`] does (then `body`
    /// does not run).
    ///
    /// ```
    /// use cothread::{Backend, Builder};
    ///
    /// let text = String::from("borrowed words, not copied");
    /// let words: Vec<&str> = Builder::new()
    ///     .backend(Backend::Thread)
    ///     .scoped_generator(
    ///         |y, ()| {
    ///             for w in text.split(' ') {
    ///                 y.suspend(w);
    ///             }
    ///         },
    ///         |g| g.collect(),
    ///     )?;
    /// assert_eq!(words, ["borrowed", "words,", "not", "copied"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn scoped_generator<'a, F, I, Y, R, T>(
        self,
        f: F,
        body: impl FnOnce(&mut ScopedGenerator<'a, I, Y, R>) -> T,
    ) -> io::Result<T>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + Send + 'a,
        I: Send + 'a,
        Y: Send + 'a,
        R: Send + 'a,
    {
        // SAFETY: the generator is only lent to `body`, never given away (the type is invariant in `'a`, and no
        // other `ScopedGenerator<'a, ..>` can be had by value to swap it for), and `Unwound` unwinds it (or
        // aborts) before this returns or unwinds.
        let g = unsafe { self.generator_unchecked(f)? };
        let mut unwound = Unwound(g);
        Ok(body(&mut unwound.0))
    }

    /// Creates a generator whose body may borrow for `'a`.
    ///
    /// # Safety
    /// The caller makes sure that the generator is dropped, unwinding its body's frames, before `'a` ends (a
    /// suspended body's frames hold its borrows as protected references until they return).
    #[inline]
    unsafe fn generator_unchecked<'a, F, I, Y, R>(
        self,
        f: F,
    ) -> io::Result<ScopedGenerator<'a, I, Y, R>>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + Send + 'a,
        I: Send + 'a,
        Y: Send + 'a,
        R: Send + 'a,
    {
        #[cfg(cothread_native)]
        if let (spec, Backend::Native) = self.parts()
            && Backend::Native.is_available()
        {
            if spec.name.as_deref().is_some_and(|n| n.contains('\0')) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "coroutine name contains a NUL byte",
                ));
            }
            // SAFETY: the caller's promise is the one `NativeGenerator::new` asks for.
            let g = unsafe {
                crate::backend::native::generator::NativeGenerator::new(
                    spec,
                    move |switcher, input| f(&Yielder::native(switcher), input),
                )?
            };
            return Ok(ScopedGenerator {
                inner: Inner::Native(g),
                borrows: PhantomData,
            });
        }
        let shared = Box::into_raw(Box::new(Shared {
            yielder: Yielder {
                #[cfg(cothread_native)]
                native: std::ptr::null(),
                co: std::ptr::null(),
                input: UnsafeCell::new(None),
                yielded: UnsafeCell::new(None),
            },
            returned: UnsafeCell::new(None),
        }));
        let ptr = SharedPtr(shared);
        let body = move || {
            // SAFETY: the slots live until the owner's drop, which first ends the body (or leaves it never to
            // run again); the body runs only under the slots' invariants.
            let shared = unsafe { &*ptr.get() };
            let input = match shared.yielder.input.with_mut(|i| unsafe { (*i).take() }) {
                Some(input) => input,
                None => unreachable!("cothread: a generator started without an input"),
            };
            let value = f(&shared.yielder, input);
            // SAFETY: the body runs; the owner takes this after its enter saw the coroutine finish.
            shared.returned.with_mut(|r| unsafe { *r = Some(value) });
        };
        let body: Box<dyn FnOnce() + Send + 'a> = Box::new(body);
        // SAFETY: only the lifetime changes (same layout). The body runs only inside the owner's `resume` or
        // drop, which the caller makes happen before `'a` ends (see "Borrowing" on `ScopedGenerator`).
        let body: Box<dyn FnOnce() + Send + 'static> = unsafe { mem::transmute(body) };
        let co = match self.spawn(body) {
            Ok(co) => co,
            Err(e) => {
                // SAFETY: from `Box::into_raw` above, and the body that shared it was dropped unrun.
                drop(unsafe { Box::from_raw(shared) });
                return Err(e);
            }
        };
        let control: *const Control = co.make_owner_only();
        // SAFETY: the body has not run: nobody else touches the slots yet.
        unsafe { (*shared).yielder.co = control };
        Ok(ScopedGenerator {
            inner: Inner::Slots(Slotted {
                co: ManuallyDrop::new(co),
                shared,
                started: false,
            }),
            borrows: PhantomData,
        })
    }
}

/// A lent generator: dropped (unwinding its body) when the scope ends, normally or by a panic; aborts the process
/// if its body's frames would outlive the scope.
struct Unwound<'a, I, Y, R>(ScopedGenerator<'a, I, Y, R>);

impl<I, Y, R> Drop for Unwound<'_, I, Y, R> {
    fn drop(&mut self) {
        let g = &self.0;
        if !g.started() || g.done() {
            return; // no frames: dropping it drops the body unrun, or nothing
        }
        if cfg!(panic = "abort") {
            unwind_failed("a suspended scoped generator cannot be unwound under panic = \"abort\"");
        }
        if !g.runs_here() {
            unwind_failed(
                "a scoped native generator ended its scope on a thread other than its own",
            );
        }
        // The generator itself is dropped after this, as a field: its drop unwinds the suspended body here.
    }
}

/// Aborts: returning from a scope while a body's frames still hold its borrows would be undefined behaviour.
#[cold]
fn unwind_failed(why: &str) -> ! {
    eprintln!("cothread: {why}; aborting (its body still borrows from the scope)");
    std::process::abort();
}

impl<I, Y, R> Drop for Slotted<I, Y, R> {
    fn drop(&mut self) {
        /// Frees the slots even if the body's destructors panic while it unwinds.
        struct Free<I, Y, R>(*mut Shared<I, Y, R>);
        impl<I, Y, R> Drop for Free<I, Y, R> {
            fn drop(&mut self) {
                // SAFETY: from `Box::into_raw`, freed once; the body has ended or will never run again.
                drop(unsafe { Box::from_raw(self.0) });
            }
        }
        let _free = Free(self.shared);
        // SAFETY: `drop` runs once, and `co` is not used after this.
        unsafe { ManuallyDrop::drop(&mut self.co) };
    }
}

impl<I, Y, R> fmt::Debug for ScopedGenerator<'_, I, Y, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ScopedGenerator");
        match &self.inner {
            Inner::Slots(g) => d.field("coroutine", &*g.co),
            #[cfg(cothread_native)]
            Inner::Native(_) => d.field("backend", &crate::Backend::Native),
        };
        d.field("started", &self.started())
            .field("done", &self.done())
            .finish()
    }
}

/// A generator of values is an iterator: each `next` resumes it with `()`, until its body returns.
///
/// ```
/// let evens = cothread::Generator::new(|y, ()| {
///     for i in 0..4 {
///         y.suspend(i * 2);
///     }
/// });
/// assert_eq!(evens.collect::<Vec<_>>(), [0, 2, 4, 6]);
/// ```
impl<Y> Iterator for ScopedGenerator<'_, (), Y, ()> {
    type Item = Y;

    fn next(&mut self) -> Option<Y> {
        if self.done() {
            return None;
        }
        self.resume(()).as_yield()
    }
}
