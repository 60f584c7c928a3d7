//! No barrier: the baseline every other mechanism is measured against.
//!
//! Nothing is recorded and nothing is protected; the store path is a plain store. The
//! collector cannot mark while mutators run, so every collection stops the world for the
//! whole mark (long pauses, no barrier cost). There is no tracker: [`build`](super::build)
//! returns `None`.

use super::mechanism::{Granule, Mechanism, SecondChannel, ServedBy};
use super::{BarrierKind, Built, NoOptions};

/// The description of `none`.
pub(crate) const MECHANISM: Mechanism = Mechanism {
    kind: BarrierKind::None,
    name: "none",
    summary: "no barrier: every collection stops the world for the whole mark",
    granule: Granule::None,
    served_by: ServedBy::Nobody,
    kernel: "nothing",
    second_channel: SecondChannel::None,
    edges: &[],
    mapping_lock: super::mechanism::MappingLock::None,
    variants: &[],
};

/// No tracker.
pub(super) fn build(_: usize, _: usize, _: &NoOptions) -> Built {
    Ok(None)
}
