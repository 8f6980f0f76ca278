//! `beacon tail` and `beacon query`: read the store without another tool. Both open the
//! database read-only.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use serde_json::Value;

use crate::store::open_reader;

fn attr_text(v: &Value) -> String {
    match v {
        Value::String(s)
            if !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') =>
        {
            s.clone()
        }
        other => other.to_string(),
    }
}

/// One readable line for a stored event:
/// `2026-11-22T02:19:30.123Z behavioral deploy-start env=prod n=3`.
pub fn format_event(time: &str, ty: &str, name: &str, data: &str) -> String {
    let mut line = format!("{time} {ty} {name}");
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(data) {
        for (k, v) in m.iter().filter(|(k, _)| !k.starts_with("event_")) {
            line.push(' ');
            line.push_str(k);
            line.push('=');
            line.push_str(&attr_text(v));
        }
    }
    line
}

/// Options of `beacon tail`.
#[derive(Debug, Clone)]
pub struct TailOptions {
    /// Stored events to print first (the latest ones).
    pub last: usize,
    /// Keep printing new events as they are stored.
    pub follow: bool,
    /// Only this `event_type`.
    pub event_type: Option<String>,
    /// How often to look for new events.
    pub poll: Duration,
}

/// Prints the last events, then (with `follow`) every new one, until the output is closed.
pub fn tail(db: &Path, opts: &TailOptions, out: &mut impl Write) -> Result<(), String> {
    let conn = open_reader(db)?;
    let filter = opts.event_type.as_deref().unwrap_or("");
    let newest: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    // Start just before the `last` newest matching events.
    let mut last_seq: i64 = if opts.last > 0 {
        conn.query_row(
            "SELECT coalesce(min(seq) - 1, ?3) FROM
               (SELECT seq FROM events WHERE (?1 = '' OR event_type = ?1)
                ORDER BY seq DESC LIMIT ?2)",
            rusqlite::params![filter, opts.last as i64, newest],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?
    } else {
        newest
    };
    let mut stmt = conn
        .prepare(
            "SELECT seq, event_time, event_type, event_name, data FROM events
             WHERE seq > ?1 AND (?2 = '' OR event_type = ?2) ORDER BY seq LIMIT 1000",
        )
        .map_err(|e| e.to_string())?;
    loop {
        let rows: Vec<(i64, String)> = stmt
            .query_map(rusqlite::params![last_seq, filter], |r| {
                let seq: i64 = r.get(0)?;
                let line = format_event(
                    &r.get::<_, String>(1)?,
                    &r.get::<_, String>(2)?,
                    &r.get::<_, String>(3)?,
                    &r.get::<_, String>(4)?,
                );
                Ok((seq, line))
            })
            .and_then(|it| it.collect())
            .map_err(|e| e.to_string())?;
        for (seq, line) in &rows {
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // the reader went away (e.g. `| head`)
            }
            last_seq = *seq;
        }
        if out.flush().is_err() {
            return Ok(());
        }
        if rows.len() == 1000 {
            continue;
        }
        if !opts.follow {
            return Ok(());
        }
        std::thread::sleep(opts.poll);
    }
}

fn cell(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(format!("<blob {} bytes>", b.len())),
    }
}

/// Longest cell in the table view, in characters (`--json` prints everything).
pub const MAX_CELL_CHARS: usize = 80;

fn cell_text(v: &Value) -> String {
    let s = match v {
        Value::Null => "NULL".to_owned(),
        Value::String(s) => s.replace(['\n', '\r', '\t'], " "),
        other => other.to_string(),
    };
    if s.chars().count() > MAX_CELL_CHARS {
        let mut t: String = s.chars().take(MAX_CELL_CHARS - 1).collect();
        t.push('…');
        t
    } else {
        s
    }
}

/// Runs one read-only SQL statement and prints the result as a table, or as a JSON array of
/// objects with `json`. Statements that would write are refused with a clear message.
pub fn query(db: &Path, sql: &str, json: bool, out: &mut impl Write) -> Result<(), String> {
    let conn = open_reader(db)?;
    let mut stmt = conn.prepare(sql).map_err(|e| format!("SQL error: {e}"))?;
    if !stmt.readonly() {
        return Err(
            "only read-only statements are allowed (SELECT, WITH … SELECT, EXPLAIN); the store is written by `beacon serve` alone"
                .into(),
        );
    }
    let cols: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let mut q = stmt.query([]).map_err(|e| format!("SQL error: {e}"))?;
    while let Some(r) = q.next().map_err(|e| format!("SQL error: {e}"))? {
        rows.push(
            (0..cols.len())
                .map(|i| r.get_ref(i).map(cell).unwrap_or(Value::Null))
                .collect(),
        );
    }
    let w = |e: std::io::Error| format!("cannot write the output: {e}");
    if json {
        let arr: Vec<Value> = rows
            .into_iter()
            .map(|r| Value::Object(cols.iter().cloned().zip(r).collect()))
            .collect();
        writeln!(out, "{}", Value::Array(arr)).map_err(w)?;
        return Ok(());
    }
    let texts: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(cell_text).collect())
        .collect();
    let mut widths: Vec<usize> = cols.iter().map(|c| c.chars().count()).collect();
    for r in &texts {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str(" | ");
            }
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        s
    };
    writeln!(out, "{}", line(&cols)).map_err(w)?;
    let sep: Vec<String> = widths.iter().map(|n| "-".repeat(*n)).collect();
    writeln!(out, "{}", line(&sep).replace(" | ", "-+-")).map_err(w)?;
    for r in &texts {
        writeln!(out, "{}", line(r)).map_err(w)?;
    }
    let n = texts.len();
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" }).map_err(w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_are_readable() {
        let data = r#"{"event_id":"1","event_time":"t","event_type":"behavioral","event_name":"deploy","env":"prod","n":3,"msg":"two words"}"#;
        let line = format_event("2026-01-01T00:00:00.000Z", "behavioral", "deploy", data);
        assert!(
            line.starts_with("2026-01-01T00:00:00.000Z behavioral deploy "),
            "{line}"
        );
        // Attribute order follows the JSON map (sorted unless serde_json keeps insertion order).
        for part in [" env=prod", " n=3", " msg=\"two words\""] {
            assert!(line.contains(part), "{line} lacks {part}");
        }
        assert!(!line.contains("event_id"), "{line}");
    }
}
