//! The report's Markdown: headings and the pipe tables under them.

/// A pipe table: its header cells and its data rows' cells, trimmed.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

/// A heading and the tables between it and the next heading.
#[derive(Debug)]
pub(crate) struct Section {
    pub(crate) level: usize,
    pub(crate) heading: String,
    pub(crate) tables: Vec<Table>,
}

/// The level and text of a heading line (`## End to end` → 2, `End to end`).
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = &line[level..];
    ((1..=6).contains(&level) && rest.starts_with(' ')).then(|| (level, rest.trim()))
}

fn cells(line: &str) -> Vec<String> {
    let l = line.trim();
    let l = l.strip_prefix('|').unwrap_or(l);
    let l = l.strip_suffix('|').unwrap_or(l);
    l.split('|').map(|c| c.trim().to_string()).collect()
}

/// The `|---|---|` line under a table's header.
fn is_rule(line: &str) -> bool {
    let l = line.trim();
    l.starts_with('|') && l.contains("---") && l.chars().all(|c| "|-: ".contains(c))
}

pub(crate) fn sections(md: &str) -> Vec<Section> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out: Vec<Section> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some((level, text)) = heading(lines[i]) {
            out.push(Section {
                level,
                heading: text.to_string(),
                tables: Vec::new(),
            });
            i += 1;
        } else if lines[i].trim_start().starts_with('|')
            && lines.get(i + 1).is_some_and(|l| is_rule(l))
        {
            let mut table = Table {
                header: cells(lines[i]),
                rows: Vec::new(),
            };
            i += 2;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                table.rows.push(cells(lines[i]));
                i += 1;
            }
            if let Some(s) = out.last_mut() {
                s.tables.push(table);
            }
        } else {
            i += 1;
        }
    }
    out
}
