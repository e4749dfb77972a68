//! A PostgreSQL cluster from the installed server binaries (the Debian layout,
//! `/usr/lib/postgresql/<N>/bin`), in a directory of the caller's: created with `initdb` when the
//! directory holds none yet (reused when it does), started on `127.0.0.1:PORT` with its unix
//! socket beside it, stopped when dropped (fast shutdown: sessions ended, nothing lost).
//!
//! The server never outlives the process that started it, however that process ends: a
//! watchdog (`sh`, in the server's own process group) holds the read end of a pipe whose write
//! end only the starting process holds; when it closes — the process exited, or was killed with
//! `kill -9` — the watchdog stops the server (SIGINT, SIGKILL after 10 s). A server still left
//! running in the data directory (its watchdog killed too) is stopped at the next start
//! ([`stop_stale`], by its `postmaster.pid`).
//!
//! PostgreSQL refuses to run as root; when we run as root, the directory is handed to the
//! `postgres` system user (made by the Debian package) and the server runs as it.
//!
//! `up --postgres` runs one in `DATA/postgres`; `throughline-testkit`'s `PostgresServer` runs one
//! in a temporary directory for each test.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts each installed major version's binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The superuser `initdb` creates; authentication is `trust` (the server listens on loopback).
pub const POSTGRES_USER: &str = "postgres";
/// The database each cluster is created with.
pub const POSTGRES_DATABASE: &str = "throughline";
/// How long start-up may take on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before the server is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The watchdog: `$1` is the server's pid. Its stdin is a pipe only the starting process writes
/// to; `read` returns at end of file, i.e. when that process is gone. Then SIGINT (fast
/// shutdown), and SIGKILL if the server is still there (not a zombie) after 10 s.
const WATCHDOG: &str = r#"read -r _
kill -INT "$1" 2>/dev/null || exit 0
n=0
while [ $n -lt 100 ] && [ -e /proc/$1 ] && ! grep -q '^State:[[:space:]]*Z' /proc/$1/status 2>/dev/null; do
  sleep 0.1; n=$((n + 1))
done
[ $n -lt 100 ] || kill -KILL "$1" 2>/dev/null
exit 0"#;

/// Why a cluster could not be made or started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries not found under {DEBIAN_ROOT}/*/bin (initdb, postgres): `apt-get install postgresql` installs them"
    )]
    NotInstalled,
    #[error(
        "running as root, PostgreSQL refuses to run as root, and there is no `{POSTGRES_USER}` system user to run it as (`apt-get install postgresql` makes it)"
    )]
    NoPostgresUser,
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed: {output}")]
    Command { command: String, output: String },
    #[error("postgres did not accept connections within {} s; its log:\n{log}", .waited.as_secs())]
    NotReady { waited: Duration, log: String },
    #[error("postgres stopped at start-up ({status}); its log:\n{log}")]
    Exited { status: String, log: String },
    #[error(
        "a PostgreSQL server (pid {pid}) left running in {} by an earlier start did not stop; stop it and start again",
        .data.display()
    )]
    StaleRunning { pid: u32, data: PathBuf },
}

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Durability off (`fsync`, `synchronous_commit`, `full_page_writes`): for tests.
    pub throwaway: bool,
    /// Extra `-c name=value` settings.
    pub settings: Vec<(String, String)>,
}

/// A running server; dropping it stops the server.
#[derive(Debug)]
pub struct Cluster {
    child: Option<Child>,
    /// Stops the server when this process is gone (see the module's documentation).
    watchdog: Option<Watchdog>,
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
    log: PathBuf,
}

