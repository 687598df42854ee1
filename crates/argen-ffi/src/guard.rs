//! The boundary: panic containment, the thread-local last error, and the live-handle registry.
//!
//! Every `extern "C"` function runs its body through [`call`], which
//! 1. clears the calling thread's last error,
//! 2. runs the body under [`std::panic::catch_unwind`], so no panic ever unwinds into C (a caught
//!    panic becomes [`argen_status::ARGEN_ERR_PANIC`] with the panic's message),
//! 3. stores the error text of a failure as the thread's last error (read by
//!    `argen_last_error`).
//!
//! **Handles.** Each handle kind keeps a registry of the addresses it handed out, with a use
//! state. Before a handle pointer is dereferenced it is looked up: an address that was never
//! returned, was freed already, or belongs to another kind is refused with
//! [`argen_status::ARGEN_ERR_INVALID_HANDLE`] *without* touching its memory, so use-after-free and
//! double free are detected rather than undefined (an address reused by a new handle of the same
//! kind is that new, live handle). The state also refuses concurrent use: a mutable operation
//! needs the handle idle, shared (read-only) operations may overlap each other, and freeing needs
//! the handle idle.

use crate::status::{argen_status, FfiError, FfiResult};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Replaces the calling thread's last-error text (interior NUL bytes become spaces).
pub fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// Pointer to the calling thread's last-error text, valid until the thread's next argen call.
pub fn last_error_ptr() -> *const core::ffi::c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs `body` as the entry point `op`: clears the last error, catches panics, records failures.
pub fn call(op: &str, body: impl FnOnce() -> FfiResult<()>) -> argen_status {
    set_last_error("");
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        Err(FfiError::new(
            argen_status::ARGEN_ERR_PANIC,
            format!(
                "internal error (panic caught at the C boundary): {}",
                panic_message(payload.as_ref())
            ),
        ))
    });
    match result {
        Ok(()) => argen_status::ARGEN_OK,
        Err(e) => {
            set_last_error(&format!("{op}: {}", e.message));
            e.status
        }
    }
}

/// How a handle is being used right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Use {
    /// Idle, or used by this many shared operations.
    Shared(u32),
    /// Used by one mutable operation.
    Exclusive,
}

/// The live handles of one kind (see the module documentation).
#[derive(Debug)]
pub struct Registry<T> {
    kind: &'static str,
    live: Mutex<Option<HashMap<usize, Use>>>,
    _handles: PhantomData<fn() -> T>,
}

/// Marks a handle in use until dropped (also when the operation panics).
#[derive(Debug)]
pub struct Lease<'r, T> {
    registry: &'r Registry<T>,
    addr: usize,
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        self.registry.with(|live| {
            if let Some(u) = live.get_mut(&self.addr) {
                *u = match *u {
                    Use::Shared(n) if n > 0 => Use::Shared(n - 1),
                    _ => Use::Shared(0),
                };
            }
        });
    }
}

