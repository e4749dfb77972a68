//! A throwaway PostgreSQL server for integration tests: a `throughline-pgcluster` cluster in a
//! temporary directory, listening on 127.0.0.1 on a free port, stopped and removed on drop.
//! Panics saying what is missing (`apt-get install postgresql`) when the binaries are not there.
//!
//! [`PostgresServer::start_with_tls`] also serves TLS, with a server certificate for 127.0.0.1
//! signed by a throwaway CA, both made with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use throughline_pgcluster::{Cluster, ClusterOptions};
pub use throughline_pgcluster::{POSTGRES_DATABASE, POSTGRES_USER};

/// A running PostgreSQL server; dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct PostgresServer {
    cluster: Option<Cluster>,
    /// The CA that signed the server's certificate, when it serves TLS.
    tls_ca: Option<PathBuf>,
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
        // In /tmp rather than $TMPDIR: the `postgres` user must be able to reach it when we run as
        // root, and the unix socket's path must stay under the 107-byte limit.
        let dir = tempfile::Builder::new()
            .prefix("throughline-pg-")
            .tempdir_in("/tmp")
            .expect("create a temporary directory for the PostgreSQL cluster in /tmp");
        let mut options = ClusterOptions {
            throwaway: true,
            settings: Vec::new(),
        };
        if tls {
            // Relative paths are read from the data directory: the files are moved into it.
            for (name, value) in [
                ("ssl", "on"),
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ] {
                options.settings.push((name.to_owned(), value.to_owned()));
            }
        }
        let mut tls_ca = None;
        let port = crate::free_loopback_addr().port();
        let cluster = Cluster::start(dir.path(), port, &options, |dir, run_as| {
            if tls {
                tls_ca = Some(make_certificates(dir, run_as));
                for name in ["server.crt", "server.key"] {
                    std::fs::rename(dir.join(name), dir.join("data").join(name))
                        .expect("move the server's certificate into the data directory");
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}: the PostgreSQL tests need a server"));
        Self {
            cluster: Some(cluster),
            tls_ca,
            dir,
        }
    }

    fn cluster(&self) -> &Cluster {
        // Some until drop.
        self.cluster.as_ref().expect("a running cluster")
    }

    /// `postgres://postgres@127.0.0.1:PORT/throughline`.
    pub fn url(&self) -> String {
        self.cluster().url()
    }

    /// The same URL with a password in it (accepted, since authentication is `trust`): for
    /// tests that check a password never shows.
    pub fn url_with_password(&self, password: &str) -> String {
        format!(
            "postgres://{POSTGRES_USER}:{password}@127.0.0.1:{}/{POSTGRES_DATABASE}",
            self.port()
        )
    }

    pub fn port(&self) -> u16 {
        self.cluster().port()
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
        let out = Command::new(self.cluster().bin().join("psql"))
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
        self.cluster().log_text()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Stopped before the directory goes.
        self.cluster.take();
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
