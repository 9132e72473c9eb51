//! Small helpers every module uses: a poison-tolerant lock and the wall clock.
use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, also after a panic elsewhere (the data are plain status fields).
pub fn lock<T>(s: &Mutex<T>) -> MutexGuard<'_, T> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wall clock, µs since the epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
