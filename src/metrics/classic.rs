//! The classic Prometheus text format, from the OpenMetrics text the
//! registry encodes: node_exporter's textfile collector, `promtool check
//! metrics` and scrapers that do not ask for OpenMetrics read this one.

/// OpenMetrics text to the classic Prometheus text format. The two differ in
/// three ways that matter here: a counter family is named without `_total`
/// in OpenMetrics' HELP and TYPE lines but with it in the classic format,
/// OpenMetrics may carry UNIT lines, and it ends with `# EOF`.
pub fn to_classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}
