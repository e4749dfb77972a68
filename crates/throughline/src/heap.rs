//! Keeps a server's heap small: few malloc arenas, and freed pages given back once it goes idle.
//!
//! glibc's malloc gives each thread that allocates under contention an arena of its own, up to
//! eight per core, and keeps what a burst freed inside them instead of returning it: after a load,
//! the broker held some 25 MB of freed message buffers and the collector some 15 MB of freed
//! decode buffers, resident for as long as the process lived. Our servers are I/O-bound with a
//! handful of threads, so [`limit_arenas`] caps the arenas at one per core (about 18 MB less over
//! the whole system after a load, for no measurable throughput), and [`trim_when_idle`] calls
//! `malloc_trim`, which hands free pages back (`madvise(MADV_DONTNEED)` inside each arena). It
//! locks each arena while it walks it, so it runs only when the process has gone quiet after being
//! busy: never on the hot path, once per burst.

use std::time::Duration;

/// How often the process's own CPU time is sampled.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// CPU time within one poll interval under which the process counts as idle: 2 % of one core.
/// Timers, long polls and the store's upkeep stay well under it; serving load stays well over.
const IDLE_CPU_PER_POLL: Duration = Duration::from_millis(20);

/// Caps malloc's arenas at one per core (at least two). Call before the server starts threads.
/// Does nothing where the allocator is not glibc's.
pub fn limit_arenas() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    set_arena_max(cores.max(2));
}

/// Starts a thread that trims the heap each time the process goes idle after a busy spell.
/// Does nothing where the allocator is not glibc's.
pub fn trim_when_idle() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(|| {
            let mut watch = IdleWatch::default();
            let mut last = cpu_time();
            loop {
                std::thread::sleep(POLL_INTERVAL);
                let now = cpu_time();
                if watch.observe(now.saturating_sub(last)) {
                    trim();
                }
                last = now;
            }
        });
    if let Err(err) = spawned {
        // Only memory is at stake: the server runs on without the trim.
        tracing::warn!(error = %err, "could not start the heap-trim thread");
    }
}

/// Decides, from the CPU time of each poll interval, when a busy spell has ended.
#[derive(Debug, Default)]
struct IdleWatch {
    busy_since_trim: bool,
}

impl IdleWatch {
    /// Takes one interval's CPU time; true when the heap should be trimmed now.
    fn observe(&mut self, cpu: Duration) -> bool {
        if cpu > IDLE_CPU_PER_POLL {
            self.busy_since_trim = true;
            false
        } else {
            std::mem::take(&mut self.busy_since_trim)
        }
    }
}

/// User plus system CPU time of the whole process so far.
fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let (user, system) = (usage.user_time(), usage.system_time());
            let micros = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            micros(user) + micros(system)
        }
        // getrusage(RUSAGE_SELF) cannot fail on Linux; if it did, the process looks idle and is
        // trimmed at most once.
        Err(_) => Duration::ZERO,
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the one foreign call: glibc's malloc_trim has no safe wrapper
fn trim() {
    // SAFETY: malloc_trim takes no pointer, touches only the allocator's own state, and takes each
    // arena's lock, so it is safe to call from any thread at any time.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // a foreign call: glibc's mallopt has no safe wrapper
fn set_arena_max(arenas: usize) {
    let arenas = nix::libc::c_int::try_from(arenas).unwrap_or(nix::libc::c_int::MAX);
    // SAFETY: mallopt takes two integers and changes only the allocator's own settings; glibc
    // applies M_ARENA_MAX to arenas created from now on, whatever threads are running.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSY: Duration = Duration::from_millis(400);
    const QUIET: Duration = Duration::from_millis(3);

    #[test]
    fn trims_once_when_a_busy_spell_ends() {
        let mut watch = IdleWatch::default();
        let decisions: Vec<bool> = [BUSY, BUSY, QUIET, QUIET, QUIET]
            .into_iter()
            .map(|cpu| watch.observe(cpu))
            .collect();
        assert_eq!(decisions, [false, false, true, false, false]);
    }

    #[test]
    fn never_trims_a_process_that_was_never_busy() {
        let mut watch = IdleWatch::default();
        assert!((0..10).all(|_| !watch.observe(QUIET)));
    }

    #[test]
    fn trims_again_after_each_burst() {
        let mut watch = IdleWatch::default();
        let decisions: Vec<bool> = [BUSY, QUIET, BUSY, BUSY, QUIET]
            .into_iter()
            .map(|cpu| watch.observe(cpu))
            .collect();
        assert_eq!(decisions, [false, true, false, false, true]);
    }
}
