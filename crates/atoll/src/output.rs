//! Printing results: aligned tables for people, JSON for scripts.

use serde::Serialize;

/// Prints `rows` under `headers` as an aligned table, or `value` as JSON.
pub fn print<T: Serialize>(
    json: bool,
    value: &T,
    headers: &[&str],
    rows: Vec<Vec<String>>,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("(none)");
        return Ok(());
    }
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(index, cell)| format!("{cell:<width$}", width = widths[index]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!(
        "{}",
        line(headers.iter().map(|header| header.to_uppercase()).collect())
    );
    for row in rows {
        println!("{}", line(row));
    }
    Ok(())
}

/// Formats Unix milliseconds as `YYYY-MM-DD HH:MM UTC`.
pub fn time(ms: i64) -> String {
    atoll_protocol::time::format_ms(ms)
}
