//! `import` and `export` of JSON Lines, with a progress bar on stderr.

use std::io::{self, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use agentstore::Store;
use agentstore_sqlite::DataDir;
use anyhow::Context;
use indicatif::ProgressBar;
use serde_json::json;

use super::open;
use crate::config::{Config, Input};
use crate::output::{Outcome, Table};

fn progress(cfg: &Config, len: Option<u64>, template: &str) -> ProgressBar {
    crate::output::progress(cfg.json, len, template)
}

pub fn import(cfg: &Config, input: &Input) -> anyhow::Result<Outcome> {
    let (reader, len, source): (Box<dyn Read>, Option<u64>, String) = match input {
        Input::Stdin => (Box::new(io::stdin().lock()), None, "stdin".into()),
        Input::File(path) => {
            let f = fs_err::File::open(path)?;
            let len = f.metadata()?.len();
            (Box::new(f), Some(len), path.display().to_string())
        }
    };
    // Import is how an export becomes a store again, so it creates the store when the
    // data directory has none; the records bring their own tenants.
    let dir_existed = cfg.database_url.is_some() || cfg.data_dir.exists();
    let create = cfg.database_url.is_some() || !DataDir::new(&cfg.data_dir).db_path().exists();
    let store = super::open_store(cfg, create)?;

    let bar = progress(
        cfg,
        len,
        if len.is_some() {
            "{spinner} importing [{bar:40}] {bytes}/{total_bytes} {msg}"
        } else {
            "{spinner} importing {bytes} {msg}"
        },
    );
    let mut buffered = BufReader::new(bar.wrap_read(reader));
    let result = store.import_jsonl(&cfg.scope(), &mut buffered, &mut |line| {
        bar.set_message(format!("line {line}"));
    });
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            drop(store);
            if !dir_existed {
                // We created this directory a moment ago for the import; leave nothing
                // behind when the import is rejected. The import error is what matters,
                // so a failed clean-up is not reported over it.
                let _ = fs_err::remove_dir_all(&cfg.data_dir);
            }
            return Err(e.into());
        }
    };

    let total: u64 = report.counts.values().sum();
    let mut t = Table::new(&["TYPE", "RECORDS"]);
    for (ty, n) in &report.counts {
        t.row(vec![ty.clone(), n.to_string()]);
    }
    let text = format!(
        "imported {total} records from {source} ({} lines){}\n\n{}",
        report.lines,
        if create && cfg.database_url.is_none() {
            format!(" into a new store at {}", cfg.data_dir.display())
        } else {
            String::new()
        },
        t.render()
    );
    Outcome::new(
        json!({
            "source": source,
            "created_store": create,
            "records": total,
            "lines": report.lines,
            "counts": report.counts,
        }),
        text,
    )
}

pub fn export(cfg: &Config, out: Option<&Path>) -> anyhow::Result<Outcome> {
    let store = open(cfg)?;
    match out {
        Some(path) => export_file(cfg, &store, path),
        None => {
            let mut sink = StdoutSink {
                out: BufWriter::new(io::stdout().lock()),
                reader_gone: false,
            };
            match run_export(cfg, &store, &mut sink) {
                Ok(_) => Ok(Outcome::streamed()),
                // `agentstore export | head` closed the pipe: the reader got what it
                // wanted, which is not a failure.
                Err(_) if sink.reader_gone => Ok(Outcome::streamed()),
                Err(e) => Err(e),
            }
        }
    }
}

/// Writes to `FILE.partial` and renames on success, so FILE is never half-written.
fn export_file(cfg: &Config, store: &Store, path: &Path) -> anyhow::Result<Outcome> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let written = (|| {
        let mut w = BufWriter::new(fs_err::File::create(&partial)?);
        let n = run_export(cfg, store, &mut w)?;
        w.into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()
            .with_context(|| format!("syncing {}", partial.display()))?;
        fs_err::rename(&partial, path)?;
        anyhow::Ok(n)
    })();
    let records = match written {
        Ok(n) => n,
        Err(e) => {
            // The partial file is useless, and the export error is what the user needs
            // to see, so a failed removal is not reported over it.
            let _ = fs_err::remove_file(&partial);
            return Err(e);
        }
    };
    Outcome::new(
        json!({ "out": path, "records": records }),
        format!("exported {records} records to {}\n", path.display()),
    )
}

