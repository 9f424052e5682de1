//! The process's memory mappings, for the tests at the per-process limit on them (`tests/limits.rs`,
//! `tests/pool_limits.rs`). Linux only.

use std::fs::File;
use std::io::{self, Read};

/// The lines of `/proc/self/maps`, read through a small buffer (a large one would be a mapping of its own).
pub fn count_maps() -> usize {
    let mut file = File::open("/proc/self/maps").expect("/proc/self/maps");
    let mut buf = [0u8; 16 << 10];
    let mut lines = 0;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return lines,
            Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading /proc/self/maps: {e}"),
        }
    }
}
