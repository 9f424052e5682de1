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
