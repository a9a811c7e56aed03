//! `agentstore-bench`: the foundation benchmark. Each workload runs through agentstore's
//! public `Store` API and, in the same run, as a bare rusqlite loop doing the same inserts
//! or reads on a table of the same shape with the same pragmas (the ceiling). The table
//! goes to stdout and, with the machine and the command that reproduces it, to
//! `bench/results/foundation.md`. See bench/README.md for what each row measures.
//!
//! Usage: `agentstore-bench [--smoke] [--scale N] [--repeat N] [--only SUBSTRING] [--out PATH]
//! [--data-dir DIR]`

mod bare;
mod provenance;
mod report;
mod workloads;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agentstore_sqlite::Durability;
use anyhow::{Context, Result, bail};
use provenance::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use report::{cell_text, num, thousands};
use workloads::{Cell, READ_THREADS, SEED, Sizes, measure, median};

/// Quoted by reference 002: "Content storage: 500-1000 ops/sec", "Content retrieval:
/// 2000-5000 ops/sec". The multiples are against the top of each range.
const REFERENCE_WRITES: f64 = 1_000.0;
const REFERENCE_READS: f64 = 5_000.0;
const USAGE: &str = "usage: agentstore-bench [--smoke] [--scale N] [--repeat N] [--only SUBSTRING]
                        [--out PATH] [--data-dir DIR] [--encrypted]

  --smoke         tiny sizes, a check that every workload runs; writes to a temp file
  --scale N       multiply operation counts, time caps and the backup size by N (default 1)
  --repeat N      run each side N times, alternating, and report the median
                  (default 3; 1 with --smoke)
  --only SUBSTRING
                  run only the rows whose workload name contains SUBSTRING
                  (case-sensitive); the report is then written only if --out is given
  --out PATH      where to write the markdown report
                  (default bench/results/foundation.md; with --smoke a temp file)
  --data-dir DIR  where the stores are created (default: the system temp dir); the
                  file system decides what an fsync costs
  --encrypted     field encryption on, every record a subject's (sealed text); the
                  report defaults to bench/results/foundation-encrypted.md";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Write,
    Read,
    Backup,
}

struct Row {
    workload: String,
    sync: &'static str,
    unit: &'static str,
    kind: Kind,
    /// Minimum agentstore ÷ bare the issue sets for this row.
    target_ratio: Option<f64>,
    ours: Result<Cell, String>,
    bare: Result<Cell, String>,
}

impl Row {
    /// agentstore's speed as a fraction of the bare loop's.
    fn ratio(&self) -> Option<f64> {
        let (Ok(o), Ok(b)) = (&self.ours, &self.bare) else {
            return None;
        };
        Some(match self.kind {
            Kind::Backup => b.value / o.value,
            Kind::Write | Kind::Read => o.value / b.value,
        })
    }

    fn vs_reference(&self) -> Option<f64> {
        let o = self.ours.as_ref().ok()?;
        match self.kind {
            Kind::Write => Some(o.value / REFERENCE_WRITES),
            Kind::Read => Some(o.value / REFERENCE_READS),
            Kind::Backup => None,
        }
    }
}

fn sync_name(d: Durability) -> &'static str {
    match d {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

struct Args {
    smoke: bool,
    scale: f64,
    repeat: Option<usize>,
    only: Option<String>,
    out: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    encrypted: bool,
    raw: Vec<String>,
}

fn parse_args() -> Result<Option<Args>> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut a = Args {
        smoke: false,
        scale: 1.0,
        repeat: None,
        only: None,
        out: None,
        data_dir: None,
        encrypted: false,
        raw: raw.clone(),
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--smoke" => a.smoke = true,
            "--encrypted" => a.encrypted = true,
            "--scale" => {
                let v = value()?;
                a.scale = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .with_context(|| format!("--scale must be a positive number: {v}"))?;
            }
            "--repeat" => {
                let v = value()?;
                a.repeat = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| *n > 0)
                        .with_context(|| format!("--repeat must be a positive integer: {v}"))?,
                );
            }
            "--only" => a.only = Some(value()?),
            "--out" => a.out = Some(value()?.into()),
            "--data-dir" => a.data_dir = Some(value()?.into()),
            "-h" | "--help" => return Ok(None),
            other => bail!("unknown argument {other}"),
        }
    }
    if a.smoke && a.scale != 1.0 {
        bail!("--scale has no effect with --smoke");
    }
    Ok(Some(a))
}

