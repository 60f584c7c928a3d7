//! What an `errno` from userfaultfd means and what to change, per `ioctl_userfaultfd(2)`
//! and `userfaultfd(2)`: the hints that [`crate::Error::Sys`] carries.

use crate::sys::kernel::sysctl;

/// The explanation given when creating a userfaultfd is refused.
pub fn permission_hint() -> String {
    let setting = sysctl("vm/unprivileged_userfaultfd").unwrap_or_else(|| "?".into());
    format!(
        "vm.unprivileged_userfaultfd={setting}: an unprivileged process needs \
         UFFD_USER_MODE_ONLY (kernel faults, such as read(2) into the heap, then fail with \
         EFAULT), or read-write access to /dev/userfaultfd, or CAP_SYS_PTRACE, or \
         `sysctl vm.unprivileged_userfaultfd=1`"
    )
}

/// What an errno from `userfaultfd(2)` means.
pub(super) fn syscall_hint(errno: i32) -> String {
    match errno {
        libc::EPERM | libc::EACCES => permission_hint(),
        libc::ENOSYS => "the kernel was built without CONFIG_USERFAULTFD".into(),
        libc::EINVAL => "an unsupported flag (UFFD_USER_MODE_ONLY needs Linux 5.11+)".into(),
        _ => String::new(),
    }
}

/// What an errno from opening `/dev/userfaultfd` means.
pub(super) fn dev_node_hint(errno: i32) -> &'static str {
    match errno {
        libc::ENOENT => "/dev/userfaultfd does not exist (Linux 6.1+ creates it)",
        libc::EACCES | libc::EPERM => {
            "no read-write access to /dev/userfaultfd: ask the administrator to grant it \
             (e.g. a group with rw on the node), or use UFFD_USER_MODE_ONLY"
        }
        _ => "",
    }
}

/// What an errno from a userfaultfd ioctl means.
pub(super) fn ioctl_hint(errno: i32) -> &'static str {
    match errno {
        libc::EINVAL => {
            "an unaligned or zero-length range, a range outside the registration, \
             or an unknown mode bit"
        }
        libc::ENOENT => "the range is not registered, or (UFFDIO_WRITEPROTECT) not mapped",
        libc::EFAULT => "a pointer argument is not readable or writable",
        libc::EAGAIN => {
            "the address space changed under the call (a non-cooperative event is pending); \
             retried and gave up"
        }
        libc::EEXIST => "UFFDIO_COPY: the page is already present",
        libc::EBUSY => "the range is registered on another userfaultfd",
        libc::ENOMEM => "the kernel could not allocate memory",
        libc::ESRCH => "the faulting process has exited",
        _ => "",
    }
}
