//! Throwaway PostgreSQL and Redis servers for tests, on free loopback ports.
//!
//! PostgreSQL comes from `scripts/fetch-postgres.sh` (PostgreSQL 18 with pgvector; the
//! bin directory may also be given as `AGENTSTORE_PG_BIN`), Redis is the `redis-server`
//! on the PATH. Neither is ever skipped: a test that needs one and cannot start it fails,
//! so a CI run without them cannot pass by accident.
//!
//! One PostgreSQL cluster serves a whole test process (initdb costs a second; a fresh
//! database per test costs milliseconds). A watchdog shell process stops the cluster and
//! removes its directory when the test process exits, however it exits: Rust runs no
//! destructors of statics, and a test binary killed by a timeout must not leave a
//! server behind.
//!
//! Benchmarks start a cluster of their own with [`Postgres::start_with`] and
//! [`PgCluster::durable`]: the shared cluster runs without fsync, which would make
//! PostgreSQL's commits look cheaper than any real server's.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as `nobody` when we are root (PostgreSQL refuses to run as root).
fn as_server_user(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn pg_bin() -> PathBuf {
    if let Some(b) = std::env::var_os("AGENTSTORE_PG_BIN") {
        return PathBuf::from(b);
    }
    let script = workspace_root().join("scripts/fetch-postgres.sh");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed: PostgreSQL with pgvector is needed for this test",
        script.display()
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A running throwaway PostgreSQL cluster (superuser `postgres`, trust on loopback).
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    root: bool,
    databases: AtomicU32,
}

impl Postgres {
    /// The test process's cluster, started on first use.
    pub fn shared() -> &'static Postgres {
        static PG: OnceLock<Postgres> = OnceLock::new();
        PG.get_or_init(Postgres::start)
    }

    fn start() -> Postgres {
        Postgres::start_with(&PgCluster::fast())
    }

    /// A cluster of the caller's own, started with `cluster`'s settings (e.g.
    /// [`PgCluster::durable`] for benchmarks). Like the shared one, the watchdog stops it
    /// and removes its directory when the process exits.
    pub fn start_with(cluster: &PgCluster) -> Postgres {
        let bin = pg_bin();
        let root = is_root();
        let mut builder = tempfile::Builder::new();
        builder.prefix("agentstore-pg-");
        let dir = match &cluster.parent {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("temp dir")
        .keep();
        if root {
            run(Command::new("chown").arg("nobody").arg(&dir), "chown");
        }
        let data = dir.join("data");
        run(
            as_server_user(&bin.join("initdb"), root)
                .arg("-D")
                .arg(&data)
                // C.UTF-8, not C: with LC_CTYPE=C PostgreSQL's text search parser cannot
                // tell non-ASCII letters from punctuation ("东京，大阪" would be one word).
                .args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                    "--locale=C.UTF-8",
                ])
                .args(["-E", "UTF8"]),
            "initdb",
        );
        let port = free_port();
        // The socket directory is the cluster's own (the default may not be writable).
        let mut opts = format!("-p {port} -k {}", dir.display());
        for (name, value) in &cluster.settings {
            opts.push_str(&format!(" -c {name}={value}"));
        }
        run(
            as_server_user(&bin.join("pg_ctl"), root)
                .arg("-D")
                .arg(&data)
                .args(["-o", &opts, "-l"])
                .arg(dir.join("log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        );
        spawn_watchdog(&format!(
            "{} {} -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
            if root { "runuser -u nobody --" } else { "" },
            bin.join("pg_ctl").display(),
            data.display(),
            dir.display()
        ));
        Postgres {
            bin,
            dir,
            port,
            root,
            databases: AtomicU32::new(0),
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database with the `vector` extension available; its URL.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs one SQL command with psql against `db`, panicking on failure.
    pub fn psql(&self, db: &str, sql: &str) {
        run(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
                .args(["-c", sql]),
            "psql",
        );
    }

    /// The directory of the PostgreSQL binaries the cluster runs (`postgres`, `psql`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster's directory (data in `data/`, server log in `log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cluster runs as `nobody` (the harness is root).
    pub fn runs_as_nobody(&self) -> bool {
        self.root
    }
}

/// How to start a PostgreSQL cluster with [`Postgres::start_with`]: its server settings
/// and where its directory goes.
#[derive(Clone, Debug)]
pub struct PgCluster {
    settings: Vec<(String, String)>,
    parent: Option<PathBuf>,
}

impl PgCluster {
    /// The settings of the tests' shared cluster: tests want speed, not durability of a
    /// throwaway cluster, so no fsync, asynchronous commit and no full-page writes.
    pub fn fast() -> PgCluster {
        PgCluster {
            settings: Vec::new(),
            parent: None,
        }
        .setting("listen_addresses", "127.0.0.1")
        .setting("fsync", "off")
        .setting("synchronous_commit", "off")
        .setting("full_page_writes", "off")
        .setting("max_connections", "200")
    }

    /// PostgreSQL's durable defaults, stated explicitly: fsync on, synchronous commit on
    /// (a commit returns once its WAL is flushed), full-page writes on. What a server
    /// holding data runs, so what a benchmark has to measure.
    pub fn durable() -> PgCluster {
        PgCluster::fast()
            .setting("fsync", "on")
            .setting("synchronous_commit", "on")
            .setting("full_page_writes", "on")
    }

    /// Sets one server setting (`-c name=value`), replacing an earlier value of it.
    pub fn setting(mut self, name: &str, value: &str) -> PgCluster {
        self.settings.retain(|(n, _)| n != name);
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Puts the cluster's directory in `parent` instead of the system temp dir: its file
    /// system decides what an fsync costs.
    pub fn dir_in(mut self, parent: impl Into<PathBuf>) -> PgCluster {
        self.parent = Some(parent.into());
        self
    }

    /// The settings, in the order they are passed to the server.
    pub fn settings(&self) -> &[(String, String)] {
        &self.settings
    }
}

// A cluster that goes away: for tests of what clients see when the server stops.
impl Postgres {
    /// A cluster of the caller's own, separate from [`Postgres::shared`], that may be
    /// stopped ([`Postgres::stop`]) and started again ([`Postgres::restart`]) on the same
    /// port and data directory, to play a server that goes away and comes back. The
    /// watchdog stops it and removes its directory when the test process exits.
    ///
    /// Its commits are synchronous (for the role `postgres`, which overrides the shared
    /// cluster's `synchronous_commit=off` on the command line): a commit returns once its
    /// WAL is written, so an acknowledged write survives the immediate stop. Without it
    /// the last few hundred milliseconds of commits are lost with the WAL buffers, as
    /// PostgreSQL documents for asynchronous commit. (`fsync` stays off: a stopped
    /// server is not a crashed machine, and the system keeps what was written.)
    pub fn start_private() -> Postgres {
        let pg = Postgres::start();
        pg.psql(
            "postgres",
            "ALTER ROLE postgres SET synchronous_commit = on",
        );
        pg
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`: no checkpoint, every client
    /// connection cut, a crash as far as clients can tell) and waits until it is gone.
    pub fn stop(&self) {
        run(
            as_server_user(&self.bin.join("pg_ctl"), self.root)
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w", "-t", "60", "stop"]),
            "pg_ctl stop",
        );
    }

    /// Starts the server again after [`Postgres::stop`], on the same port and data
    /// directory with the options it was first started with (`pg_ctl restart` reads them
    /// back from `postmaster.opts`; with no server running it just starts one), and waits
    /// until it accepts connections (after crash recovery).
    pub fn restart(&self) {
        run(
            as_server_user(&self.bin.join("pg_ctl"), self.root)
                .arg("-D")
                .arg(self.dir.join("data"))
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-t", "60", "restart"]),
            "pg_ctl restart",
        );
    }
}

/// A running `redis-server` on a free loopback port, killed when dropped.
pub struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    /// Starts a new server without persistence.
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server with SIGKILL (a crash, not a shutdown) and waits for it to go.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (after [`Redis::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server (is it installed?): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `cleanup` in the background once this process has exited.
// Never waited for on purpose: the watchdog outlives this process, and init reaps it.
#[allow(clippy::zombie_processes)]
fn spawn_watchdog(cleanup: &str) {
    let pid = std::process::id();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup}"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the cleanup watchdog");
}
