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
        let bin = pg_bin();
        let root = is_root();
        let dir = tempfile::Builder::new()
            .prefix("agentstore-pg-")
            .tempdir()
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
        // Tests want speed, not durability of the throwaway cluster: no fsync. The
        // socket directory is the cluster's own (the default may not be writable).
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            dir.display()
        );
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

    /// The cluster's directory (data in `data/`, server log in `log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cluster runs as `nobody` (the harness is root).
    pub fn runs_as_nobody(&self) -> bool {
        self.root
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