fn run_export(cfg: &Config, store: &Store, out: &mut dyn Write) -> anyhow::Result<u64> {
    let visible = !cfg.json && io::stderr().is_terminal();
    // The total is only for the bar's length, so when the bar is hidden (or stats are
    // unavailable) a spinner with a count does as well.
    let total = if visible {
        store
            .stats()
            .ok()
            .map(|s| s.entities.iter().map(|e| e.rows).sum::<u64>())
    } else {
        None
    };
    let bar = progress(
        cfg,
        total,
        if total.is_some() {
            "{spinner} exporting [{bar:40}] {pos}/{len} records"
        } else {
            "{spinner} exporting {pos} records"
        },
    );
    let result = store.export_jsonl(out, &mut |n| bar.set_position(n));
    bar.finish_and_clear();
    Ok(result?)
}

/// Where a store lives, as `copy` names it.
enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

fn location(field: &str, s: &str) -> agentstore::Result<Location> {
    if let Some(dir) = s.strip_prefix("sqlite:") {
        if dir.is_empty() {
            return Err(agentstore::Error::invalid(
                field,
                "sqlite: needs a directory",
            ));
        }
        return Ok(Location::Sqlite(PathBuf::from(dir)));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(Location::Postgres(s.to_owned()));
    }
    Err(agentstore::Error::invalid(
        field,
        "a location is sqlite:DIR or a postgres:// URL",
    ))
}

fn open_location(loc: &Location, create: bool) -> agentstore::Result<Store> {
    match loc {
        Location::Sqlite(dir) => {
            let o = agentstore_sqlite::OpenOptions::new(dir);
            agentstore_sqlite::open(&if create { o.create() } else { o })
        }
        Location::Postgres(url) => {
            let o = agentstore_postgres::PgOptions::new(url.clone());
            agentstore_postgres::open(&if create { o.create() } else { o })
        }
    }
}

/// `agentstore copy --from A --to B`: every record and vector of A into the new, empty
/// store B, then both read again and compared (see `agentstore::copy`).
pub fn copy(cfg: &Config, from: &str, to: &str) -> anyhow::Result<Outcome> {
    let (src_loc, dst_loc) = (location("from", from)?, location("to", to)?);
    let src = open_location(&src_loc, false)?;
    let dst = open_location(&dst_loc, true)?;
    let report = agentstore::copy::copy(&src, &dst, &cfg.actor)?;
    let mut t = Table::new(&["records", "count", "sha256"]);
    for (k, d) in &report.records {
        t.row(vec![
            k.clone(),
            d.count.to_string(),
            d.sha256[..16].to_owned(),
        ]);
    }
    for (k, d) in &report.vectors {
        t.row(vec![
            format!("vectors of {k}"),
            d.count.to_string(),
            d.sha256[..16].to_owned(),
        ]);
    }
    let text = format!(
        "copied and verified: every record type and vector model has the same count and SHA-256 in both stores ({} audit entries added by the copy)\n{}",
        report.audit_entries_added,
        t.render()
    );
    Outcome::new(&report, text)
}

/// Stdout that remembers whether the reader went away.
struct StdoutSink<W: Write> {
    out: W,
    reader_gone: bool,
}

impl<W: Write> StdoutSink<W> {
    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &r
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            self.reader_gone = true;
        }
        r
    }
}

impl<W: Write> Write for StdoutSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.out.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.out.flush();
        self.note(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn sink_notices_a_closed_pipe() {
        let mut ok = StdoutSink {
            out: Vec::new(),
            reader_gone: false,
        };
        ok.write_all(b"x").unwrap();
        assert!(!ok.reader_gone);
        let mut closed = StdoutSink {
            out: Closed,
            reader_gone: false,
        };
        assert!(closed.write_all(b"x").is_err());
        assert!(closed.reader_gone);
    }
}