/// Where and how often each side of a row runs.
struct Runner<'a> {
    root: &'a Path,
    repeat: usize,
}

impl Runner<'_> {
    /// Runs agentstore and the bare loop alternately `repeat` times and keeps each side's
    /// median: other load on the machine then hits both sides alike rather than whichever
    /// ran during it. A side stops at its first failure and reports it.
    fn pair(
        &self,
        mut ours: impl FnMut(&Path) -> Result<Cell>,
        mut bare: impl FnMut(&Path) -> Result<Cell>,
    ) -> (Result<Cell, String>, Result<Cell, String>) {
        let mut o: Result<Vec<Cell>, String> = Ok(Vec::new());
        let mut b: Result<Vec<Cell>, String> = Ok(Vec::new());
        for _ in 0..self.repeat.max(1) {
            if let Ok(v) = &mut o {
                match measure(self.root, "agentstore", &mut ours) {
                    Ok(c) => v.push(c),
                    Err(e) => o = Err(e),
                }
            }
            if let Ok(v) = &mut b {
                match measure(self.root, "bare rusqlite", &mut bare) {
                    Ok(c) => v.push(c),
                    Err(e) => b = Err(e),
                }
            }
        }
        (o.map(median), b.map(median))
    }
}

/// Runs every workload whose name contains `only` (all without it). Returns the rows and
/// the names of the workloads left out.
fn run(sizes: &Sizes, runner: &Runner<'_>, only: Option<&str>) -> (Vec<Row>, Vec<String>) {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut wanted = |name: &str| {
        let yes = only.is_none_or(|o| name.contains(o));
        if !yes && !skipped.iter().any(|s| s == name) {
            skipped.push(name.to_owned());
        }
        yes
    };
    let rng = |k: u64| StdRng::seed_from_u64(SEED + k);
    let durabilities = [Durability::Full, Durability::Normal];

    let appends = [
        ("event append, single (1 per txn)", 1, sizes.single, None),
        (
            "event append, batched (1,000 per txn)",
            1000,
            sizes.batched,
            Some(0.5),
        ),
    ];
    for (name, batch, iters, target_ratio) in appends {
        if !wanted(name) {
            continue;
        }
        for d in durabilities {
            eprintln!("{name}, synchronous={}", sync_name(d));
            let (ours, bare) = runner.pair(
                |p| workloads::event_append(p, d, batch, iters, sizes),
                |p| bare::event_append(p, d, batch, iters, sizes),
            );
            rows.push(Row {
                workload: name.into(),
                sync: sync_name(d),
                unit: "events/s",
                kind: Kind::Write,
                target_ratio,
                ours,
                bare,
            });
        }
    }

    let upserts = [
        (
            "memory upsert by key, single (remember)",
            1,
            sizes.memory_single,
        ),
        (
            "memory upsert by key, batched (remember_many of 100)",
            100,
            sizes.memory_batched,
        ),
    ];
    for (k, (name, batch, iters)) in (1..).zip(upserts) {
        if !wanted(name) {
            continue;
        }
        for d in durabilities {
            eprintln!("{name}, synchronous={}", sync_name(d));
            // Both sides draw the same keys.
            let (ours, bare) = runner.pair(
                |p| workloads::memory_upsert(p, d, batch, iters, sizes, &mut rng(k)),
                |p| bare::memory_upsert(p, d, batch, iters, sizes, &mut rng(k)),
            );
            rows.push(Row {
                workload: name.into(),
                sync: sync_name(d),
                unit: "upserts/s",
                kind: Kind::Write,
                target_ratio: None,
                ours,
                bare,
            });
        }
    }

    let pool = thousands((sizes.read_pool.div_ceil(1000) * 1000) as u64);
    let name = format!("point read: get_event by random id ({pool} events)");
    if wanted(&name) {
        eprintln!("point reads");
        let (ours, bare) = runner.pair(
            |p| workloads::point_reads(p, sizes, &mut rng(10)),
            |p| bare::point_reads(p, sizes, &mut rng(10)),
        );
        rows.push(Row {
            workload: name,
            sync: "—",
            unit: "reads/s",
            kind: Kind::Read,
            target_ratio: None,
            ours,
            bare,
        });
    }

    let name =
        format!("point read, {READ_THREADS} threads: get_event by random id ({pool} events)");
    if wanted(&name) {
        eprintln!("point reads, {READ_THREADS} threads");
        let (ours, bare) = runner.pair(
            |p| workloads::point_reads_threaded(p, sizes, READ_THREADS, &mut rng(11)),
            |p| bare::point_reads_threaded(p, sizes, READ_THREADS, &mut rng(11)),
        );
        rows.push(Row {
            workload: name,
            sync: "—",
            unit: "reads/s",
            kind: Kind::Read,
            target_ratio: None,
            ours,
            bare,
        });
    }

    let name = format!(
        "list a session's events, pages of 100 ({} events)",
        thousands((sizes.list_session.div_ceil(1000) * 1000) as u64)
    );
    if wanted(&name) {
        eprintln!("list a session");
        let (ours, bare) = runner.pair(
            |p| workloads::list_session(p, sizes),
            |p| bare::list_session(p, sizes),
        );
        rows.push(Row {
            workload: name,
            sync: "—",
            unit: "events/s",
            kind: Kind::Read,
            target_ratio: None,
            ours,
            bare,
        });
    }

    let name = format!("backup (store of ≥ {} MiB)", sizes.backup_bytes >> 20);
    if wanted(&name) {
        eprintln!("backup");
        // The bare database is grown to the size agentstore's reached.
        let built = std::cell::Cell::new(sizes.backup_bytes);
        let (ours, bare) = runner.pair(
            |p| {
                workloads::backup(p, sizes).map(|(cell, size)| {
                    built.set(size);
                    cell
                })
            },
            |p| bare::backup(p, sizes, built.get()),
        );
        rows.push(Row {
            workload: name,
            sync: "—",
            unit: "s/GB",
            kind: Kind::Backup,
            target_ratio: None,
            ours,
            bare,
        });
    }
    (rows, skipped)
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| workload | synchronous | agentstore | bare rusqlite (ceiling) | agentstore ÷ bare | vs reference |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let ratio = r
            .ratio()
            .map_or("—".into(), |x| format!("{:.0}%", x * 100.0));
        let vs = r
            .vs_reference()
            .map_or("—".into(), |x| format!("{}×", num(x)));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.sync,
            cell_text(&r.ours, r.unit),
            cell_text(&r.bare, r.unit),
            ratio,
            vs
        );
    }
    t
}

