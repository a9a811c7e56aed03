//! Number and cell formatting shared by the foundation and PostgreSQL reports, so both
//! tables print rates the same way.

use std::fmt::Write as _;

use crate::workloads::Cell;

/// An integer with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Thousands separators for rates, a few significant digits for small values.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 100.0 {
        thousands(v.round() as u64)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A cell as `value unit (note)`, or `n/a (error: ...)` with the first line of the error.
pub fn cell_text(c: &Result<Cell, String>, unit: &str) -> String {
    match c {
        Ok(c) => {
            let mut s = format!("{} {unit}", num(c.value));
            if let Some(n) = &c.note {
                let _ = write!(s, " ({n})");
            }
            s
        }
        Err(e) => {
            let first = e.lines().next().unwrap_or("");
            let short: String = first.chars().take(90).collect();
            format!("n/a (error: {})", short.replace('|', "/"))
        }
    }
}
