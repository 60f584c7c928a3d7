//! A mutator's root stack: all the collector knows of the mutator's own variables. The
//! stack holds object addresses or null; [`RootScope`] gives a block of code its own part
//! of the stack, popped when the scope ends, however it ends (an early `?` included).

use std::ops::{Deref, DerefMut};

use super::Mutator;
use crate::barrier::{DynBarrier, StoreBarrier};
use crate::error::{Error, Result};
use crate::heap::object::ObjRef;

impl<B: StoreBarrier> Mutator<B> {
    /// Pushes `obj` on the root stack; returns its index. [`Error::StaleRef`] if `obj`
    /// is not a live object of this heap (freed, or of another heap, also one since
    /// dropped): the collector marks from the roots, so a root must name an object whose
    /// mark bit, header and slots are this heap's.
    ///
    /// `None` pushes a null root: a slot reserved for an object made later (set it with
    /// [`Mutator::set_root`]).
    #[inline]
    pub fn push_root(&mut self, obj: impl Into<Option<ObjRef>>) -> Result<usize> {
        let obj = obj.into();
        if let Some(o) = obj {
            self.space().check_obj(o.addr())?;
        }
        let roots = self.roots_mut();
        roots.push(obj.map_or(0, ObjRef::addr));
        Ok(roots.len() - 1)
    }

    /// Pops the top root.
    #[inline]
    pub fn pop_root(&mut self) -> Option<ObjRef> {
        self.roots_mut().pop().and_then(ObjRef::from_addr)
    }

    /// Root `i`, if set.
    #[inline]
    pub fn root(&self, i: usize) -> Option<ObjRef> {
        self.roots().get(i).copied().and_then(ObjRef::from_addr)
    }

    /// Sets root `i` (which must exist) to `obj` or null. [`Error::StaleRef`] if `obj` is
    /// not a live object of this heap, as for [`Mutator::push_root`].
    pub fn set_root(&mut self, i: usize, obj: Option<ObjRef>) -> Result<()> {
        if let Some(o) = obj {
            self.space().check_obj(o.addr())?;
        }
        let roots = self.roots_mut();
        let n = roots.len();
        let r = roots
            .get_mut(i)
            .ok_or_else(|| Error::InvalidArgument(format!("root {i} out of range ({n} roots)")))?;
        *r = obj.map_or(0, ObjRef::addr);
        Ok(())
    }

    /// Number of roots.
    pub fn roots_len(&self) -> usize {
        self.roots().len()
    }

    /// Truncates the root stack to `len` entries.
    pub fn truncate_roots(&mut self, len: usize) {
        self.roots_mut().truncate(len);
    }

    /// A scope on the root stack: the roots pushed through it are popped when it is
    /// dropped (at the end of a block, on an early return or `?`, in a panic's unwinding).
    /// It dereferences to the mutator, so the block uses it as the mutator; scopes nest.
    ///
    /// ```
    /// use barrierlab::{Heap, HeapConfig, Mutator, ObjRef, Result};
    ///
    /// // Builds a list of `n` nodes and returns its head, rooted by the caller.
    /// fn list(m: &mut Mutator, n: usize) -> Result<Option<ObjRef>> {
    ///     let mut scope = m.root_scope();
    ///     let head = scope.push_root(None)?; // a slot for the head, null for now
    ///     for i in 0..n {
    ///         let node = scope.alloc(1, 8)?; // may collect: the list so far is rooted
    ///         scope.write_payload(node, 0, i as u64)?;
    ///         let rest = scope.root(head);
    ///         scope.write_ref(node, 0, rest)?;
    ///         scope.set_root(head, Some(node))?;
    ///     }
    ///     Ok(scope.root(head)) // the scope's roots are popped here
    /// }
    ///
    /// # fn main() -> Result<()> {
    /// let heap = Heap::new(HeapConfig::new().heap_bytes(1 << 20))?;
    /// let mut m = heap.mutator();
    /// let head = list(&mut m, 1000)?.expect("a non-empty list");
    /// assert_eq!(m.roots_len(), 0);
    /// m.push_root(head)?;
    /// assert_eq!(m.read_payload::<u64>(head, 0)?, 999);
    /// # Ok(())
    /// # }
    /// ```
    pub fn root_scope(&mut self) -> RootScope<'_, B> {
        let len = self.roots_len();
        RootScope { m: self, len }
    }
}

/// Roots pushed for a block of code ([`Mutator::root_scope`]): when dropped, it truncates
/// the root stack to the length it had when the scope began.
pub struct RootScope<'m, B: StoreBarrier = DynBarrier> {
    m: &'m mut Mutator<B>,
    len: usize,
}

impl<B: StoreBarrier> RootScope<'_, B> {
    /// The root stack's length when the scope began: its own roots are the ones above.
    pub fn base(&self) -> usize {
        self.len
    }
}

impl<B: StoreBarrier> Deref for RootScope<'_, B> {
    type Target = Mutator<B>;
    fn deref(&self) -> &Mutator<B> {
        self.m
    }
}

impl<B: StoreBarrier> DerefMut for RootScope<'_, B> {
    fn deref_mut(&mut self) -> &mut Mutator<B> {
        self.m
    }
}

impl<B: StoreBarrier> Drop for RootScope<'_, B> {
    fn drop(&mut self) {
        self.m.truncate_roots(self.len);
    }
}