fn targets(rows: &[Row]) -> String {
    let mut t = String::new();
    for r in rows {
        if let Some(min) = r.target_ratio {
            let line = match r.ratio() {
                Some(x) => format!(
                    "{:.0}% of the bare loop (target ≥ {:.0}%): {}",
                    x * 100.0,
                    min * 100.0,
                    if x >= min { "met" } else { "NOT met" }
                ),
                None => "not measured".into(),
            };
            let _ = writeln!(t, "- {}, synchronous={}: {line}", r.workload, r.sync);
        }
    }
    let (mut met, mut missed) = (Vec::new(), Vec::new());
    for r in rows {
        if let Some(x) = r.vs_reference() {
            let name = format!("{} ({}, {}×)", r.workload, r.sync, num(x));
            if x >= 100.0 { &mut met } else { &mut missed }.push(name);
        }
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".into()
        } else {
            v.join("; ")
        }
    };
    let _ = writeln!(
        t,
        "- ≥ 100× reference 002's 1,000 writes/s and 5,000 reads/s: met by {}\n\
         - below 100× the reference: {}",
        list(&met),
        list(&missed)
    );
    t
}

fn machine(data_root: &Path) -> String {
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or_else(
            || "unknown".into(),
            |kb| format!("{:.1} GiB", kb as f64 / 1_048_576.0),
        );
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let profile = if cfg!(debug_assertions) {
        "debug (numbers not meaningful)"
    } else {
        "release"
    };
    format!(
        "- date: {}\n- machine: {nproc} CPUs ({cpu}), {mem} RAM, Linux {kernel}\n\
         - stores in: {}\n- build: {profile}, {rustc}\n- commit: {commit}\n- SQLite: {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        data_root.display(),
        rusqlite::version(),
        nproc = nproc(),
        cpu = cpu_model(),
        rustc = rustc(),
        commit = commit(),
    )
}

