//! Runs the copyable examples under `examples/` against the real server, so that a change
//! to the API that breaks them fails here rather than for the user who copies them.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};

use serde_json::Value;

/// The binary, isolated from the caller's environment.
fn cli(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agentstore"));
    c.env_remove("AGENTSTORE_DATA_DIR")
        .env_remove("AGENTSTORE_TENANT")
        .env_remove("AGENTSTORE_ACTOR")
        .env_remove("AGENTSTORE_MODEL_DIR")
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null());
    c
}

fn describe(what: &str, o: &Output) -> String {
    format!(
        "{what}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command that must succeed; returns its stdout.
fn ok(data: &Path, args: &[&str]) -> String {
    let o = cli(data).args(args).output().expect("the binary runs");
    assert!(
        o.status.success(),
        "{}",
        describe(&format!("agentstore {}", args.join(" ")), &o)
    );
    String::from_utf8(o.stdout).expect("utf-8 output")
}

/// A running `agentstore serve`. Dropping it kills the process, so that a failing
/// assertion does not leave a server behind.
struct Server {
    child: Option<Child>,
    // Held open: closing it would make the server's next write to stdout fail.
    stdout: Option<BufReader<ChildStdout>>,
    base: String,
    log: PathBuf,
}

impl Server {
    fn start(data: &Path, log: PathBuf) -> Server {
        let mut child = cli(data)
            .args(["serve", "--preset", "test"])
            .stdout(Stdio::piped())
            // A file rather than a pipe: nobody reads the log while the test runs, and a
            // full pipe would stall the server.
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("the binary runs");
        let stdout = child.stdout.take().expect("piped stdout");
        // The guard exists before the first read, so that a panic below still kills it.
        let mut server = Server {
            child: Some(child),
            stdout: Some(BufReader::new(stdout)),
            base: String::new(),
            log,
        };
        let mut first = String::new();
        if let Some(out) = server.stdout.as_mut() {
            out.read_line(&mut first).expect("read the first line");
        }
        server.base = match first.trim().strip_prefix("agentstore listening on ") {
            Some(base) => base.to_owned(),
            None => panic!(
                "unexpected first line: {first:?}\nserver log:\n{}",
                server.log()
            ),
        };
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server the way an operator does, and returns how it exited.
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(term.success());
        child.wait().expect("wait for the server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Runs `examples/python/quickstart.py` against `server`; returns the summary it prints
/// as its last line.
fn run_quickstart(server: &Server, secret: &str) -> Value {
    let script = examples_dir().join("python/quickstart.py");
    let o = Command::new("python3")
        .arg(&script)
        .env("AGENTSTORE_URL", &server.base)
        .env("AGENTSTORE_API_KEY", secret)
        // With optimisation on, Python drops `assert`, and the script would check nothing.
        .env_remove("PYTHONOPTIMIZE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("python3 (3.11 or newer) must be on PATH: {e}"));
    let what = format!(
        "python3 {}\nserver log:\n{}",
        script.display(),
        server.log()
    );
    assert!(o.status.success(), "{}", describe(&what, &o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "the last line is not JSON ({e}): {last:?}\n{}",
            describe(&what, &o)
        )
    })
}

#[test]
fn python_quickstart_runs_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    ok(&data, &["init"]);
    let created: Value = serde_json::from_str(&ok(
        &data,
        &["--json", "keys", "create", "--scopes", "read,write"],
    ))
    .expect("keys create prints JSON");
    let secret = created["secret"].as_str().expect("a secret").to_owned();

    let server = Server::start(&data, dir.path().join("serve.log"));
    let summary = run_quickstart(&server, &secret);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["events"], 5, "{summary}");
    assert_eq!(summary["memory_versions"], 2, "{summary}");
    assert_eq!(summary["search_hits"], 2, "{summary}");
    let session = summary["session_id"].as_str().expect("a session id");

    // Users run a quickstart more than once; the second run must not trip over the first.
    let again = run_quickstart(&server, &secret);
    assert_eq!(again["ok"], true, "{again}");
    assert_eq!(again["memory_versions"], 2, "{again}");
    assert_eq!(again["search_hits"], 2, "{again}");
    assert_ne!(again["session_id"], session, "{again}");

    let log = server.log();
    let status = server.stop();
    assert!(
        status.success(),
        "serve exited with {status}\nserver log:\n{log}"
    );

    // What the script wrote over HTTP is in the store the CLI reads.
    let events = ok(&data, &["--json", "events", session]);
    assert!(
        events.contains("please remember that I prefer window seats"),
        "{events}"
    );
}
