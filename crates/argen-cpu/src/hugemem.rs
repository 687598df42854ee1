//! Weight buffers backed by transparent huge pages where the OS offers them.
//!
//! Decode and verification stream every weight from memory once per forward pass. With 4 KiB
//! pages a 195 MB bf16 model spans ~48 000 pages, and the software prefetches that run ahead
//! of the kernels ([`crate::gemm::Tuning`]) keep crossing into pages whose translation is not
//! cached; with 2 MiB pages the stream needs a five-hundredth of the translations.
//!
//! Linux backs anonymous memory with huge pages where it is marked `MADV_HUGEPAGE` and
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` (the usual default) or `always`.
//! The advice must come before the pages are first touched, and only whole 2 MiB-aligned
//! ranges qualify, so a [`Buf`] of at least 1 MiB is allocated 2 MiB-aligned, advised, and
//! only then written. With `never`, on other systems, or when the kernel has no free huge
//! page, the advice is a no-op and the buffer is ordinary memory. Placement cannot change a
//! result.

use std::alloc::Layout;
use std::ptr::NonNull;

/// Huge-page size that the advice aims at (x86-64 and aarch64 with 4 KiB base pages).
const HUGE: usize = 2 << 20;

/// A fixed-length buffer of `T`, 2 MiB-aligned and advised for huge pages when it holds at
/// least 1 MiB; dereferences to `[T]`.
pub struct Buf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: `Buf` owns its elements exclusively, like a `Vec<T>`.
unsafe impl<T: Copy + Send> Send for Buf<T> {}
// SAFETY: shared access only hands out `&[T]`.
unsafe impl<T: Copy + Sync> Sync for Buf<T> {}

impl<T: Copy> Buf<T> {
    /// `len` elements, element `i` being `f(i)`.
    ///
    /// # Panics
    /// If `len` elements of `T` overflow `isize` bytes; aborts (like `Vec`) if the allocation
    /// fails.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> Self {
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("hugemem::Buf: size overflows");
        let align = if bytes >= HUGE / 2 {
            HUGE
        } else {
            align_of::<T>()
        };
        let layout = Layout::from_size_align(bytes, align).expect("hugemem::Buf: bad layout");
        let ptr = if bytes == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { std::alloc::alloc(layout) } as *mut T;
            let Some(p) = NonNull::new(raw) else {
                std::alloc::handle_alloc_error(layout)
            };
            if align == HUGE {
                advise(p.as_ptr() as *mut u8, bytes);
            }
            for i in 0..len {
                // SAFETY: i < len, inside the allocation of len elements.
                unsafe { p.as_ptr().add(i).write(f(i)) };
            }
            p
        };
        Buf { ptr, len, layout }
    }

    /// A copy of `s`.
    pub fn from_slice(s: &[T]) -> Self {
        Self::from_fn(s.len(), |i| s[i])
    }
}

/// Advises `[p, p + bytes)` (2 MiB-aligned `p`) for huge pages, rounded down to whole pages.
fn advise(p: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        let whole = bytes / HUGE * HUGE;
        if whole > 0 {
            // SAFETY: the range lies inside an allocation this process owns; MADV_HUGEPAGE
            // only changes how the kernel backs those pages, never their contents, and a
            // failure (THP unavailable) leaves the memory as it was.
            unsafe { libc::madvise(p as *mut libc::c_void, whole, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (p, bytes);
}

impl<T: Copy> Clone for Buf<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Copy> Drop for Buf<T> {
    fn drop(&mut self) {
        if self.layout.size() > 0 {
            // SAFETY: allocated in `from_fn` with exactly this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr() as *mut u8, self.layout) };
        }
    }
}

impl<T: Copy> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr addresses len initialised elements (or is dangling with len 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy + std::fmt::Debug> std::fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf(len {}, align {})", self.len, self.layout.align())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_alignment_and_empty() {
        let n = (5 << 20) / 4 + 3;
        let mut b = Buf::from_fn(n, |i| i as u32);
        assert_eq!(b.len(), n);
        assert!(b.iter().enumerate().all(|(i, &x)| x == i as u32));
        assert_eq!(b.as_ptr() as usize % HUGE, 0);
        b[n - 1] = 7;
        assert_eq!(b[n - 1], 7);
        let s = Buf::from_slice(&[1u8, 2, 3]);
        assert_eq!(&s[..], &[1, 2, 3]);
        let e: Buf<f32> = Buf::from_fn(0, |_| 0.0);
        assert!(e.is_empty());
    }
}
