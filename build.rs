//! Emits `cfg(cothread_native)`: "the native backend is compiled in". That is the `native` feature, on a target
//! where corosensei 0.3 builds on stable Rust, and not under `--cfg loom` (loom models the thread backend only).
//! Elsewhere `Backend::Native` still exists but is unavailable, and coroutines run on the thread backend.
//!
//! The target list below must match the `[target.'cfg(...)'.dependencies]` table of Cargo.toml that declares
//! corosensei: both read corosensei 0.3's own cfgs (`src/arch/mod.rs`: the architectures it has a switch for,
//! minus powerpc64, which needs nightly's `asm_experimental_arch`; `src/stack/mod.rs`: its default stack exists
//! on Unix and Windows only).

use std::env;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let on = |name: &str| env::var_os(name).is_some();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let vendor = env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    let (unix, windows) = (on("CARGO_CFG_UNIX"), on("CARGO_CFG_WINDOWS"));
    let switch = match arch.as_str() {
        "x86_64" | "x86" => true,
        "aarch64" | "riscv64" | "riscv32" | "loongarch64" => !windows,
        "arm" => !windows && vendor != "apple",
        _ => false,
    };
    if on("CARGO_FEATURE_NATIVE") && !on("CARGO_CFG_LOOM") && (unix || windows) && switch {
        println!("cargo::rustc-cfg=cothread_native");
    }
}
