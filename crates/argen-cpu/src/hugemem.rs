//! Weight buffers backed by transparent huge pages where the OS offers them.
//!
//! Decode and verification stream every weight from memory once per forward pass. With 4 KiB
//! pages a 195 MB bf16 model spans ~48 000 pages, and the stream keeps crossing into pages
//! whose translation is not cached; with 2 MiB pages it needs a five-hundredth of the
//! translations.
//!
//! Linux backs anonymous memory with huge pages where it is marked `MADV_HUGEPAGE` and
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` (the usual default) or `always`.
//! Two conditions decide whether it actually does, and both are easy to miss:
//! 1. only whole, 2 MiB-aligned ranges qualify, so a 3 MiB matrix on its own gets at most one
//!    huge page and 1 MiB of small ones;
//! 2. the advice must come before the pages are first touched: memory that the allocator hands
//!    back after an earlier use (the checkpoint's bytes, a dropped model) is already backed by
//!    small pages, and advising it changes nothing until the kernel's background collapse gets
//!    to it, if ever.
//!
//! Session 6 allocated each buffer from the global allocator, 2 MiB-aligned and advised; a
//! GPT-B bf16 decode bench then had only ~50 of its 195 MB in huge pages (`/proc/self/smaps`),
//! and how much varied from process to process with the allocator's history, which showed as
//! 1.5–2× run-to-run swings of the 1-thread bf16 decode step. So on Linux a [`Buf`] of at least
//! 1 MiB (since session 10: one page, below) now comes from an *arena of fresh mappings*:
//! chunks of [`CHUNK`] bytes mapped anonymously (never touched before), 2 MiB-aligned and
//! advised as a whole; buffers are carved from the current chunk one after the other
//! (page-aligned), so a model's matrices lie back to back in huge pages with no gap to round
//! up to. A buffer larger than half a chunk
//! gets a mapping of its own, rounded up to whole huge pages (at most 2 MiB over, under 7 % of
//! it). Measured on the 2-core AMD EPYC (Zen 4) dev box, `cargo bench -p argen-cpu --bench
//! decode -- 1 steps`, GPT-B 1-thread bf16 step (median of 20), the commit before this arena
//! and the arena's, four processes each in ABBA order: 12.27 / 10.01 / 10.71 / 10.83 ms
//! before, 7.95 / 8.42 / 8.05 / 7.38 ms with the arena (f16 11.22 / 10.34 / 10.36 / 8.99 →
//! 7.73 / 8.25 / 8.53 / 7.84 ms); the quiet-machine tables are in
//! `docs/runtime-performance.md` (session 7).
//!
//! **Small buffers too** (session 10). Buffers of a page (4 KiB) up to 1 MiB — every matrix of
//! a small model such as ShapesWorld (dim 128, f16: 5–128 KB each) — came from the global
//! allocator, on whatever 4 KiB physical pages the kernel handed out, and a process then
//! started in one of two modes: the 1- and 2-row calls ran either at their usual speed or up
//! to 70 % slower, for the whole process, at random (the mark of physical page placement:
//! weights that collide in the same L2 sets evict each other; switching ASLR off did not
//! remove it). Measured with `argen calibrate --threads 1 --rows 1,2,4,8,…,128` on
//! ShapesWorld (Zen 4, six processes of each build, alternating): target 1-row call 0.162 /
//! 0.171 / 0.166 / 0.167 / 0.117 / 0.161 ms with the allocator's pages, 0.116–0.119 ms in
//! all six from the arena; drafter 1-row call 0.028–0.047 → 0.026–0.027 ms; 4 to 128 rows
//! unchanged. In `argen bench` this swing of the calibration's small calls, which vanilla
//! decoding is made of, was the largest error of the cost model's predictions. So every
//! buffer of at least a page (4 KiB) now comes from the arena (smaller ones — norm gains,
//! biases — stay on the heap); a page-aligned carve wastes under a page per buffer.
//!
//! Memory goes back to the OS one huge page at a time: each chunk counts the live buffers on
//! each of its 2 MiB pages, and a dropped buffer returns (`MADV_DONTNEED`) the pages whose
//! count falls to zero; the bump pointer never moves back, so a dropped range is not handed
//! out again, and the chunk itself is unmapped when its last buffer and the arena have let go
//! of it, so loading and dropping models does not accumulate memory. Session 7 returned every
//! 4 KiB page inside a dropped buffer instead, and that *split* the huge pages it shared with
//! its neighbours: a checkpoint tensor decoded into a short-lived arena buffer before packing
//! left about a quarter of GPT-B's packed bf16 weights (up to half of a chunk) in small pages
//! (`/proc/<pid>/smaps`, session 8; the tensors are now decoded into plain `Vec`s, and no drop
//! splits a live neighbour's page).
//! Memory cost: a huge page stays resident while any buffer on it lives (at most the two
//! partly used pages at a live buffer's ends), and at most one partly used huge page per
//! chunk. With `never`, when the kernel has no free huge page, or when a
//! mapping fails, the memory is ordinary (small pages, or the global allocator as before);
//! on other systems buffers come from the global allocator, 64-byte aligned. Placement cannot
//! change a result.

