//! The `agentstore` command-line tool.
//!
//! Arguments flow one way, as in ripgrep: clap parses them into [`args::RawArgs`],
//! [`config::Config::resolve`] checks every value and builds library requests, and
//! [`commands::run`] calls the library and returns an [`output::Outcome`] that is printed
//! as text or as one JSON document. `anyhow` is used only in this binary; library errors
//! keep their `agentstore::Error` inside the chain so their stable code can be printed.

mod args;
mod commands;
mod config;
mod output;
mod serve_config;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use serde_json::json;

use crate::args::RawArgs;
use crate::config::Config;

/// Exit code of a run that found a problem or failed on our side.
const EXIT_FAILURE: u8 = 1;
/// Exit code of bad input: a wrong flag, value or id.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let raw = match RawArgs::try_parse() {
        Ok(raw) => raw,
        Err(e) => return usage_error(e),
    };
    let json = raw.json;
    let result = Config::resolve(raw, std::env::var("USER").ok())
        .map_err(anyhow::Error::from)
        .and_then(|cfg| commands::run(&cfg));
    match result.and_then(|out| {
        out.print(json)?;
        Ok(out.ok)
    }) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILURE),
        Err(e) => report(&e, json),
    }
}

/// Prints an error as `error[code]: message` on stderr, or as JSON on stdout.
fn report(err: &anyhow::Error, json: bool) -> ExitCode {
    let store_err = err
        .chain()
        .find_map(|e| e.downcast_ref::<agentstore::Error>());
    let code = match store_err {
        Some(e) => e.code(),
        None if err.chain().any(|e| e.is::<std::io::Error>()) => "io_error",
        None => "error",
    };
    let message = format!("{err:#}");
    if json {
        let doc = json!({ "error": { "code": code, "message": message } });
        // Nothing sensible is left to do if stdout is gone too.
        let _ = output::print_stdout(&format!("{doc:#}\n"));
    } else {
        eprintln!("error[{code}]: {message}");
    }
    if store_err.is_some_and(agentstore::Error::is_client_error) {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// clap's own errors (unknown flag, missing argument) and --help / --version. With
/// `--json` among the arguments, a usage error is reported as JSON like any other.
fn usage_error(e: clap::Error) -> ExitCode {
    let wants_json = std::env::args_os().any(|a| a == "--json");
    let is_error = !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if wants_json && is_error {
        let rendered = e.to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        let doc = json!({ "error": { "code": "usage", "message": message } });
        let _ = output::print_stdout(&format!("{doc:#}\n"));
        return ExitCode::from(EXIT_USAGE);
    }
    // clap prints help and version on stdout with status 0, errors on stderr with 2.
    let _ = e.print();
    if is_error {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}
