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
//! baton). So everything the coroutine's stack holds (values that are not `Send`, addresses of the home
//! thread's thread-locals that the compiler cached across a `yield_now`) is only ever used by the home
//! thread, and the `Coroutine` that owns it can be `Send`: moving the owner moves a handle, never the
//! execution. See `docs/native.md` for the whole argument.
//!
//! # The baton on one thread
//!
//! The phases move exactly as on the thread backend (`coroutine.rs` is the same for both): the enterer claims,
//! `yield_now` yields, [`NativeContext::resume`] finishes the baton when the body returned and then takes
//! control back with `wait_for_caller`, which returns at once because the coroutine has already stopped
//! running when the switch comes back. Nobody ever parks on a native coroutine's baton.

use std::cell::{Cell, UnsafeCell};
use std::io;
use std::mem;
use std::sync::atomic::{AtomicU64, Ordering};

use corosensei::stack::DefaultStack;
use corosensei::{CoroutineResult, Yielder};

use super::{ContextOps, Entry};
use crate::baton::{Baton, Cancelled, Phase};
use crate::coroutine::Control;
use crate::pool::Spec;
use crate::sync::Arc;

#[cfg(unix)]
mod overflow;
pub(crate) mod stacks;

/// The corosensei coroutine that runs one of ours: no values in or out (those go through `coroutine.rs`).
type Switch = corosensei::Coroutine<(), (), (), DefaultStack>;

/// A native context. See the module documentation.
///
/// Invariants:
/// - `home` is 0 until the first [`runs_here`](NativeContext::runs_here), then the [`thread_token`] of the
///   thread bound; it never changes again.
/// - `state` is touched only with the baton held on the home thread ([`resume`](NativeContext::resume),
///   [`discard_unstarted`](NativeContext::discard_unstarted)) or in `drop` (exclusive); a `Started` switch is
///   only ever resumed on the home thread, and `drop` never resumes or unwinds it.
/// - `yielder` is null until the coroutine starts, then points at the corosensei `Yielder` in the first frame
///   of the coroutine's stack; it is read only by the coroutine itself ([`suspend`](NativeContext::suspend)).
pub(crate) struct NativeContext {
    home: AtomicU64,
    /// The stack's pool bucket (its usable size).
    size: usize,
    /// The lowest address of the stack's guard page, for the overflow report.
    #[cfg_attr(not(unix), allow(dead_code))]
    guard: usize,
    yielder: Cell<*const Yielder<(), ()>>,
    state: UnsafeCell<State>,
}

enum State {
    /// Created, never entered: the stack from the pool and the body to run on it.
    Unstarted(DefaultStack, Entry),
    /// Entered at least once and not finished.
    Started(Switch),
    /// Finished or discarded; the stack has gone back to the pool.
    Done,
}

// SAFETY: `NativeContext` is shared through `Arc<Control>` by `CoroutineRef`s on any thread. Its non-`Sync`
// parts are `state` and `yielder`, and both are used by one thread only: `state` by the home thread holding the
// baton (which one enterer at a time can hold) or by `drop` (which has `&mut self`), `yielder` by the
// coroutine, which runs only on the home thread. What may cross threads is what `drop` touches on whatever
// thread drops the last reference: an `Unstarted` state (a `DefaultStack`, which is `Send`, and an `Entry`,
// which is `Box<dyn FnOnce + Send>`), or a `Started` corosensei coroutine that `drop` only forgets (moving its
// bytes, running nothing on its stack and touching none of the values there). See `docs/native.md`.
unsafe impl Send for NativeContext {}
// SAFETY: as for `Send`: every `&self` method that touches the non-`Sync` fields runs on the home thread only
// (`runs_here` is checked before the baton is claimed, and `suspend` runs on the coroutine's own stack).
unsafe impl Sync for NativeContext {}

/// The next thread token; 0 means "no thread".
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

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

#[cold]
fn new_thread_token() -> u64 {
    let token = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
    THREAD_TOKEN.with(|t| t.set(token));
    token
}