impl Cluster {
    /// Starts the cluster in `dir` (its data in `dir/data`, made by `initdb` the first time, with
    /// a database named [`POSTGRES_DATABASE`]) on `127.0.0.1:port`. `before_start` runs once the
    /// data directory exists, before the server starts (the tests put TLS files in it).
    pub fn start(
        dir: &Path,
        port: u16,
        options: &ClusterOptions,
        before_start: impl FnOnce(&Path, Option<(u32, u32)>) -> Result<(), ClusterError>,
    ) -> Result<Self, ClusterError> {
        let bin = binaries()?;
        let run_as = run_as_user()?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ClusterError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io(dir))?;
        }
        let data = dir.join("data");
        let log = dir.join("postgres.log");
        let pg = |name: &str| {
            let mut cmd = Command::new(bin.join(name));
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
            cmd.env_remove("PGDATA").current_dir(dir);
            cmd
        };
        let fresh = !data.join("PG_VERSION").is_file();
        if fresh {
            run(pg("initdb")
                .arg("-D")
                .arg(&data)
                .args(["--no-sync", "-A", "trust", "-U", POSTGRES_USER])
                .args(["--encoding", "UTF8", "--locale", "C"]))?;
        }
        if let Some(pid) = stop_stale(&data)? {
            eprintln!(
                "stopped PostgreSQL (pid {pid}) left running in {} by an earlier start",
                data.display()
            );
        }
        before_start(dir, run_as)?;
        let log_file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io(&log))?;
        let err_file = log_file.try_clone().map_err(io(&log))?;
        let mut postgres = pg("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=100"]);
        if options.throwaway {
            postgres
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"]);
        }
        for (name, value) in &options.settings {
            postgres.arg("-c").arg(format!("{name}={value}"));
        }
        // Its own process group: a Ctrl-C at the terminal reaches the caller, which stops the
        // server last, not the server first.
        let child = postgres
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .process_group(0)
            .spawn()
            .map_err(io(&bin.join("postgres")))?;
        let watchdog = Watchdog::start(child.id());
        let mut cluster = Self {
            child: Some(child),
            watchdog: None,
            port,
            bin,
            dir: dir.to_owned(),
            log,
        };
        cluster.watchdog = Some(watchdog.map_err(io(Path::new("sh")))?);
        cluster.wait_ready()?;
        if fresh {
            run(Command::new(cluster.bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    POSTGRES_USER,
                ])
                .arg(POSTGRES_DATABASE))?;
        }
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/throughline`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/{POSTGRES_DATABASE}",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster, its unix socket and its log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The installed binaries this cluster runs (`psql` is beside them).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `pg_isready` until the server accepts connections.
    fn wait_ready(&mut self) -> Result<(), ClusterError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(ClusterError::Exited {
                    status: status.to_string(),
                    log: self.log_text(),
                });
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::NotReady {
                    waited: START_TIMEOUT,
                    log: self.log_text(),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The server's (the postmaster's) pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server: SIGINT (fast shutdown), SIGKILL if it has not gone in 10 s.
    pub fn stop(&mut self) {
        // The watchdog first: it must not signal a pid that is no longer the server's.
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The watchdog process and the write end of its pipe (never written: only its closing counts).
#[derive(Debug)]
struct Watchdog {
    process: Child,
    _pipe: ChildStdin,
}

impl Watchdog {
    /// Watches the server `pid`, in the server's process group (its own when the server has
    /// already gone: start-up then reports why). The pipe's write end is close-on-exec, so no
    /// other process this one starts holds it open.
    fn start(pid: u32) -> std::io::Result<Self> {
        let spawn = |group: i32| {
            Command::new("sh")
                .args(["-c", WATCHDOG, "throughline-pgcluster-watchdog"])
                .arg(pid.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(group)
                .spawn()
        };
        let mut process = spawn(pid as i32).or_else(|_| spawn(0))?;
        let pipe = process
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the watchdog's stdin pipe was not made"))?;
        Ok(Self {
            process,
            _pipe: pipe,
        })
    }

    /// Ends the watchdog without it touching the server.
    fn dismiss(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Stops a server left running in the data directory `data` (by an earlier start whose
/// watchdog died with it): the pid in `data/postmaster.pid`, when that process is a `postgres`
/// whose working directory is `data` (the postmaster's is). SIGINT, SIGKILL after 10 s.
/// Returns the pid stopped, or `None` when no server of `data` runs. The caller makes sure no
/// live owner uses the directory (`up` holds the data directory's lock).
pub fn stop_stale(data: &Path) -> Result<Option<u32>, ClusterError> {
    let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) else {
        return Ok(None);
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return Ok(None);
    };
    if !is_server_of(pid, data) {
        return Ok(None);
    }
    let target = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGINT);
    let gone = |within: Duration| {
        let deadline = Instant::now() + within;
        while running(pid) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };
    if !gone(STOP_GRACE) {
        let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL);
        if !gone(Duration::from_secs(5)) {
            return Err(ClusterError::StaleRunning {
                pid,
                data: data.to_owned(),
            });
        }
    }
    Ok(Some(pid))
}

/// Whether `pid` is a running `postgres` serving the data directory `data`.
fn is_server_of(pid: u32, data: &Path) -> bool {
    if !running(pid) {
        return false;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let comm = std::fs::read_to_string(proc.join("comm")).unwrap_or_default();
    if comm.trim() != "postgres" {
        return false;
    }
    match (std::fs::read_link(proc.join("cwd")), data.canonicalize()) {
        (Ok(cwd), Ok(data)) => cwd == data,
        _ => false,
    }
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state != 'Z')
}

fn run(cmd: &mut Command) -> Result<(), ClusterError> {
    let command = format!("{}", cmd.get_program().to_string_lossy());
    let out = cmd.output().map_err(|source| ClusterError::Io {
        path: PathBuf::from(&command),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ClusterError::Command {
        command,
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// The bin directory of the newest PostgreSQL installed the Debian way.
pub fn binaries() -> Result<PathBuf, ClusterError> {
    std::fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: f64 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
        .ok_or(ClusterError::NotInstalled)
}

/// When running as root, the `postgres` system user's ids (PostgreSQL will not run as root).
pub fn run_as_user() -> Result<Option<(u32, u32)>, ClusterError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name(POSTGRES_USER)
        .ok()
        .flatten()
        .ok_or(ClusterError::NoPostgresUser)?;
    Ok(Some((user.uid.as_raw(), user.gid.as_raw())))
}