fn report(args: &Args, sizes: &Sizes, runner: &Runner<'_>, rows: &[Row], took: Duration) -> String {
    let mut cmd = String::from(if cfg!(debug_assertions) {
        "cargo run -p agentstore-bench"
    } else {
        "cargo run --release -p agentstore-bench"
    });
    if !args.raw.is_empty() {
        cmd.push_str(" -- ");
        let quoted: Vec<String> = args.raw.iter().map(|a| shell_word(a)).collect();
        cmd.push_str(&quoted.join(" "));
    }
    format!(
        "# Foundation benchmark\n\n\
         Reproduce with:\n\n```sh\n{cmd}\n```\n\n\
         {}\n\
         Sizes: {} single appends, {} batches of 1,000 events, {} single and {} batches of 100 \
         memory upserts, {} point reads (per row; split over {READ_THREADS} threads in the \
         {READ_THREADS}-thread row), {} passes over the listed session; each measurement \
         stops early after {:.0} s. Each side ran {} time(s), alternating with the other; \
         the table shows the median. Total run time {:.0} s.{}\n\n\
         {}\n## Targets\n\n{}\n\
         Ratios are agentstore's speed as a share of the bare loop's (for the backup, the bare \
         loop's seconds per GB over agentstore's). \"vs reference\" divides agentstore's rate \
         by the top of the range reference 002 quotes (1,000 writes/s, 5,000 reads/s). \
         bench/README.md explains each row.\n",
        machine(runner.root),
        thousands(sizes.single as u64),
        thousands(sizes.batched as u64),
        thousands(sizes.memory_single as u64),
        thousands(sizes.memory_batched as u64),
        thousands(sizes.reads as u64),
        thousands(sizes.list_passes as u64),
        sizes.cap.as_secs_f64(),
        runner.repeat,
        took.as_secs_f64(),
        if sizes.encrypted {
            "\n\nField encryption on (`--encrypted`): agentstore's store has a master key and \
             every session and memory belongs to a subject, so each event's and memory's text \
             is sealed with AES-256-GCM under the subject's data key. The bare loop stores \
             clear text as always."
        } else {
            ""
        },
        table(rows),
        targets(rows),
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("agentstore-bench: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut sizes = if args.smoke {
        Sizes::smoke()
    } else {
        Sizes::full(args.scale)
    };
    sizes.encrypted = args.encrypted;
    let data_root = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    if let Err(e) = std::fs::create_dir_all(&data_root) {
        eprintln!(
            "agentstore-bench: cannot create {}: {e}",
            data_root.display()
        );
        return ExitCode::FAILURE;
    }
    // A partial table (--only) goes only where it was asked to go, so it never replaces
    // the full report.
    let out = match (&args.out, &args.only) {
        (Some(out), _) => Some(out.clone()),
        (None, Some(_)) => None,
        (None, None) if args.smoke => Some(
            std::env::temp_dir().join(format!("agentstore-bench-smoke-{}.md", std::process::id())),
        ),
        (None, None) if args.encrypted => {
            Some(workspace_root().join("bench/results/foundation-encrypted.md"))
        }
        (None, None) => Some(workspace_root().join("bench/results/foundation.md")),
    };

    let started = Instant::now();
    let runner = Runner {
        root: &data_root,
        // One pass checks that the workloads run; three give a median for the report.
        repeat: args.repeat.unwrap_or(if args.smoke { 1 } else { 3 }),
    };
    let (rows, skipped) = run(&sizes, &runner, args.only.as_deref());
    if rows.is_empty() {
        eprintln!(
            "agentstore-bench: no workload name contains {:?}; the workloads are:\n  {}",
            args.only.as_deref().unwrap_or_default(),
            skipped.join("\n  ")
        );
        return ExitCode::from(2);
    }
    let text = report(&args, &sizes, &runner, &rows, started.elapsed());
    println!("\n{}", table(&rows));
    print!("{}", targets(&rows));
    match out {
        Some(out) => {
            let written = out
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&out, &text));
            if let Err(e) = written {
                eprintln!("agentstore-bench: cannot write {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            println!("\nwrote {}", out.display());
        }
        None => println!("\nreport not written (--only without --out)"),
    }

    let failed = rows
        .iter()
        .flat_map(|r| [&r.ours, &r.bare])
        .filter(|c| c.is_err())
        .count();
    if failed > 0 {
        eprintln!("agentstore-bench: {failed} measurements failed (shown as n/a)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
