//! Where a benchmark ran: the machine, the build and the commit, for the report header.
//! Shared by the benchmark binaries so every report states its provenance the same way.

use std::path::{Path, PathBuf};

/// The workspace this binary was built from (the bench crate sits two levels down).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// A command's trimmed stdout, if it ran and succeeded.
pub fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A file's text, or empty when it cannot be read (not every system has /proc).
pub fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Logical CPUs available to this process.
pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The short commit of the workspace, marked when the tree has uncommitted changes.
pub fn commit() -> String {
    let ws = workspace_root().to_string_lossy().into_owned();
    command_output("git", &["-C", &ws, "rev-parse", "--short", "HEAD"]).map_or_else(
        || "unknown".into(),
        |c| {
            let dirty = command_output("git", &["-C", &ws, "status", "--porcelain"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} with uncommitted changes")
            } else {
                c
            }
        },
    )
}

/// `rustc --version`.
pub fn rustc() -> String {
    command_output("rustc", &["--version"]).unwrap_or_else(|| "unknown".into())
}

/// An argument as a POSIX shell word, quoted only when it needs to be.
pub fn shell_word(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}
