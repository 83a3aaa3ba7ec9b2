//! Charts drawn on the server as SVG: line charts for trends, bar charts for
//! distributions, and a flow diagram for page paths.
//!
//! The console's CSP forbids inline styles and scripts, so charts use SVG
//! presentation attributes and CSS classes only (`series-0`, `bar`, ...), and need
//! no JavaScript. Every label is escaped here; templates insert the result as is.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Escapes text for SVG/HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A short form of a count: 950, 1.2k, 3.4M.
pub fn compact(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if abs >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// A "nice" upper bound for an axis (1, 2, 5 × 10^n).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if max <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

/// One named series of a line chart.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// One value per label.
    pub values: Vec<f64>,
}

/// A line chart over `labels` (e.g. days) with one or more series.
pub fn line_chart(title: &str, labels: &[String], series: &[Series<'_>]) -> String {
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let n = labels.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h * (1.0 - v / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    for step in 0..=4 {
        let value = max * step as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(value) + 4.0,
            compact(value),
            y = y(value),
        );
    }
    let every = (n / 8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every == 0 || i == n - 1 {
            let _ = write!(
                svg,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                HEIGHT - 8.0,
                escape(label)
            );
        }
    }
    for (index, serie) in series.iter().enumerate() {
        let points: Vec<String> = serie
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline class="line series-{index}" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(serie.name)
        );
        for (i, v) in serie.values.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<circle class="dot series-{index}" cx="{:.1}" cy="{:.1}" r="2.5"><title>{} {}: {}</title></circle>"#,
                x(i),
                y(*v),
                escape(serie.name),
                escape(labels.get(i).map(String::as_str).unwrap_or("")),
                compact(*v)
            );
        }
    }
    svg.push_str("</svg>");
    if series.len() > 1 {
        svg.push_str(r#"<div class="legend">"#);
        for (index, serie) in series.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<span class="key series-{index}">{}</span>"#,
                escape(serie.name)
            );
        }
        svg.push_str("</div>");
    }
    svg
}

