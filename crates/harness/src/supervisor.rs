//! The process supervisor behind `up`: starts parts in order, waits until each listens, watches
//! them, restarts one that died (with backoff, saying so), gives up on a part that keeps crashing
//! (the others keep serving), and stops them in reverse order, SIGTERM then SIGKILL.
//!
//! Each part runs in its own process group (a terminal's Ctrl-C reaches only the supervisor,
//! which stops the parts in order), with [`crate::DIE_WITH_PARENT_ENV`] set so it dies with the
//! supervisor however that ends. Its stdout and stderr go to `LOGS/NAME.log` through a
//! [`LogFile`] (appended, rotated, no colour codes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::logs::{LogFile, Rotation};

/// Lines of a part's own log printed when it stops during start-up or is given up on.
const ERROR_LINES: usize = 12;

/// One part: a program, its arguments and environment, and the address it listens on once ready.
#[derive(Debug, Clone)]
pub struct PartSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Ready once this accepts connections; ready at once when `None`.
    pub ready: Option<SocketAddr>,
}

/// When a dead part is started again.
#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// The first restart's delay; doubled for each crash in the window, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Crashes within `window` before giving up on the part.
    pub max_crashes: usize,
    pub window: Duration,
    /// How long a starting part may take to listen.
    pub ready_timeout: Duration,
    /// How long a stopping part gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            max_crashes: 5,
            window: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(20),
            grace: Duration::from_secs(5),
        }
    }
}

/// What happened to a part, for the terminal.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// It exited on its own; it starts again after `delay`.
    Crashed {
        part: String,
        status: String,
        delay: Duration,
        crash: usize,
        of: usize,
    },
    Restarted {
        part: String,
        pid: u32,
    },
    /// It crashed too often; it stays down, with its last log lines.
    GaveUp {
        part: String,
        crashes: usize,
        window: Duration,
        last_lines: Vec<String>,
        log: PathBuf,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Crashed {
                part,
                status,
                delay,
                crash,
                of,
            } => write!(
                f,
                "  {part} stopped on its own ({status}); restarting in {:.1} s (crash {crash} of {of} allowed)",
                delay.as_secs_f64()
            ),
            Event::Restarted { part, pid } => write!(f, "  {part} restarted (pid {pid})"),
            Event::GaveUp {
                part,
                crashes,
                window,
                last_lines,
                log,
            } => {
                writeln!(
                    f,
                    "  {part} crashed {crashes} times within {} s; giving up on it (the other parts keep running); its last lines:",
                    window.as_secs()
                )?;
                for line in last_lines {
                    writeln!(f, "    {line}")?;
                }
                write!(f, "  (whole log: {})", log.display())
            }
        }
    }
}

/// Why a part could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the log of {part}")]
    Log {
        part: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {part} ({program})")]
    Spawn {
        part: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{part} stopped during start-up ({status}); its last lines:\n{}\n  (whole log: {})", indent(.last_lines), .log.display())]
    Died {
        part: String,
        status: String,
        last_lines: Vec<String>,
        log: PathBuf,
    },
    #[error("{part} did not listen on {addr} within {} s (log: {})", .timeout.as_secs(), .log.display())]
    NotReady {
        part: String,
        addr: SocketAddr,
        timeout: Duration,
        log: PathBuf,
    },
}

fn indent(lines: &[String]) -> String {
    if lines.is_empty() {
        return "    (nothing)".to_owned();
    }
    lines
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug)]
struct Running {
    spec: PartSpec,
    child: Option<Child>,
    /// The threads copying its output; done once its pipes closed.
    copiers: Vec<std::thread::JoinHandle<()>>,
    log: LogFile,
    crashes: Vec<Instant>,
    restart_at: Option<Instant>,
    given_up: bool,
}

/// The started parts, in start order.
#[derive(Debug)]
pub struct Supervisor {
    log_dir: PathBuf,
    policy: RestartPolicy,
    rotation: Rotation,
    parts: Vec<Running>,
}

