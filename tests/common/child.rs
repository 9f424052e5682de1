//! Running this test binary again as a child process, for tests of what must kill a process or would abort it
//! if a fault came back. Used by `tests/stack_overflow.rs`, `tests/drop_faults.rs`,
//! `tests/generator_scope_abort.rs` and the native backend's unit tests (through `#[path]`).

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a child may run at all: generous, for emulators (qemu-user, Wine) on a loaded machine.
const LIMIT: Duration = Duration::from_secs(120);

/// How long a child may go on running after it printed what the test waits for.
const GRACE: Duration = Duration::from_secs(5);

/// A command that runs this test binary again with `args`.
///
/// When cargo ran this binary through a runner (`CARGO_TARGET_<TRIPLE>_RUNNER`, such as
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu`), the child goes through the same runner: without binfmt_misc (as
/// in a container) the host cannot execute a binary for another architecture itself. Not on Windows: there
/// the runner is Wine, a host program, while this test is a Windows process and starts its child the Windows
/// way.
pub fn self_command(args: &[&str]) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = match runner() {
        Some(runner) => {
            let mut words = runner.split_whitespace();
            let mut cmd = Command::new(words.next().expect("a runner is not empty"));
            cmd.args(words).arg(exe);
            cmd
        }
        None => Command::new(exe),
    };
    cmd.args(args);
    cmd
}

/// The runner configured for this target, if any: the value of the `CARGO_TARGET_<TRIPLE>_RUNNER` variable
/// whose triple names this binary's architecture, OS and environment (a test cannot know its exact triple).
/// Runners set in a cargo config file instead, and `i686` triples (architecture `x86`), are not recognised.
fn runner() -> Option<String> {
    if cfg!(windows) {
        return None;
    }
    const ENV: &str = if cfg!(target_env = "gnu") {
        "gnu"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else {
        ""
    };
    let arch = std::env::consts::ARCH;
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        os => os,
    };
    std::env::vars_os().find_map(|(key, value)| {
        let (key, value) = (key.into_string().ok()?, value.into_string().ok()?);
        let triple = key
            .strip_prefix("CARGO_TARGET_")?
            .strip_suffix("_RUNNER")?
            .to_ascii_lowercase();
        // "armv7_..." is arm's and "riscv64gc_..." riscv64's, but "x86_64_..." is not x86's.
        let rest = triple.strip_prefix(arch)?;
        if rest.starts_with("_64") || rest.starts_with("64") {
            return None;
        }
        let mut parts = rest.split('_');
        let ours = parts.clone().any(|p| p == os) && parts.any(|p| p.starts_with(ENV));
        (ours && !value.trim().is_empty()).then_some(value)
    })
}

/// How a child ended.
pub struct Ended {
    /// Its exit status, or `None` if it was still running when [`run`] gave up and killed it.
    pub status: Option<ExitStatus>,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Runs the child to its end and collects its stderr (its stdout is discarded). A hang must fail a test, not
/// stall the run: a child still running [`LIMIT`] after it started, or [`GRACE`] after its stderr first
/// contained `last_words` (if given), is killed, and its status is `None`.
pub fn run(mut cmd: Command, last_words: Option<&str>) -> Ended {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child process");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let stderr = stderr.clone();
        let mut pipe = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                stderr.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let text =
        |stderr: &Mutex<Vec<u8>>| String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
    let started = Instant::now();
    let mut said_last_words = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break Some(status);
        }
        let now = Instant::now();
        if said_last_words.is_none() && last_words.is_some_and(|w| text(&stderr).contains(w)) {
            said_last_words = Some(now);
        }
        if now - started > LIMIT || said_last_words.is_some_and(|t| now - t > GRACE) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    reader.join().expect("stderr reader");
    Ended {
        status,
        stderr: text(&stderr),
    }
}
