//! Buffers of many megabytes (bulk `bytes` in a call, and the frames carrying them).
//!
//! Such a buffer is fresh memory every time: the allocator maps it anew and the kernel
//! faults it in one 4 KiB page at a time, which profiles of a 64 MiB echo showed costing
//! more than copying the bytes. Where transparent huge pages are available on request
//! (Linux, `madvise` mode), asking for them before the first touch makes that 2 MiB at a
//! time. Elsewhere this changes nothing.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// From this size on, a buffer is worth the advice (a huge page is 2 MiB).
pub const LARGE: usize = 4 << 20;

/// Make room for `additional` more bytes (at least doubling, as `Vec` does), asking for huge
/// pages if the new buffer is large. The contents move by hand rather than by `realloc`,
/// which would copy them into the new memory before the advice could be given.
pub fn reserve(buf: &mut Vec<u8>, additional: usize) {
    if buf.capacity() - buf.len() >= additional {
        return;
    }
    let needed = buf.len().saturating_add(additional);
    if needed < LARGE {
        buf.reserve(additional);
        return;
    }
    let mut grown = Vec::with_capacity(needed.max(buf.capacity().saturating_mul(2)));
    let spare = grown.spare_capacity_mut();
    advise_huge(spare.as_mut_ptr().cast(), spare.len());
    grown.extend_from_slice(buf);
    *buf = grown;
}

/// A new `bytes` holding a copy of `data`.
#[inline(never)]
pub fn new_bytes<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    if data.len() < LARGE {
        return Ok(PyBytes::new(py, data));
    }
    let len = pyo3::ffi::Py_ssize_t::try_from(data.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("bytes too large"))?;
    // SAFETY: with a NULL source, PyBytes_FromStringAndSize returns a new, uninitialized
    // bytes of `len` bytes (or NULL with an error set). It is filled in full before anyone
    // else can see it.
    unsafe {
        let ptr = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), len);
        let bytes = Bound::from_owned_ptr_or_err(py, ptr)?;
        let dst = pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<u8>();
        advise_huge(dst, data.len());
        std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
        Ok(bytes.cast_into_unchecked::<PyBytes>())
    }
}

/// Ask for huge pages on the whole 2 MiB blocks inside `[ptr, ptr + len)` (advice only:
/// refused or unsupported, nothing changes).
#[cfg(target_os = "linux")]
fn advise_huge(ptr: *mut u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize).next_multiple_of(HUGE);
    let end = (ptr as usize).saturating_add(len) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside memory this process owns (a live allocation of
        // `len` bytes at `ptr`); MADV_HUGEPAGE changes how it is backed, not its contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_ptr: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_keeps_contents_and_makes_room() {
        let mut buf = vec![7u8; 10];
        reserve(&mut buf, 3 * LARGE);
        assert!(buf.capacity() >= 10 + 3 * LARGE);
        assert_eq!(buf, vec![7u8; 10]);
        buf.resize(10 + 3 * LARGE, 1);
        assert_eq!(buf[9], 7);
        assert_eq!(buf[10 + 3 * LARGE - 1], 1);
    }
}
