//! The Prometheus text exposition format (version 0.0.4): one `# HELP` and
//! one `# TYPE` line per family, then its samples, label values escaped.

use std::fmt::Write;

/// The content type of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The text being written.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

/// A label value with `\`, `"` and newlines escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text with `\` and newlines escaped.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `+Inf`/`-Inf`/`NaN` spelled
/// as the format wants.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

impl Exposition {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family (`name` may carry a suffix such as
    /// `_bucket`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", format_value(value));
    }

    /// A histogram's samples from per-bucket counts: `counts[i]` observations
    /// fell at or below `bounds[i]` and above the bound before it;
    /// `counts[bounds.len()]` above the last bound. Buckets are written
    /// cumulative, `+Inf` last, then `_sum` and `_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        let mut cumulative = 0u64;
        for (i, bound) in bounds.iter().enumerate() {
            cumulative += counts.get(i).copied().unwrap_or(0);
            let le = format_value(*bound);
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
        }
        let total: u64 = counts.iter().sum();
        let mut with_le = labels.to_vec();
        with_le.push(("le", "+Inf"));
        self.sample(&format!("{name}_bucket"), &with_le, total as f64);
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, total as f64);
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_are_written_as_the_format_says() {
        let mut e = Exposition::default();
        e.family("x_total", Kind::Counter, "Things.\nMore \\ things.");
        e.sample("x_total", &[], 3.0);
        e.sample("x_total", &[("a", "q\"u\\o\nte"), ("b", "c")], 0.25);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\\nMore \\\\ things.\n# TYPE x_total counter\n\
             x_total 3\nx_total{a=\"q\\\"u\\\\o\\nte\",b=\"c\"} 0.25\n"
        );
    }

    #[test]
    fn special_values_are_spelled_out() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(1e-3), "0.001");
        assert_eq!(format_value(12.0), "12");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut e = Exposition::default();
        e.family("h_seconds", Kind::Histogram, "h");
        e.histogram("h_seconds", &[("d", "x")], &[0.1, 1.0], &[2, 0, 3], 4.5);
        let text = e.finish();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "h_seconds_bucket{d=\"x\",le=\"0.1\"} 2",
                "h_seconds_bucket{d=\"x\",le=\"1\"} 2",
                "h_seconds_bucket{d=\"x\",le=\"+Inf\"} 5",
                "h_seconds_sum{d=\"x\"} 4.5",
                "h_seconds_count{d=\"x\"} 5",
            ]
        );
    }
}
