//! Parts die with `up`: a process started by the [`crate::Supervisor`] finds
//! [`DIE_WITH_PARENT_ENV`] in its environment and asks the kernel to send it SIGTERM when its
//! parent goes, however the parent ends (`kill -9` included).
//!
//! The binary calls [`die_with_parent`] first thing. The variable is inherited, so a process a
//! part starts in turn (a Lambda environment under the host) dies with that part as well.

/// Set on every part's environment by the supervisor.
pub const DIE_WITH_PARENT_ENV: &str = "THROUGHLINE_DIE_WITH_PARENT";

/// Arms `PR_SET_PDEATHSIG` (SIGTERM) when [`DIE_WITH_PARENT_ENV`] is set; exits at once when the
/// parent is already gone (re-parented to init before the signal was armed). Linux only; a no-op
/// elsewhere.
pub fn die_with_parent() {
    if std::env::var_os(DIE_WITH_PARENT_ENV).is_none() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use nix::sys::signal::Signal;
        if let Err(err) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
            eprintln!("{DIE_WITH_PARENT_ENV}: could not arm the parent-death signal: {err}");
            return;
        }
        if nix::unistd::getppid().as_raw() == 1 {
            eprintln!("the process that started this one is gone; exiting");
            std::process::exit(1);
        }
    }
}
