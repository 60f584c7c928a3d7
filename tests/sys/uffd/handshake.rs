//! The handshake: features and ioctls granted, unknown bits, the dev node, user mode only.

use barrierlab::Error;
use barrierlab::sys::PAGE_SIZE;
use barrierlab::sys::mem::Region;
use barrierlab::sys::pagemap::Pagemap;
use barrierlab::sys::uffd::{Features, Ioctls, Origin, RegisterMode, Uffd};

use super::{TIMEOUT, armed, support, wp_bit, wp_round_trip};
use crate::support::{page, with_timeout};

#[test]
fn handshake_grants_requested_features_and_ioctls() {
    // Not EVENT_UNMAP: with it, dropping the region (munmap) would block until its
    // UFFD_EVENT_UNMAP message is read, and nobody reads here.
    with_timeout(
        TIMEOUT,
        "handshake_grants_requested_features_and_ioctls",
        || {
            let requested = Features::PAGEFAULT_FLAG_WP
                | Features::THREAD_ID
                | Features::EVENT_REMOVE
                | Features::EXACT_ADDRESS
                | Features::WP_UNPOPULATED;
            let Some(uffd) = require!(Uffd::builder().features(requested).create()) else {
                return;
            };
            assert!(
                uffd.features().contains(requested),
                "granted {:?}, asked for {requested:?}",
                uffd.features()
            );
            let base = Ioctls::REGISTER | Ioctls::UNREGISTER | Ioctls::API;
            assert!(uffd.api_ioctls().contains(base), "{:?}", uffd.api_ioctls());
            assert!(!uffd.user_mode_only());

            let region = Region::new(2 * PAGE_SIZE).expect("map");
            let ioctls = uffd
                .register(region.base(), region.len(), RegisterMode::WP)
                .expect("register WP");
            assert!(
                ioctls.contains(Ioctls::WRITEPROTECT | Ioctls::WAKE),
                "register returned {ioctls:?}"
            );
            let ioctls = uffd
                .register(
                    region.base(),
                    region.len(),
                    RegisterMode::MISSING | RegisterMode::WP,
                )
                .expect("re-register MISSING|WP on the same descriptor");
            assert!(
                ioctls.contains(Ioctls::WRITEPROTECT | Ioctls::COPY | Ioctls::WAKE),
                "register returned {ioctls:?}"
            );
        },
    );
}

#[test]
fn handshake_names_feature_bits_the_kernel_does_not_know() {
    let unknown = Features::from_bits_retain(1 << 62);
    match Uffd::builder()
        .features(Features::PAGEFAULT_FLAG_WP | unknown)
        .create()
    {
        Err(Error::MissingFeatures { missing, .. }) => assert_eq!(missing, unknown.bits()),
        Err(e) if support::is_missing_feature(&e) => {
            support::skip_or_fail(test_name!(), &e.to_string())
        }
        other => panic!("expected MissingFeatures naming bit 62, got {other:?}"),
    }
}

#[test]
fn handshake_through_dev_node() {
    with_timeout(TIMEOUT, "handshake_through_dev_node", || {
        let Some(uffd) = require!(
            Uffd::builder()
                .features(Features::PAGEFAULT_FLAG_WP)
                .force_dev_node(true)
                .create()
        ) else {
            return;
        };
        assert_eq!(uffd.origin(), Origin::DevNode);
        assert!(uffd.features().contains(Features::PAGEFAULT_FLAG_WP));
        // The descriptor works: a fault round trip through it.
        let region = armed(&uffd, 2).expect("arm");
        let mut pagemap = Pagemap::open(1).expect("pagemap");
        assert!(wp_bit(&mut pagemap, page(&region, 1)));
        wp_round_trip(&uffd, &region, 1);
        assert!(!wp_bit(&mut pagemap, page(&region, 1)));
        assert!(wp_bit(&mut pagemap, page(&region, 0)));
    });
}

#[test]
fn handshake_user_mode_only() {
    with_timeout(TIMEOUT, "handshake_user_mode_only", || {
        let Some(uffd) = require!(
            Uffd::builder()
                .features(Features::PAGEFAULT_FLAG_WP)
                .user_mode_only(true)
                .create()
        ) else {
            return;
        };
        assert!(uffd.user_mode_only());
        assert_eq!(
            uffd.origin(),
            Origin::Syscall,
            "root may use the system call"
        );
        // Faults from user mode are still delivered.
        let region = armed(&uffd, 1).expect("arm");
        wp_round_trip(&uffd, &region, 0);
    });
}
