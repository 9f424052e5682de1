//! Helpers shared by the integration tests.

/// The message of a caught panic payload (`&str` or `String`).
#[allow(dead_code)] // not every test binary uses it
pub fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}

/// Sets its flag when dropped: shows that a destructor ran (or has not yet).
#[allow(dead_code)] // not every test binary uses it
pub struct DropFlag(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A [`DropFlag`] and the flag it sets, to read afterwards.
#[allow(dead_code)] // not every test binary uses it
pub fn drop_flag() -> (DropFlag, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let set = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    (DropFlag(set.clone()), set)
}

/// A stack size every 64-bit OS refuses at once: 1 EiB, more than any address space (x86_64's five-level
/// paging has 128 PiB, aarch64 at most 4 PiB), and within what the native backend asks the OS for. Not 64 TiB:
/// Windows and Wine can reserve that much, and qemu-user spends minutes looking for room for it in the guest's
/// address space. (A 32-bit address space has no size that every OS refuses and still fits a `usize`.)
#[cfg(target_pointer_width = "64")]
#[allow(dead_code)] // not every test binary uses it
pub const REFUSED_STACK_SIZE: usize = 1 << 60;

/// Defines, for each `case` listed (a `fn case(backend: Backend)` of the test file), a module `case` with one
/// test per backend this build can run: `case::thread`, and `case::native` where the native backend is
/// compiled in (`cfg(cothread_native)`: the `native` feature on a target corosensei supports, not under
/// `--cfg loom`) and not under Miri (its stack switch is inline assembly). Attributes written before a case
/// (`#[cfg_attr(miri, ignore = "why")]`, `#[cfg(...)]`) go on each of its tests.
///
/// A case creates its coroutines on `backend` ([`coroutine`], [`SpawnOn::spawn_on`], `Builder::backend`); the
/// tests of one backend only (`tests/native.rs`, the thread backend's pool) stay plain `#[test]`s.
#[macro_export]
macro_rules! on_each_backend {
    ($($(#[$attr:meta])* $case:ident),* $(,)?) => {$(
        mod $case {
            $(#[$attr])*
            #[test]
            fn thread() {
                super::$case(cothread::Backend::Thread);
            }

            #[cfg(all(cothread_native, not(miri)))]
            $(#[$attr])*
            #[test]
            fn native() {
                super::$case(cothread::Backend::Native);
            }
        }
    )*};
}

/// The backends [`on_each_backend!`] runs a case on (by the same cfg); `tests/backend.rs` checks that they are the
/// available ones.
#[allow(dead_code)] // not every test binary uses it
pub fn backends() -> Vec<cothread::Backend> {
    #[allow(unused_mut)] // only pushed to where the native backend runs
    let mut all = vec![cothread::Backend::Thread];
    #[cfg(all(cothread_native, not(miri)))]
    all.push(cothread::Backend::Native);
    all
}

/// A coroutine running `f` on `backend`; panics (naming the backend) if it cannot be created.
#[allow(dead_code)] // not every test binary uses it
pub fn coroutine<F, R>(backend: cothread::Backend, f: F) -> cothread::Coroutine<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    cothread::Builder::new()
        .backend(backend)
        .spawn(f)
        .unwrap_or_else(|e| panic!("cannot create a coroutine on {backend:?}: {e}"))
}

/// Spawning a task onto a [`cothread::RunLoop`] on a given backend.
#[allow(dead_code)] // not every test binary uses it
pub trait SpawnOn {
    /// Like `spawn`, with the task's coroutine on `backend`; panics (naming the backend) if it cannot be created.
    fn spawn_on<F, R>(
        &mut self,
        backend: cothread::Backend,
        f: F,
    ) -> cothread::runloop::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static;
}

impl SpawnOn for cothread::RunLoop {
    fn spawn_on<F, R>(
        &mut self,
        backend: cothread::Backend,
        f: F,
    ) -> cothread::runloop::JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_with(cothread::Builder::new().backend(backend), f)
            .unwrap_or_else(|e| panic!("cannot spawn a task on {backend:?}: {e}"))
    }
}