impl Supervisor {
    pub fn new(log_dir: impl Into<PathBuf>, policy: RestartPolicy) -> Self {
        Self {
            log_dir: log_dir.into(),
            policy,
            rotation: Rotation::default(),
            parts: Vec::new(),
        }
    }

    /// Starts a part and waits until it listens; a part that dies meanwhile is an error carrying
    /// its own last log lines.
    pub fn start(&mut self, spec: PartSpec) -> Result<(), StartError> {
        let path = self.log_dir.join(format!("{}.log", spec.name));
        let log = LogFile::open(&path, self.rotation).map_err(|source| StartError::Log {
            part: spec.name.clone(),
            source,
        })?;
        let (child, copiers) = spawn(&spec, &log)?;
        self.parts.push(Running {
            spec,
            child: Some(child),
            copiers,
            log,
            crashes: Vec::new(),
            restart_at: None,
            given_up: false,
        });
        let index = self.parts.len() - 1;
        self.wait_ready(index)
    }

    fn wait_ready(&mut self, index: usize) -> Result<(), StartError> {
        let timeout = self.policy.ready_timeout;
        let part = &mut self.parts[index];
        let Some(addr) = part.spec.ready else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Some(child) = part.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                part.drain();
                return Err(StartError::Died {
                    part: part.spec.name.clone(),
                    status: status.to_string(),
                    last_lines: part.log.error_lines(ERROR_LINES),
                    log: part.log.path().to_owned(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(StartError::NotReady {
            part: part.spec.name.clone(),
            addr,
            timeout,
            log: part.log.path().to_owned(),
        })
    }

    /// Looks at every part once: schedules restarts of the dead, starts those due, gives up on
    /// those crashing too often. Call it a few times a second.
    pub fn poll(&mut self) -> Vec<Event> {
        let policy = self.policy;
        let now = Instant::now();
        let mut events = Vec::new();
        for part in &mut self.parts {
            if part.given_up {
                continue;
            }
            if let Some(child) = part.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                part.child = None;
                part.crashes
                    .retain(|t| now.duration_since(*t) < policy.window);
                part.crashes.push(now);
                let crash = part.crashes.len();
                if crash >= policy.max_crashes {
                    part.given_up = true;
                    part.drain();
                    events.push(Event::GaveUp {
                        part: part.spec.name.clone(),
                        crashes: crash,
                        window: policy.window,
                        last_lines: part.log.error_lines(ERROR_LINES),
                        log: part.log.path().to_owned(),
                    });
                    continue;
                }
                let factor = 1u32 << (crash - 1).min(16);
                let delay = policy
                    .backoff
                    .saturating_mul(factor)
                    .min(policy.max_backoff);
                part.restart_at = Some(now + delay);
                events.push(Event::Crashed {
                    part: part.spec.name.clone(),
                    status: describe(status),
                    delay,
                    crash,
                    of: policy.max_crashes - 1,
                });
            }
            if part.child.is_none() && part.restart_at.is_some_and(|at| at <= now) {
                part.restart_at = None;
                part.log.clear_tail();
                part.log
                    .write_line("--- restarted by throughline up after a crash");
                match spawn(&part.spec, &part.log) {
                    Ok((child, copiers)) => {
                        part.copiers = copiers;
                        events.push(Event::Restarted {
                            part: part.spec.name.clone(),
                            pid: child.id(),
                        });
                        part.child = Some(child);
                    }
                    Err(err) => {
                        part.log.write_line(&format!("restart failed: {err}"));
                        part.restart_at = Some(now + policy.max_backoff);
                    }
                }
            }
        }
        events
    }

    /// The path of a part's log.
    pub fn log_path(&self, part: &str) -> Option<&Path> {
        self.parts
            .iter()
            .find(|p| p.spec.name == part)
            .map(|p| p.log.path())
    }

    /// The pid of a running part.
    pub fn pid(&self, part: &str) -> Option<u32> {
        self.parts
            .iter()
            .find(|p| p.spec.name == part)
            .and_then(|p| p.child.as_ref())
            .map(Child::id)
    }

    /// Stops every part, the last started first; calls `stopped` with each name.
    pub fn stop(&mut self, mut stopped: impl FnMut(&str)) {
        let grace = self.policy.grace;
        while let Some(mut part) = self.parts.pop() {
            if let Some(child) = part.child.as_mut() {
                terminate(child, grace);
            }
            stopped(&part.spec.name);
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop(|_| {});
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(sig) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => status.to_string(),
    }
}

impl Running {
    /// Waits (a second at most: a process it started may hold the pipes) for the copy threads
    /// to write what the dead part said last.
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.copiers.iter().any(|c| !c.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

type Copiers = Vec<std::thread::JoinHandle<()>>;

fn spawn(spec: &PartSpec, log: &LogFile) -> Result<(Child, Copiers), StartError> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .env(crate::DIE_WITH_PARENT_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| StartError::Spawn {
            part: spec.name.clone(),
            program: spec.program.display().to_string(),
            source,
        })?;
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take()
        && let Ok(handle) = log.copy_from(out)
    {
        copiers.push(handle);
    }
    if let Some(err) = child.stderr.take()
        && let Ok(handle) = log.copy_from(err)
    {
        copiers.push(handle);
    }
    Ok((child, copiers))
}

/// SIGTERM, then SIGKILL after `grace`.
fn terminate(child: &mut Child, grace: Duration) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(name: &str, script: &str) -> PartSpec {
        PartSpec {
            name: name.into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Vec::new(),
            ready: None,
        }
    }

    fn fast() -> RestartPolicy {
        RestartPolicy {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            max_crashes: 3,
            window: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_part_that_dies_at_start_up_shows_its_own_last_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = Supervisor::new(dir.path(), fast());
        let mut spec = sh(
            "api",
            "echo 'DATABASE_URL: not a PostgreSQL URL' >&2; exit 3",
        );
        spec.ready = Some("127.0.0.1:9".parse().expect("addr"));
        let err = s.start(spec).expect_err("it died").to_string();
        assert!(
            err.contains("api stopped during start-up")
                && err.contains("DATABASE_URL: not a PostgreSQL URL"),
            "{err}"
        );
    }

    #[test]
    fn a_crashing_part_is_restarted_then_given_up_on_while_others_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut s = Supervisor::new(dir.path(), fast());
        s.start(sh("steady", "sleep 30")).expect("steady starts");
        s.start(sh("crashy", "echo boom; exit 1"))
            .expect("crashy starts");
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && !events.iter().any(|e| matches!(e, Event::GaveUp { .. }))
        {
            events.extend(s.poll());
            std::thread::sleep(Duration::from_millis(10));
        }
        let restarts = events
            .iter()
            .filter(|e| matches!(e, Event::Restarted { part, .. } if part == "crashy"))
            .count();
        assert_eq!(restarts, 2, "{events:?}");
        let gave_up = events
            .iter()
            .find(|e| matches!(e, Event::GaveUp { .. }))
            .expect("gave up")
            .to_string();
        assert!(
            gave_up.contains("crashy crashed 3 times") && gave_up.contains("boom"),
            "{gave_up}"
        );
        assert!(s.pid("steady").is_some(), "the other part keeps running");
        let log = std::fs::read_to_string(dir.path().join("crashy.log")).expect("log");
        assert_eq!(
            log.matches("boom").count(),
            3,
            "appended across restarts: {log}"
        );
        let mut stopped = Vec::new();
        s.stop(|name| stopped.push(name.to_owned()));
        assert_eq!(stopped, ["crashy", "steady"], "reverse order");
    }
}