impl<T> Registry<T> {
    /// An empty registry for handles of `kind` (used in messages).
    pub const fn new(kind: &'static str) -> Self {
        Registry {
            kind,
            live: Mutex::new(None),
            _handles: PhantomData,
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<usize, Use>) -> R) -> R {
        // A poisoned lock only means a panic happened while it was held; the map stays valid
        // because every update is a single insert/remove/assignment.
        let mut guard = self.live.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.get_or_insert_with(HashMap::new))
    }

    /// Boxes `value`, records its address and returns it as a handle pointer.
    pub fn insert(&self, value: T) -> *mut T {
        let ptr = Box::into_raw(Box::new(value));
        self.with(|live| live.insert(ptr as usize, Use::Shared(0)));
        ptr
    }

    fn unknown(&self, what: &str) -> FfiError {
        FfiError::new(
            argen_status::ARGEN_ERR_INVALID_HANDLE,
            format!(
                "`{what}` is not a live {} handle (never created, already freed, or another kind)",
                self.kind
            ),
        )
    }

    fn busy(&self, what: &str) -> FfiError {
        FfiError::new(
            argen_status::ARGEN_ERR_INVALID_HANDLE,
            format!(
                "{} handle `{what}` is in use by another call at the same time (handles are not \
                 shared between threads while in use)",
                self.kind
            ),
        )
    }

    /// Leases `ptr` for one mutable operation.
    ///
    /// A pointer accepted here was returned by [`Registry::insert`] and not yet removed, so it
    /// points to a live `T`, and no other lease is held: the caller may create one `&mut T` for
    /// the lease's lifetime.
    pub fn lease_mut(&self, ptr: *mut T, what: &str) -> FfiResult<Lease<'_, T>> {
        if ptr.is_null() {
            return Err(FfiError::null(what));
        }
        let addr = ptr as usize;
        self.with(|live| match live.get_mut(&addr) {
            None => Err(self.unknown(what)),
            Some(u @ Use::Shared(0)) => {
                *u = Use::Exclusive;
                Ok(())
            }
            Some(_) => Err(self.busy(what)),
        })?;
        Ok(Lease {
            registry: self,
            addr,
        })
    }

    /// Leases `ptr` for one shared (read-only) operation: like [`Registry::lease_mut`], but other
    /// shared leases may coexist, so the caller may only create `&T`.
    pub fn lease_shared(&self, ptr: *const T, what: &str) -> FfiResult<Lease<'_, T>> {
        if ptr.is_null() {
            return Err(FfiError::null(what));
        }
        let addr = ptr as usize;
        self.with(|live| match live.get_mut(&addr) {
            None => Err(self.unknown(what)),
            Some(Use::Shared(n)) => {
                *n += 1;
                Ok(())
            }
            Some(Use::Exclusive) => Err(self.busy(what)),
        })?;
        Ok(Lease {
            registry: self,
            addr,
        })
    }

    /// Unregisters `ptr` and returns the boxed value (NULL: `Ok(None)`).
    // Sound for any `ptr`: only an address this registry handed out (and still lists) is turned
    // back into a box; anything else is refused before it is dereferenced.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn remove(&self, ptr: *mut T, what: &str) -> FfiResult<Option<Box<T>>> {
        if ptr.is_null() {
            return Ok(None);
        }
        let addr = ptr as usize;
        self.with(|live| match live.get(&addr) {
            None => Err(self.unknown(what)),
            Some(Use::Shared(0)) => {
                live.remove(&addr);
                Ok(())
            }
            Some(_) => Err(self.busy(what)),
        })?;
        // SAFETY: the address was registered by `insert` of this `Registry<T>` (a `Box<T>` turned
        // into a raw pointer) and has just been unregistered, so this is the single owner reclaiming the box.
        Ok(Some(unsafe { Box::from_raw(ptr) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_become_a_status_and_a_message() {
        let status = call("op", || panic!("boom {}", 7));
        assert_eq!(status, argen_status::ARGEN_ERR_PANIC);
        // SAFETY: the thread's last-error CString lives until the next `set_last_error`.
        let text = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) }
            .to_str()
            .unwrap()
            .to_string();
        assert!(text.starts_with("op: internal error"), "{text}");
        assert!(text.contains("boom 7"), "{text}");
        assert_eq!(call("op", || Ok(())), argen_status::ARGEN_OK);
        // SAFETY: as above.
        let text = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert!(text.to_bytes().is_empty());
    }

    #[test]
    fn registry_detects_stale_foreign_and_busy_handles() {
        let reg = Registry::<u32>::new("test");
        let other = Registry::<u32>::new("other");
        let p = reg.insert(5u32);
        assert!(other.lease_mut(p, "h").is_err());
        {
            let _a = reg.lease_shared(p, "h").unwrap();
            let _b = reg.lease_shared(p, "h").unwrap();
            assert_eq!(
                reg.lease_mut(p, "h").unwrap_err().status,
                argen_status::ARGEN_ERR_INVALID_HANDLE
            );
            assert!(reg.remove(p, "h").is_err());
        }
        {
            let _m = reg.lease_mut(p, "h").unwrap();
            assert!(reg.lease_shared(p, "h").is_err());
        }
        assert_eq!(*reg.remove(p, "h").unwrap().unwrap(), 5);
        assert_eq!(
            reg.remove(p, "h").unwrap_err().status,
            argen_status::ARGEN_ERR_INVALID_HANDLE
        );
        assert!(reg.lease_mut(p, "h").is_err());
        assert!(reg.remove(core::ptr::null_mut(), "h").unwrap().is_none());
        assert_eq!(
            reg.lease_mut(core::ptr::null_mut(), "h")
                .unwrap_err()
                .status,
            argen_status::ARGEN_ERR_NULL_POINTER
        );
    }
}
