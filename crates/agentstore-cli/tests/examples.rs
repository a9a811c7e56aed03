//! Runs the copyable examples under `examples/` against the real server, so that a change
//! to the API that breaks them fails here rather than for the user who copies them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};

use serde_json::Value;

use common::ok;

/// A running `agentstore serve`. Dropping it kills the process, so that a failing
/// assertion does not leave a server behind.
struct Server {
    child: Option<Child>,
    base: String,
    log: PathBuf,
}

impl Server {
    fn start(data: &Path, log: PathBuf) -> Server {
        let (child, base) = common::serve(data, &["--preset", "test"], &log);
        Server {
            child: Some(child),
            base,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server the way an operator does, and returns how it exited.
    fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        common::sigterm(&child);
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
    common::run_python(
        &examples_dir().join("python/quickstart.py"),
        &[
            ("AGENTSTORE_URL", server.base.as_str()),
            ("AGENTSTORE_API_KEY", secret),
        ],
        &server.log(),
    )
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
