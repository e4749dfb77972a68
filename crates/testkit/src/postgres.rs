//! A throwaway PostgreSQL server for integration tests: the Debian binaries, a fresh cluster in
//! a temporary directory, listening on 127.0.0.1 on a free port, stopped and removed on drop.
//!
//! PostgreSQL refuses to run as root; when the tests run as root (CI), the cluster directory is
//! handed to the `postgres` system user (made by the Debian package) and the server runs as it.
//!
//! [`PostgresServer::start_with_tls`] also serves TLS, with a server certificate for 127.0.0.1
//! signed by a throwaway CA, both made with the `openssl` command.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian puts each installed major version's binaries: `/usr/lib/postgresql/<N>/bin`.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The superuser `initdb` creates; authentication is `trust`, so any password is accepted.
pub const POSTGRES_USER: &str = "postgres";
/// The database each server is created with.
pub const POSTGRES_DATABASE: &str = "throughline";
/// How long start-up may take on a loaded machine before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server; dropping it stops the server (immediate shutdown) and removes
/// its files.
#[derive(Debug)]
pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    /// The CA that signed the server's certificate, when it serves TLS.
    tls_ca: Option<PathBuf>,
    bin: PathBuf,
    log: PathBuf,
    // Dropped last: the server must be gone before its directory is removed.
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Starts a fresh server with a database named [`POSTGRES_DATABASE`].
    ///
    /// Panics with a message saying what is missing (`apt-get install postgresql`) when the
    /// binaries are not there, or with the server's log when it does not start.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`Self::start`], serving TLS as well (`ssl=on`) with a certificate for `127.0.0.1` signed by
    /// the CA at [`Self::tls_ca`]. Panics saying `apt-get install openssl` when that is missing.
    pub fn start_with_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let bin = binaries();
        // In /tmp rather than $TMPDIR: the `postgres` user must be able to reach it when we run as
        // root, and the unix socket's path must stay under the 107-byte limit.
        let dir = tempfile::Builder::new()
            .prefix("throughline-pg-")
            .tempdir_in("/tmp")
            .expect("create a temporary directory for the PostgreSQL cluster in /tmp");
        let run_as = run_as_user();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the PostgreSQL cluster directory to the postgres user");
        }
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");
        let pg = |name: &str| {
            let mut cmd = Command::new(bin.join(name));
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
            cmd.env_remove("PGDATA").current_dir(dir.path());
            cmd
        };

        let out = pg("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--no-sync", "-A", "trust", "-U", POSTGRES_USER])
            .args(["--encoding", "UTF8", "--locale", "C"])
            .output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", bin.join("initdb").display()));
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let tls_ca = tls.then(|| make_certificates(dir.path(), run_as));
        let port = crate::free_loopback_addr().port();
        let log_file = File::create(&log).expect("create the PostgreSQL log file");
        let mut postgres = pg("postgres");
        if tls {
            postgres.args(["-c", "ssl=on"]).args([
                "-c",
                "ssl_cert_file=server.crt",
                "-c",
                "ssl_key_file=server.key",
            ]);
            // Relative paths are read from the data directory: the files live beside it.
            for name in ["server.crt", "server.key"] {
                std::fs::rename(dir.path().join(name), data.join(name))
                    .expect("move the server's certificate into the data directory");
            }
        }
        let child = postgres
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "shared_buffers=16MB"])
            .args(["-c", "max_connections=50"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("duplicate the log file handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", bin.join("postgres").display()));
        let mut server = Self {
            child: Some(child),
            port,
            tls_ca,
            bin,
            log,
            dir,
        };
        server.wait_ready();
        let out = Command::new(server.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                POSTGRES_USER,
            ])
            .arg(POSTGRES_DATABASE)
            .output()
            .unwrap_or_else(|e| panic!("could not run createdb: {e}"));
        assert!(
            out.status.success(),
            "createdb failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.log_text()
        );
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/throughline`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{POSTGRES_USER}@127.0.0.1:{}/{POSTGRES_DATABASE}",
            self.port
        )
    }

    /// The same URL with a password in it (accepted, since authentication is `trust`): for
    /// tests that check a password never shows.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://{POSTGRES_USER}:{password}@127.0.0.1:{}/{POSTGRES_DATABASE}",
            self.port
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed the server's certificate (`sslrootcert=`); `None` unless
    /// started with [`Self::start_with_tls`].
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// The directory holding the cluster, its unix socket and its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs one SQL statement with `psql` and returns its unaligned, tuples-only output
    /// (`psql -At`): rows on lines, columns separated by `|`. Panics when psql fails.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("could not run psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `pg_isready` until the server accepts connections; panics with the log otherwise.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "postgres exited with {status} at start-up:\n{}",
                    self.log_text()
                );
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within {START_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGQUIT is PostgreSQL's immediate shutdown (`pg_ctl stop -m immediate`): the
        // postmaster takes its backends down with it. SIGKILL if it has not gone in 10 s.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
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

/// Makes `ca.crt` and a `server.crt` / `server.key` for 127.0.0.1 signed by it in `dir`, the key
/// readable by the server's user only (PostgreSQL insists); returns the CA's path.
fn make_certificates(dir: &Path, run_as: Option<(u32, u32)>) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("could not run openssl ({e}): `apt-get install openssl` is needed for the TLS tests")
            });
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=throughline test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n")
        .expect("write the certificate's extensions");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("restrict the server key's permissions");
    if let Some((uid, gid)) = run_as {
        for name in ["server.key", "server.crt"] {
            std::os::unix::fs::chown(dir.join(name), Some(uid), Some(gid))
                .expect("hand the server's certificate to the postgres user");
        }
    }
    dir.join("ca.crt")
}

/// The bin directory of the newest PostgreSQL installed the Debian way.
fn binaries() -> PathBuf {
    let newest = std::fs::read_dir(DEBIAN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: f64 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found under {DEBIAN_ROOT}/*/bin (initdb, postgres): \
             `apt-get install postgresql` is needed to run the PostgreSQL tests"
        ),
    }
}

/// When running as root, the `postgres` system user's ids (PostgreSQL will not run as root).
fn run_as_user() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let user = nix::unistd::User::from_name(POSTGRES_USER)
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "running as root, and PostgreSQL refuses to run as root, but there is no \
                 `{POSTGRES_USER}` system user to run it as (`apt-get install postgresql` makes it)"
            )
        });
    Some((user.uid.as_raw(), user.gid.as_raw()))
}
