//! A dependency-free SVG bar chart of the benchmark report: one group per
//! metric, hull beside its same-run reference, each normalised to the larger
//! of the two so metrics of different units share one axis.

use std::fmt::Write;

use crate::bench::Metric;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(title: &str, metrics: &[Metric]) -> String {
    let row = 46.0;
    let left = 430.0;
    let width = 900.0;
    let bar_w = width - left - 150.0;
    let height = 60.0 + row * metrics.len() as f64 + 30.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let _ = writeln!(
        out,
        r##"<rect x="{left}" y="32" width="12" height="10" fill="#2b6cb0"/><text x="{}" y="41">hull</text><rect x="{}" y="32" width="12" height="10" fill="#a0aec0"/><text x="{}" y="41">reference (same run)</text>"##,
        left + 16.0,
        left + 70.0,
        left + 86.0
    );
    for (i, m) in metrics.iter().enumerate() {
        let y = 56.0 + row * i as f64;
        let max = m
            .reference
            .unwrap_or(0.0)
            .max(m.hull)
            .max(f64::MIN_POSITIVE);
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}">{}</text>"#,
            y + 14.0,
            esc(&m.name)
        );
        let hw = if m.hull.is_finite() {
            bar_w * m.hull / max
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            r##"<rect x="{left}" y="{y}" width="{hw:.1}" height="16" fill="#2b6cb0"/><text x="{:.1}" y="{}">{:.3} {}</text>"##,
            left + hw + 4.0,
            y + 13.0,
            m.hull,
            esc(&m.unit)
        );
        if let Some(r) = m.reference {
            let rw = bar_w * r / max;
            let _ = writeln!(
                out,
                r##"<rect x="{left}" y="{}" width="{rw:.1}" height="14" fill="#a0aec0"/><text x="{:.1}" y="{}">{:.3} {}</text>"##,
                y + 18.0,
                left + rw + 4.0,
                y + 30.0,
                r,
                esc(&m.unit)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_bar_per_value_and_escapes_text() {
        let m = vec![
            Metric {
                name: "a <b>".into(),
                unit: "ms".into(),
                hull: 2.0,
                reference: Some(4.0),
                reference_name: Some("runc".into()),
                note: String::new(),
            },
            Metric {
                name: "c".into(),
                unit: "s".into(),
                hull: 1.0,
                reference: None,
                reference_name: None,
                note: String::new(),
            },
        ];
        let s = svg("t", &m);
        assert_eq!(s.matches("<rect").count(), 1 + 2 + 3);
        assert!(s.contains("a &lt;b&gt;"));
        assert!(s.ends_with("</svg>\n"));
    }
}
