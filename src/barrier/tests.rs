//! The barrier layer's own checks: the docs' edge table against the descriptions, the
//! names and the variants.

use super::*;

/// The edge table in this module's docs, as (row label, column header, cell).
fn doc_edge_table() -> Vec<(String, String, String)> {
    let doc = include_str!("mod.rs");
    let rows: Vec<Vec<String>> = doc
        .lines()
        .skip_while(|l| !l.starts_with("//! | edge |"))
        .take_while(|l| l.starts_with("//! |"))
        .map(|l| {
            l.trim_start_matches("//! ")
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let header = &rows[0];
    rows[2..]
        .iter()
        .flat_map(|row| {
            header[1..]
                .iter()
                .zip(&row[1..])
                .map(|(h, c)| (row[0].clone(), h.trim_matches('`').to_string(), c.clone()))
        })
        .collect()
}

#[test]
fn the_edge_table_in_the_docs_is_the_descriptions() {
    let table = doc_edge_table();
    for kind in BarrierKind::ALL.into_iter().filter(|k| k.is_page_level()) {
        let m = kind.mechanism();
        for edge in Edge::ALL {
            let cell = table
                .iter()
                .find(|(row, col, _)| row == edge.label() && col == m.name)
                .map(|(_, _, c)| c.as_str());
            assert_eq!(
                cell,
                m.edge(edge),
                "{}: the docs' cell for {:?} and the description disagree",
                m.name,
                edge
            );
        }
    }
    let page_kinds = BarrierKind::ALL
        .iter()
        .filter(|k| k.is_page_level())
        .count();
    assert_eq!(table.len(), Edge::ALL.len() * page_kinds, "a cell too many");
}

#[test]
fn names_parse_back_and_variants_are_named_uniquely() {
    for kind in BarrierKind::ALL {
        assert_eq!(kind.name().parse::<BarrierKind>().unwrap(), kind);
        assert_eq!(kind.mechanism().kind, kind);
    }
    assert!("soft-dirty".parse::<BarrierKind>().is_err());
    let every = Variant::list(&BarrierKind::ALL, Breadth::Every);
    let mut names: Vec<String> = every.iter().map(|v| v.name()).collect();
    names.dedup();
    assert_eq!(names.len(), every.len());
    assert!(names.contains(&"uffd-wp[spin-thread]".to_string()));
    // Defaults the list leaves out are measured unlabelled, beside the listed ones.
    assert!(names.contains(&"card-table".to_string()));
    assert!(names.contains(&"card-table[conditional]".to_string()));
    assert!(names.contains(&"write-watch[conditional]".to_string()));
    let one = Variant::list(&BarrierKind::ALL, Breadth::One);
    assert_eq!(one.len(), BarrierKind::ALL.len());
    assert!(one.iter().all(|v| v.config == BarrierConfig::of(v.kind())));
}