use std::alloc::Layout;
use std::ptr::NonNull;
#[cfg(target_os = "linux")]
use std::sync::{Arc, Mutex};

/// Huge-page size that the advice aims at (x86-64 and aarch64 with 4 KiB base pages).
const HUGE: usize = 2 << 20;
/// Bytes per arena chunk (Linux): big enough that GPT-B's matrices (1–25 MB) mostly share
/// chunks, small enough that the one partly used chunk costs little address space.
pub const CHUNK: usize = 64 << 20;
/// Alignment of buffers carved from a chunk (one base page).
const PAGE: usize = 4096;

/// A fixed-length buffer of `T`, backed by huge pages where the OS allows when it holds at
/// least one page (4 KiB; module docs); dereferences to `[T]`.
pub struct Buf<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    store: Store,
}

/// Where a [`Buf`]'s memory comes from.
enum Store {
    /// The global allocator, with this layout (size 0: nothing allocated).
    Heap(Layout),
    /// A range of an arena chunk, which stays mapped while this reference lives (held only for
    /// that).
    #[cfg(target_os = "linux")]
    Arena(#[allow(dead_code)] Arc<Chunk>),
}

// SAFETY: `Buf` owns its elements exclusively, like a `Vec<T>`; the chunk it borrows from is
// shared only through `Arc`, and no two buffers overlap.
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
            .filter(|&b| b <= isize::MAX as usize / 2)
            .expect("hugemem::Buf: size overflows");
        let (ptr, store) = Self::alloc(bytes);
        for i in 0..len {
            // SAFETY: i < len, inside the allocation of `bytes = len · size_of::<T>()` bytes,
            // aligned for T (64 bytes or a page).
            unsafe { ptr.as_ptr().add(i).write(f(i)) };
        }
        Buf { ptr, len, store }
    }

    /// A copy of `s`.
    pub fn from_slice(s: &[T]) -> Self {
        Self::from_fn(s.len(), |i| s[i])
    }

    /// Uninitialised memory for `bytes` bytes and where it comes from.
    fn alloc(bytes: usize) -> (NonNull<T>, Store) {
        #[cfg(target_os = "linux")]
        if bytes >= PAGE && align_of::<T>() <= PAGE {
            if let Some((p, chunk)) = arena_alloc(bytes) {
                return (p.cast(), Store::Arena(chunk));
            }
        }
        if bytes == 0 {
            return (NonNull::dangling(), Store::Heap(Layout::new::<()>()));
        }
        let layout = Layout::from_size_align(bytes, align_of::<T>().max(64))
            .expect("hugemem::Buf: bad layout");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) } as *mut T;
        let Some(p) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        (p, Store::Heap(layout))
    }

    /// Whether the buffer lies in the huge-page arena (Linux, at least one page).
    pub fn in_arena(&self) -> bool {
        #[cfg(target_os = "linux")]
        if matches!(self.store, Store::Arena(_)) {
            return true;
        }
        false
    }
}

impl Buf<f32> {
    /// `len` zeros. Arena memory is fresh from the kernel, hence already zero, and is not
    /// written here: its pages are faulted in (as huge pages) only when first used, like
    /// `vec![0.0; len]`'s, so a KV cache sized for its largest batch costs memory only for
    /// what it holds.
    ///
    /// # Panics
    /// As [`Buf::from_fn`].
    pub fn zeroed(len: usize) -> Self {
        let bytes = len
            .checked_mul(size_of::<f32>())
            .filter(|&b| b <= isize::MAX as usize / 2)
            .expect("hugemem::Buf: size overflows");
        let (ptr, store) = Self::alloc(bytes);
        if let Store::Heap(_) = store {
            // SAFETY: the allocation holds `len` f32 (or `len = 0`), and all-zero bits are
            // the f32 value +0.
            unsafe { ptr.as_ptr().write_bytes(0, len) };
        }
        Buf { ptr, len, store }
    }
}

/// One anonymous mapping of the arena: `len` bytes at `base`, 2 MiB-aligned, and the number
/// of live buffers on each of its huge pages.
#[cfg(target_os = "linux")]
struct Chunk {
    base: NonNull<u8>,
    len: usize,
    live: Mutex<Vec<u32>>,
}

#[cfg(target_os = "linux")]
/// The huge pages that bytes `start..end` of a chunk touch (`start < end`).
fn pages(start: usize, end: usize) -> std::ops::Range<usize> {
    start / HUGE..end.div_ceil(HUGE)
}

