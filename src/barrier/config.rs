//! What a [`BarrierConfig`] is made of: each mechanism's options type implements
//! [`MechanismOptions`] (its defaults and, where it opens a userfaultfd, its mode), and a
//! mechanism without options takes [`NoOptions`]. The enum itself is declared with the
//! mechanisms, in `barrier/mod.rs`, so that a new mechanism's options join it there.

use std::fmt;

use super::{BarrierConfig, BarrierKind};

impl From<BarrierKind> for BarrierConfig {
    fn from(kind: BarrierKind) -> Self {
        BarrierConfig::of(kind)
    }
}

impl fmt::Display for BarrierConfig {
    /// The name of the variant it is (`uffd-wp[spin-thread]`), or the kind's name with its
    /// defaults, or the kind's name and the options.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match kind.mechanism().variants.iter().find(|(_, c)| c == self) {
            Some((label, _)) => write!(f, "{kind}[{label}]"),
            None if *self == BarrierConfig::of(kind) => write!(f, "{kind}"),
            None => write!(f, "{kind} ({self:?})"),
        }
    }
}

impl Default for BarrierConfig {
    /// The card table, unconditional.
    fn default() -> Self {
        BarrierConfig::of(BarrierKind::CardTable)
    }
}

/// What every mechanism's options type provides: its defaults and, for the mechanisms
/// that open a userfaultfd, its mode.
pub trait MechanismOptions: Copy {
    /// The defaults.
    const DEFAULT: Self;

    /// Open the userfaultfd with `UFFD_USER_MODE_ONLY` (otherwise full mode, with
    /// user-mode-only as the reported fallback). Default: `false`, no userfaultfd.
    fn user_mode_only(&self) -> bool {
        false
    }

    /// Sets [`user_mode_only`](Self::user_mode_only). Default: nothing to set.
    fn set_user_mode_only(&mut self, _yes: bool) {}
}

/// The options of a mechanism that has none (`none`, `mprotect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NoOptions;

impl MechanismOptions for NoOptions {
    const DEFAULT: Self = NoOptions;
}