impl NativeContext {
    /// Makes the coroutine run: builds the corosensei coroutine on the pooled stack. Called on the home thread
    /// holding the baton, with `state` `Unstarted`.
    #[inline(never)]
    fn start<'a>(&self, state: &'a mut State, co: &Arc<Control>) -> &'a mut Switch {
        let State::Unstarted(stack, entry) = mem::replace(state, State::Done) else {
            unreachable!("cothread: starting a native coroutine twice");
        };
        #[cfg(unix)]
        overflow::prepare_thread();
        let this: *const NativeContext = self;
        // The coroutine's own `Arc<Control>`, which `CURRENT` points at while it runs: a copy of the pointer that
        // owns no reference (never dropped). It is used only while the coroutine runs, that is inside a
        // `resume`, whose caller holds a reference for the whole call; so no count is needed (two fewer atomic
        // operations per lifecycle), and the stack holds no reference to its own `Control` (no cycle: a
        // suspended coroutine whose owner was leaked does not keep its `Control` alive).
        // SAFETY: `Arc::as_ptr` of a live `Arc` is a valid argument for `Arc::from_raw`; the result is wrapped in
        // `ManuallyDrop` so that it never gives back a reference it did not take, and it is only used (cloned
        // by `current()`, dereferenced) while the coroutine runs, when the resumer's reference keeps it alive.
        let own = mem::ManuallyDrop::new(unsafe { Arc::from_raw(Arc::as_ptr(co)) });
        let body = move |yielder: &Yielder<(), ()>, ()| {
            // SAFETY: `this` points into the `Control` that the resumer's reference keeps alive for as long as
            // this closure runs, and `yielder` is only read by this coroutine while its first frame (which
            // holds the `Yielder`) is live.
            unsafe { (*this).yielder.set(yielder) };
            entry(&own);
        };
        *state = State::Started(corosensei::Coroutine::with_stack(stack, body));
        match state {
            State::Started(switch) => switch,
            _ => unreachable!(),
        }
    }
}

impl ContextOps for NativeContext {
    fn new(spec: &Spec, entry: Entry) -> io::Result<Self> {
        if cfg!(miri) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the native backend cannot run under Miri (its stack switch is inline assembly)",
            ));
        }
        let size = stacks::bucket(spec.stack_size)?;
        let stack = stacks::take(size)?;
        let guard = corosensei::stack::Stack::limit(&stack).get();
        Ok(NativeContext {
            home: AtomicU64::new(0),
            size,
            guard,
            yielder: Cell::new(std::ptr::null()),
            state: UnsafeCell::new(State::Unstarted(stack, entry)),
        })
    }

    #[inline]
    fn resume(&self, co: &Arc<Control>) -> Phase {
        debug_assert_eq!(self.home.load(Ordering::Relaxed), thread_token());
        // SAFETY: the caller holds the baton (so no other enterer is in here) and runs on the home thread
        // (`runs_here` was checked before the claim), so this is the only reference to `state`. The coroutine
        // that runs during the switch below touches only `yielder`, never `state`: entering itself fails the
        // claim, and dropping its owner from inside returns before touching the context.
        let state = unsafe { &mut *self.state.get() };
        let switch = match state {
            State::Started(switch) => switch,
            State::Unstarted(..) => self.start(state, co),
            State::Done => unreachable!("cothread: resuming a finished native coroutine"),
        };
        #[cfg(unix)]
        let outer = overflow::enter(self.guard);
        let result = switch.resume(());
        #[cfg(unix)]
        overflow::leave(outer);
        if let CoroutineResult::Return(()) = result {
            if let State::Started(switch) = mem::replace(state, State::Done) {
                stacks::give_back(self.size, switch.into_stack());
            }
            co.baton.finish_local();
        }
        co.baton.take_back_local()
    }

    #[inline]
    fn claim(&self, baton: &Baton) -> Result<(), Phase> {
        baton.claim_local()
    }

    #[inline]
    fn yield_to_caller(&self, baton: &Baton) -> Result<(), Cancelled> {
        baton.yield_local()
    }

    #[inline]
    fn suspend(&self, _co: &Control) {
        let yielder = self.yielder.get();
        debug_assert!(!yielder.is_null());
        // SAFETY: `suspend` is called by the running coroutine (from `yield_now`), so its first frame, which
        // holds the `Yielder` that `yielder` points at, is live below us on this stack.
        unsafe { (*yielder).suspend(()) }
    }

    fn discard_unstarted(&self) -> bool {
        // SAFETY: as in `resume`: the caller holds the baton on the home thread, and the coroutine is not
        // running (it would hold the baton otherwise).
        let state = unsafe { &mut *self.state.get() };
        match mem::replace(state, State::Done) {
            State::Unstarted(stack, entry) => {
                drop(entry);
                stacks::give_back(self.size, stack);
                true
            }
            other => {
                *state = other;
                false
            }
        }
    }

    #[inline]
    fn runs_here(&self) -> bool {
        let me = thread_token();
        match self.home.load(Ordering::Relaxed) {
            home if home == me => true,
            0 => match self
                .home
                .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => true,
                Err(home) => home == me,
            },
            _ => false,
        }
    }
}

impl Drop for NativeContext {
    fn drop(&mut self) {
        match mem::replace(self.state.get_mut(), State::Done) {
            State::Unstarted(stack, entry) => {
                drop(entry);
                stacks::give_back(self.size, stack);
            }
            State::Started(switch) if switch.done() => {
                stacks::give_back(self.size, switch.into_stack())
            }
            // A suspended stack (its owner was leaked, or dropped under `panic = "abort"` or on another thread):
            // it can only be unwound on its home thread, and this may not be it. Leak it rather than let
            // corosensei's own drop unwind it here.
            State::Started(switch) => mem::forget(switch),
            State::Done => {}
        }
    }
}