#[cfg(target_os = "linux")]
/// Counts a new buffer on bytes `start..end` (`start < end`) into `live`.
fn hold(live: &mut [u32], start: usize, end: usize) {
    for c in &mut live[pages(start, end)] {
        *c += 1;
    }
}

#[cfg(target_os = "linux")]
/// Takes the buffer on bytes `start..end` (`start < end`) out of `live` and calls `free` with
/// each huge page that no buffer uses any more.
fn release(live: &mut [u32], start: usize, end: usize, mut free: impl FnMut(usize)) {
    for p in pages(start, end) {
        live[p] -= 1;
        if live[p] == 0 {
            free(p);
        }
    }
}

// SAFETY: a chunk is plain memory; which part of it each buffer owns is decided under the
// arena's lock, and the mapping only goes away in `Drop`, after every user.
#[cfg(target_os = "linux")]
unsafe impl Send for Chunk {}
// SAFETY: as above.
#[cfg(target_os = "linux")]
unsafe impl Sync for Chunk {}

#[cfg(target_os = "linux")]
impl Chunk {
    /// Maps `len` (a multiple of 2 MiB) fresh bytes at a 2 MiB-aligned address and advises
    /// them for huge pages; `None` if the kernel refuses the mapping.
    fn map(len: usize) -> Option<Chunk> {
        let over = len.checked_add(HUGE)?;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
        // no existing memory.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let start = raw as usize;
        let base = start.next_multiple_of(HUGE);
        let head = base - start;
        // SAFETY: [start, base) and [base + len, start + over) lie in the mapping just made
        // and nothing refers to them (a zero-length unmap is skipped).
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if HUGE - head > 0 {
                libc::munmap((base + len) as *mut libc::c_void, HUGE - head);
            }
            // Only changes how the kernel backs the range, never its contents; a failure (THP
            // disabled) leaves ordinary pages.
            libc::madvise(base as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        Some(Chunk {
            base: NonNull::new(base as *mut u8)?,
            len,
            live: Mutex::new(vec![0; len / HUGE]),
        })
    }

    /// Counts a buffer of `bytes` at `p` (inside this chunk).
    fn hold(&self, p: NonNull<u8>, bytes: usize) {
        let at = p.as_ptr() as usize - self.base.as_ptr() as usize;
        hold(
            &mut self.live.lock().unwrap_or_else(|e| e.into_inner()),
            at,
            at + bytes,
        );
    }
}

#[cfg(target_os = "linux")]
impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, which no buffer uses any more (each holds an Arc).
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// The chunk being filled and how many of its bytes are taken.
#[cfg(target_os = "linux")]
static ARENA: Mutex<Option<(Arc<Chunk>, usize)>> = Mutex::new(None);

/// `bytes` (at least a page) of fresh arena memory, page-aligned, and the chunk it belongs to;
/// `None` if a mapping fails (the caller falls back to the global allocator).
#[cfg(target_os = "linux")]
fn arena_alloc(bytes: usize) -> Option<(NonNull<u8>, Arc<Chunk>)> {
    if bytes > CHUNK / 2 {
        let chunk = Arc::new(Chunk::map(bytes.checked_next_multiple_of(HUGE)?)?);
        chunk.hold(chunk.base, bytes);
        return Some((chunk.base, chunk));
    }
    // Held while the new buffer is counted on its pages, so that no drop returns a page
    // between the choice of the range and the count (drops take only the chunk's lock).
    let mut arena = ARENA.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((chunk, used)) = arena.as_mut() {
        let at = used.next_multiple_of(PAGE);
        if at + bytes <= chunk.len {
            *used = at + bytes;
            // SAFETY: at + bytes <= len, inside the chunk's mapping.
            let p = unsafe { NonNull::new_unchecked(chunk.base.as_ptr().add(at)) };
            chunk.hold(p, bytes);
            return Some((p, Arc::clone(chunk)));
        }
    }
    let chunk = Arc::new(Chunk::map(CHUNK)?);
    chunk.hold(chunk.base, bytes);
    *arena = Some((Arc::clone(&chunk), bytes));
    Some((chunk.base, chunk))
}

impl<T: Copy> Clone for Buf<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Copy> Drop for Buf<T> {
    fn drop(&mut self) {
        match &self.store {
            Store::Heap(layout) => {
                if layout.size() > 0 {
                    // SAFETY: allocated in `alloc` with exactly this layout.
                    unsafe { std::alloc::dealloc(self.ptr.as_ptr() as *mut u8, *layout) };
                }
            }
            #[cfg(target_os = "linux")]
            Store::Arena(chunk) => {
                // Give back the huge pages that no live buffer uses any more (module docs):
                // the arena never hands this range out again, and a page shared with a live
                // neighbour stays whole. The chunk is unmapped when its last `Arc` goes.
                let at = self.ptr.as_ptr() as usize - chunk.base.as_ptr() as usize;
                let bytes = (self.len * size_of::<T>()).max(1);
                let mut live = chunk.live.lock().unwrap_or_else(|e| e.into_inner());
                release(&mut live, at, at + bytes, |p| {
                    let len = HUGE.min(chunk.len - p * HUGE);
                    // SAFETY: huge page p of the chunk's live mapping, on which no buffer
                    // lives (its count is zero) and which no carve can claim while the lock
                    // is held: returning it changes no live buffer's contents.
                    unsafe {
                        libc::madvise(
                            chunk.base.as_ptr().add(p * HUGE) as *mut libc::c_void,
                            len,
                            libc::MADV_DONTNEED,
                        )
                    };
                });
            }
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
        write!(f, "Buf(len {}, arena {})", self.len, self.in_arena())
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
        assert!((b.as_ptr() as usize).is_multiple_of(64));
        b[n - 1] = 7;
        assert_eq!(b[n - 1], 7);
        let s = Buf::from_slice(&[1u8, 2, 3]);
        assert_eq!(&s[..], &[1, 2, 3]);
        assert!(!s.in_arena());
        let e: Buf<f32> = Buf::from_fn(0, |_| 0.0);
        assert!(e.is_empty());
        for n in [0, 5, 3 << 20] {
            let z = Buf::zeroed(n);
            assert_eq!(z.len(), n);
            assert!(z.iter().all(|&v| v.to_bits() == 0));
        }
    }

    /// A page is returned exactly when the last buffer on it goes, whichever order the
    /// buffers go in.
    #[cfg(target_os = "linux")]
    #[test]
    fn pages_are_returned_when_their_last_buffer_goes() {
        let mut live = vec![0u32; 4];
        // a: pages 0–1, b: pages 1–2 (shares page 1 with a), c: page 2 only.
        let (a, b, c) = (
            (0, HUGE + 10),
            (HUGE + 4096, 2 * HUGE + 5),
            (2 * HUGE + 4096, 3 * HUGE),
        );
        for &(s, e) in &[a, b, c] {
            hold(&mut live, s, e);
        }
        assert_eq!(live, [1, 2, 2, 0]);
        let mut freed = Vec::new();
        release(&mut live, b.0, b.1, |p| freed.push(p));
        assert!(freed.is_empty(), "{freed:?}");
        release(&mut live, a.0, a.1, |p| freed.push(p));
        assert_eq!(freed, [0, 1]);
        release(&mut live, c.0, c.1, |p| freed.push(p));
        assert_eq!(freed, [0, 1, 2]);
        assert_eq!(live, [0; 4]);
    }

    /// Arena buffers are page-aligned, disjoint, keep their contents while others come and
    /// go (a dropped neighbour's pages are discarded, not the survivor's), and the large
    /// ones get a mapping of their own; clones are independent copies.
    #[test]
    fn arena_buffers_are_disjoint_and_survive_their_neighbours() {
        let sizes = [
            1 << 20,
            3 << 20,
            (1 << 20) + 4093,
            5 << 20,
            CHUNK / 2 + 1,
            7 << 20,
            PAGE,
            5000,
        ];
        let mut bufs: Vec<Buf<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| Buf::from_fn(n, |i| (i * 7 + k) as u8))
            .collect();
        #[cfg(target_os = "linux")]
        {
            assert!(bufs.iter().all(|b| b.in_arena()));
            assert!(bufs
                .iter()
                .all(|b| (b.as_ptr() as usize).is_multiple_of(PAGE)));
            let mut ranges: Vec<(usize, usize)> = bufs
                .iter()
                .map(|b| (b.as_ptr() as usize, b.as_ptr() as usize + b.len()))
                .collect();
            ranges.sort();
            assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
            // Less than a page stays on the heap.
            assert!(!Buf::from_fn(PAGE - 1, |_| 0u8).in_arena());
            // The one above half a chunk starts a mapping of its own (2 MiB-aligned).
            assert!((bufs[4].as_ptr() as usize).is_multiple_of(HUGE));
        }
        let copy = bufs[1].clone();
        bufs.remove(2);
        bufs.remove(0);
        bufs.push(Buf::from_fn(2 << 20, |i| (i % 251) as u8));
        for (b, k) in bufs.iter().zip([1usize, 3, 4, 5, 6, 7]) {
            assert!(b.iter().enumerate().all(|(i, &x)| x == (i * 7 + k) as u8));
        }
        assert!(bufs[6]
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i % 251) as u8));
        assert_eq!(&copy[..], &bufs[0][..]);
        assert_ne!(copy.as_ptr(), bufs[0].as_ptr());
    }
}
