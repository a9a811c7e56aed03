//! What a command prints: a JSON document for `--json`, readable text otherwise.

use std::io::{self, Write};

use agentstore::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// The result of one command. Commands build both forms and `main` prints one, so
/// `--json` always yields exactly one document.
#[derive(Debug)]
pub struct Outcome {
    /// Machine form; `None` when the command already streamed its output (export to
    /// stdout).
    pub json: Option<Value>,
    /// Human form.
    pub text: String,
    /// False when the command ran but found a problem (a failed verify check).
    pub ok: bool,
}

impl Outcome {
    /// A successful outcome.
    pub fn new(json: impl Serialize, text: String) -> anyhow::Result<Outcome> {
        Ok(Outcome {
            json: Some(serde_json::to_value(json)?),
            text,
            ok: true,
        })
    }

    /// Output was already written to stdout.
    pub fn streamed() -> Outcome {
        Outcome {
            json: None,
            text: String::new(),
            ok: true,
        }
    }

    /// Prints the outcome on stdout.
    pub fn print(&self, json: bool) -> io::Result<()> {
        match (&self.json, json) {
            (Some(v), true) => {
                let mut s = serde_json::to_string_pretty(v).map_err(io::Error::other)?;
                s.push('\n');
                print_stdout(&s)
            }
            (None, true) => Ok(()),
            (_, false) => print_stdout(&self.text),
        }
    }
}

/// Writes to stdout. A reader that went away (`agentstore sessions | head -1`) is not
/// an error of ours, so a broken pipe is swallowed.
pub fn print_stdout(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A plain-text table: columns padded to their widest cell, two spaces apart.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with a header row.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Rows added, without the header.
    pub fn len(&self) -> usize {
        self.rows.len() - 1
    }

    /// Renders with a trailing newline.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A time for tables: UTC to the second.
pub fn time(t: &Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// An optional time, `-` when absent.
pub fn time_opt(t: Option<&Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

/// One line of at most `max` characters: line breaks become spaces, the rest an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        return flat.to_owned();
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An optional string, `-` when absent.
pub fn or_dash(s: Option<&str>) -> String {
    s.unwrap_or("-").to_owned()
}

/// A progress bar on stderr, or a hidden one when stderr is not a terminal (logs, CI)
/// or output is for machines. `len` None gives a spinner.
pub fn progress(json: bool, len: Option<u64>, template: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let target = if json || !io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let style = ProgressStyle::with_template(template).unwrap_or_else(|_| match len {
        Some(_) => ProgressStyle::default_bar(),
        None => ProgressStyle::default_spinner(),
    });
    ProgressBar::with_draw_target(len, target).with_style(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 20), "5.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn tables_align_and_clip_flattens() {
        let mut t = Table::new(&["ID", "KIND", "TITLE"]);
        t.row(vec!["s1".into(), "conversation".into(), "hello".into()]);
        t.row(vec!["session-2".into(), "task".into(), String::new()]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.render(),
            "ID         KIND          TITLE\n\
             s1         conversation  hello\n\
             session-2  task\n"
        );
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