/// Horizontal bars, one per `(label, value)`, with the value printed.
pub fn bar_chart(title: &str, bars: &[(String, f64)]) -> String {
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1.0);
    let row = 24.0;
    let label_w = 160.0;
    let height = row * bars.len().max(1) as f64 + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart bars" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    let plot_w = WIDTH - label_w - 80.0;
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let w = (plot_w * value / max).max(if *value > 0.0 { 1.0 } else { 0.0 });
        let shown: String = label.chars().take(26).collect();
        let _ = write!(
            svg,
            r#"<text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="bar" x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}"><title>{}: {}</title></rect><text class="value" x="{:.1}" y="{:.1}">{}</text>"#,
            label_w - 8.0,
            y + 15.0,
            escape(&shown),
            y + 3.0,
            row - 8.0,
            escape(label),
            compact(*value),
            label_w + w + 6.0,
            y + 15.0,
            compact(*value)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A flow diagram: columns of pages per step, links as bands as wide as their count.
pub fn flow_chart(title: &str, start: &str, links: &[(u32, String, String, u64)]) -> String {
    let steps = links.iter().map(|l| l.0).max().map_or(1, |s| s + 2) as usize;
    // Pages per column, in order of appearance (links come sorted by count).
    let mut columns: Vec<Vec<(String, u64)>> = vec![Vec::new(); steps];
    columns[0].push((start.to_owned(), 0));
    for (step, from, to, count) in links {
        let step = *step as usize;
        if let Some(entry) = columns[step].iter_mut().find(|(p, _)| p == from) {
            if step == 0 {
                entry.1 += count;
            }
        }
        match columns[step + 1].iter_mut().find(|(p, _)| p == to) {
            Some(entry) => entry.1 += count,
            None => columns[step + 1].push((to.clone(), *count)),
        }
    }
    let total = columns[0][0].1.max(1) as f64;
    let height = 260.0;
    let col_w = (WIDTH - 140.0) / (steps.max(2) - 1) as f64;
    let node_w = 10.0;
    let scale = (height - 40.0) / total;
    let mut positions: Vec<Vec<(String, f64, f64)>> = Vec::new();
    for column in &columns {
        let mut y = 10.0;
        let mut placed = Vec::new();
        for (page, count) in column {
            let h = (*count as f64 * scale).max(2.0);
            placed.push((page.clone(), y, h));
            y += h + 8.0;
        }
        positions.push(placed);
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart flow" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    let mut out_offset: Vec<Vec<f64>> = positions.iter().map(|c| vec![0.0; c.len()]).collect();
    let mut in_offset: Vec<Vec<f64>> = positions.iter().map(|c| vec![0.0; c.len()]).collect();
    for (step, from, to, count) in links {
        let s = *step as usize;
        let (Some(fi), Some(ti)) = (
            positions[s].iter().position(|(p, _, _)| p == from),
            positions[s + 1].iter().position(|(p, _, _)| p == to),
        ) else {
            continue;
        };
        let band = (*count as f64 * scale).max(1.0);
        let x1 = 20.0 + col_w * s as f64 + node_w;
        let x2 = 20.0 + col_w * (s + 1) as f64;
        let y1 = positions[s][fi].1 + out_offset[s][fi] + band / 2.0;
        let y2 = positions[s + 1][ti].1 + in_offset[s + 1][ti] + band / 2.0;
        out_offset[s][fi] += band;
        in_offset[s + 1][ti] += band;
        let mid = (x1 + x2) / 2.0;
        let class = if to == "(exit)" { "link exit" } else { "link" };
        let _ = write!(
            svg,
            r#"<path class="{class}" d="M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}" stroke-width="{band:.1}"><title>{} → {}: {}</title></path>"#,
            escape(from),
            escape(to),
            count
        );
    }
    for (s, column) in positions.iter().enumerate() {
        let x = 20.0 + col_w * s as f64;
        for (page, y, h) in column {
            let shown: String = page.chars().take(18).collect();
            let _ = write!(
                svg,
                r#"<rect class="node" x="{x:.1}" y="{y:.1}" width="{node_w}" height="{h:.1}"><title>{}</title></rect><text class="axis" x="{:.1}" y="{:.1}">{}</text>"#,
                escape(page),
                x + node_w + 4.0,
                y + h / 2.0 + 4.0,
                escape(&shown)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The heat class (0-9) of a share, for retention cells.
pub fn heat_class(share: f64) -> String {
    format!("heat-{}", ((share * 10.0).floor() as i64).clamp(0, 9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_axes_are_nice() {
        let svg = bar_chart("t", &[("<script>".into(), 3.0)]);
        assert!(svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script>"));
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(1200.0), 2000.0);
        assert_eq!(compact(1234.0), "1.2k");
        assert_eq!(compact(25_000.0), "25k");
        assert_eq!(compact(3_400_000.0), "3.4M");
    }

    #[test]
    fn line_charts_have_one_polyline_per_series() {
        let labels: Vec<String> = (1..=3).map(|d| format!("2026-11-0{d}")).collect();
        let svg = line_chart(
            "DAU",
            &labels,
            &[
                Series {
                    name: "a",
                    values: vec![1.0, 2.0, 3.0],
                },
                Series {
                    name: "b",
                    values: vec![0.0, 1.0, 0.0],
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("legend"));
    }

    #[test]
    fn flows_draw_a_band_per_link() {
        let links = vec![
            (0, "home".to_owned(), "cart".to_owned(), 5),
            (0, "home".to_owned(), "(exit)".to_owned(), 2),
            (1, "cart".to_owned(), "pay".to_owned(), 3),
        ];
        let svg = flow_chart("paths", "home", &links);
        assert_eq!(svg.matches("<path").count(), 3);
        assert_eq!(svg.matches(r#"class="node""#).count(), 4);
    }

    #[test]
    fn heat_classes_cover_zero_to_one() {
        assert_eq!(heat_class(0.0), "heat-0");
        assert_eq!(heat_class(0.55), "heat-5");
        assert_eq!(heat_class(1.0), "heat-9");
    }
}
