//! Helpers shared by the tests that run the real `agentstore` binary.

// Each test binary compiles its own copy and uses only some of the helpers.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The binary, isolated from the caller's environment: no `AGENTSTORE_*` variable leaks
/// in, the actor is `tester`, the store is `data` and stdin is empty.
pub fn cli(data: &Path) -> Command {
    let mut c = bare();
    c.arg("--data-dir").arg(data);
    c
}

/// [`cli`] without `--data-dir`: the store comes from elsewhere (a config file).
pub fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agentstore"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("AGENTSTORE_") {
            c.env_remove(var);
        }
    }
    c.env("USER", "tester").stdin(Stdio::null());
    c
}

/// Runs the binary with `args` and waits for it.
pub fn run(data: &Path, args: &[&str]) -> Output {
    cli(data).args(args).output().expect("the binary runs")
}

/// A finished process, for an assertion message: `what`, its status and its output.
pub fn describe(what: &str, o: &Output) -> String {
    format!(
        "{what}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// [`describe`] for a run of the binary with `args`.
pub fn describe_args(args: &[&str], o: &Output) -> String {
    describe(&format!("agentstore {}", args.join(" ")), o)
}

/// Runs a command that must succeed; returns its stdout.
pub fn ok(data: &Path, args: &[&str]) -> String {
    let o = run(data, args);
    assert!(o.status.success(), "{}", describe_args(args, &o));
    String::from_utf8(o.stdout).expect("utf-8 output")
}

/// Runs a command with `--json` that must succeed; returns the parsed document.
pub fn json(data: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(data, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{out}"))
}

/// Runs a command that must fail with `code`; returns (stderr, exit code).
pub fn fails(data: &Path, args: &[&str], code: &str) -> (String, i32) {
    let o = run(data, args);
    assert!(!o.status.success(), "{}", describe_args(args, &o));
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        stderr.starts_with(&format!("error[{code}]: ")),
        "{}",
        describe_args(args, &o)
    );
    (stderr, o.status.code().expect("exit code"))
}

/// Starts `agentstore serve FLAGS` on the store `data`, its log (stderr) going to the
/// file `log`, and waits for the first line of its stdout, `agentstore listening on
/// http://ADDR`. Returns the running server and its base URL, `http://ADDR`.
///
/// The child keeps its stdout pipe, so that the server's last line at exit still has a
/// reader. When the first line is not the expected one, the server is killed and this
/// panics with its log.
pub fn serve(data: &Path, flags: &[&str], log: &Path) -> (Child, String) {
    let mut cmd = cli(data);
    cmd.arg("serve").args(flags);
    spawn_server(cmd, log)
}

/// [`serve`] for a command built by the caller (`agentstore ... serve ...`).
pub fn spawn_server(mut cmd: Command, log: &Path) -> (Child, String) {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        // A file rather than a pipe: nobody reads the log while the test runs, and a full
        // pipe would stall the server.
        .stderr(std::fs::File::create(log).expect("create the server log"))
        .spawn()
        .expect("the binary runs");
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut first = String::new();
    let read = out.read_line(&mut first);
    let base = match (&read, first.trim().strip_prefix("agentstore listening on ")) {
        (Ok(_), Some(base)) => base.to_owned(),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: unexpected first line {first:?} ({read:?})\nserver log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    };
    // Nothing else is written before exit, so the reader holds nothing more.
    child.stdout = Some(out.into_inner());
    (child, base)
}

/// Sends SIGTERM to `child`, as an operator (or a service manager) stopping it does.
pub fn sigterm(child: &Child) {
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success(), "kill -TERM {} failed: {term}", child.id());
}

/// Runs the Python example `script` with `env` and returns the JSON summary it prints as
/// its last line. A failure panics with the script's output and `server_log`.
pub fn run_python(script: &Path, env: &[(&str, &str)], server_log: &str) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        // With optimisation on, Python drops `assert`, and the script would check nothing.
        .env_remove("PYTHONOPTIMIZE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("python3 (3.11 or newer) must be on PATH: {e}"));
    let what = format!("python3 {}\nserver log:\n{server_log}", script.display());
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
