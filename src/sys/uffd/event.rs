//! The messages a userfaultfd delivers, decoded: [`Event`] from a raw `uffd_msg`.

use bitflags::bitflags;

use super::raw;

bitflags! {
    /// `UFFD_PAGEFAULT_FLAG_*` of a page-fault message.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct PageFaultFlags: u64 {
        /// The access was a write.
        const WRITE = raw::UFFD_PAGEFAULT_FLAG_WRITE;
        /// A write-protect fault.
        const WP = raw::UFFD_PAGEFAULT_FLAG_WP;
        /// A minor fault.
        const MINOR = raw::UFFD_PAGEFAULT_FLAG_MINOR;
    }
}

/// A decoded `uffd_msg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A thread faulted on a registered range and is blocked until the fault is resolved.
    PageFault {
        /// Faulting address (page-rounded unless `EXACT_ADDRESS` was negotiated).
        address: usize,
        /// What kind of fault.
        flags: PageFaultFlags,
        /// Kernel thread id of the faulting thread, when `THREAD_ID` was negotiated.
        thread_id: Option<u32>,
    },
    /// The process forked; the child's userfaultfd descriptor number.
    Fork {
        /// The new descriptor (in this process) for the child's copy.
        child_fd: u32,
    },
    /// A registered range moved.
    Remap {
        /// Old start.
        from: usize,
        /// New start.
        to: usize,
        /// Length.
        len: usize,
    },
    /// Pages in `[start, end)` were zapped by `madvise`.
    Remove {
        /// Start.
        start: usize,
        /// End (exclusive).
        end: usize,
    },
    /// `[start, end)` was unmapped.
    Unmap {
        /// Start.
        start: usize,
        /// End (exclusive).
        end: usize,
    },
    /// An event this crate does not know (newer kernel).
    Unknown(u8),
}

impl Event {
    /// Decodes one message. `thread_ids` says whether `UFFD_FEATURE_THREAD_ID` was granted.
    pub fn decode(msg: &raw::uffd_msg, thread_ids: bool) -> Event {
        let a = msg.arg;
        match msg.event {
            raw::UFFD_EVENT_PAGEFAULT => Event::PageFault {
                flags: PageFaultFlags::from_bits_retain(a[0]),
                address: a[1] as usize,
                thread_id: thread_ids.then_some(a[2] as u32),
            },
            raw::UFFD_EVENT_FORK => Event::Fork {
                child_fd: a[0] as u32,
            },
            raw::UFFD_EVENT_REMAP => Event::Remap {
                from: a[0] as usize,
                to: a[1] as usize,
                len: a[2] as usize,
            },
            raw::UFFD_EVENT_REMOVE => Event::Remove {
                start: a[0] as usize,
                end: a[1] as usize,
            },
            raw::UFFD_EVENT_UNMAP => Event::Unmap {
                start: a[0] as usize,
                end: a[1] as usize,
            },
            other => Event::Unknown(other),
        }
    }
}
