//! How the study prints a number: three significant digits, no exponent, an interval in
//! brackets. One home, so that the report, `compare` and the tests that read the report
//! back agree on every digit. It formats; it never computes a statistic.

use super::stats::Interval;

/// Formats a value as the report prints it (3 significant digits, no exponent; `–` for
/// a value that is not finite).
pub fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// An estimate with its interval: `12.3 [11.0–13.1]`.
pub fn fmt_ci(i: &Interval) -> String {
    format!("{} [{}–{}]", fmt(i.estimate), fmt(i.lo), fmt(i.hi))
}

/// A ratio with its interval: `1.23× [1.10–1.40]`.
pub fn fmt_ratio(i: &Interval) -> String {
    format!("{}× [{}–{}]", fmt(i.estimate), fmt(i.lo), fmt(i.hi))
}

/// A count: an integer, or one decimal for a half (a median of an even number of counts).
pub fn fmt_count(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Text for a Markdown table cell: a `|` or a line break would end the cell or the row.
pub fn cell_text(s: &str) -> String {
    s.replace('|', "/").replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_with_three_significant_digits() {
        assert_eq!(fmt(1234.4), "1234");
        assert_eq!(fmt(0.12345), "0.123");
        assert_eq!(fmt(f64::NAN), "–");
        let i = Interval {
            estimate: 1.234,
            lo: 1.1,
            hi: 1.4,
        };
        assert_eq!(fmt_ratio(&i), "1.23× [1.10–1.40]");
        assert_eq!(fmt_ci(&i), "1.23 [1.10–1.40]");
        assert_eq!(fmt_count(3.0), "3");
        assert_eq!(fmt_count(3.5), "3.5");
    }

    #[test]
    fn cell_text_cannot_break_a_table() {
        assert_eq!(cell_text("a|b\nc\r"), "a/b c ");
    }
}
