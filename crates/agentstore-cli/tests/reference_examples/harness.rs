//! Starting a store and a server for one example, and running the example's script.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};

use serde_json::Value;

use crate::common::{self, ok};

/// A store in a temporary directory with an API key.
pub struct Store {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    /// The secret of a key with the given scopes.
    pub secret: String,
}

impl Store {
    /// `agentstore init` plus `keys create --scopes SCOPES`, with `extra` global flags
    /// (e.g. a master key) on both.
    pub fn init(scopes: &str, extra: &[&str]) -> Store {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("store");
        let mut args: Vec<&str> = extra.to_vec();
        args.push("init");
        ok(&data, &args);
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["--json", "keys", "create", "--scopes", scopes]);
        let created: Value =
            serde_json::from_str(&ok(&data, &args)).expect("keys create prints JSON");
        let secret = created["secret"].as_str().expect("a secret").to_owned();
        Store { dir, data, secret }
    }
}

/// A running `agentstore serve`. Dropping it kills the process, so that a failing
/// assertion does not leave a server behind.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    log: PathBuf,
}

impl Server {
    /// `agentstore [global flags] serve --preset test [serve flags]` with extra environment.
    pub fn start(store: &Store, global: &[&str], serve: &[&str], env: &[(&str, &str)]) -> Server {
        let log = store
            .dir
            .path()
            .join(format!("serve-{}.log", std::process::id()));
        let mut cmd = common::cli(&store.data);
        cmd.args(global)
            .arg("serve")
            .args(["--preset", "test"])
            .args(serve);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let (child, base) = common::spawn_server(cmd, &log);
        Server {
            child: Some(child),
            base,
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the server the way an operator does, and returns how it exited.
    pub fn stop(mut self) -> ExitStatus {
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

/// all-MiniLM-L6-v2 from `$AGENTSTORE_MODEL_DIR` or `.models/`, where
/// `scripts/fetch-model.sh` (run by `scripts/test.sh` before the tests) puts it.
pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("AGENTSTORE_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").is_file(),
        "all-MiniLM-L6-v2 not found in {}: run scripts/fetch-model.sh first",
        dir.display()
    );
    dir
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/reference")
}

/// Runs `examples/reference/<dir>/example.py` against `server` and returns the JSON
/// summary it prints as its last line. The script gets AGENTSTORE_URL,
/// AGENTSTORE_API_KEY, AGENTSTORE_BIN (this build's CLI), AGENTSTORE_DATA_DIR and `env`.
pub fn run_example(dir: &str, server: &Server, store: &Store, env: &[(&str, &str)]) -> Value {
    let data = store.data.to_str().expect("a UTF-8 data directory");
    let mut all = vec![
        ("AGENTSTORE_URL", server.base.as_str()),
        ("AGENTSTORE_API_KEY", store.secret.as_str()),
        ("AGENTSTORE_BIN", env!("CARGO_BIN_EXE_agentstore")),
        ("AGENTSTORE_DATA_DIR", data),
    ];
    all.extend_from_slice(env);
    common::run_python(
        &examples_dir().join(dir).join("example.py"),
        &all,
        &server.log(),
    )
}
