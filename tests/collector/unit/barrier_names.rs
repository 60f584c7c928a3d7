//! Barrier names: display, parsing, uniqueness, and the error for an unknown one.

use barrierlab::{BarrierKind, Error};

#[test]
fn barrier_names_round_trip() {
    for kind in BarrierKind::ALL {
        let name = kind.to_string();
        assert_eq!(name, kind.name());
        assert_eq!(name.parse::<BarrierKind>().expect("parse"), kind);
        // Display pads like a string.
        assert_eq!(format!("{kind:>16}"), format!("{:>16}", kind.name()));
    }
    let names: std::collections::HashSet<_> = BarrierKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names.len(), BarrierKind::ALL.len(), "names are unique");
    for bad in [
        "",
        "cardtable",
        "Card-Table",
        "uffd",
        "uffd-wp ",
        "soft-dirty",
    ] {
        match bad.parse::<BarrierKind>() {
            Err(Error::InvalidArgument(msg)) => {
                for kind in BarrierKind::ALL {
                    assert!(
                        msg.contains(kind.name()),
                        "{bad:?}: {msg:?} does not list {kind}"
                    );
                }
            }
            other => panic!("{bad:?} parsed as {other:?}"),
        }
    }
}
