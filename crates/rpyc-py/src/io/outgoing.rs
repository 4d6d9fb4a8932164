//! A message on its way out. Its encoded bytes, except that large `bytes` values are not
//! copied in: they are referenced and written from their own buffer (a `bytes` object is
//! immutable, and the reference keeps it alive until the write is done). For a 64 MiB echo
//! that saves, on each side, a copy of 64 MiB into fresh memory.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// From this size on, a `bytes` value is referenced rather than copied.
pub const SPLICE_MIN: usize = 1 << 20;

/// A large `bytes` value (of `len` bytes) that belongs at offset `at` of the encoded bytes.
pub struct Splice {
    at: usize,
    len: usize,
    data: Py<PyBytes>,
}

impl Splice {
    pub fn new(at: usize, data: &Bound<'_, PyBytes>) -> Self {
        Splice {
            at,
            len: data.as_bytes().len(),
            data: data.clone().unbind(),
        }
    }
}

/// Encoded bytes with large `bytes` values spliced in by reference (see the module doc).
#[derive(Default)]
pub struct Outgoing {
    pub buf: Vec<u8>,
    pub splices: Vec<Splice>,
    /// Holds array data sent by value (docs/by-value.md): sent uncompressed, as numeric
    /// data seldom shrinks enough to pay for zlib's time.
    pub raw_data: bool,
}

impl From<Vec<u8>> for Outgoing {
    /// Bytes with nothing spliced in.
    fn from(buf: Vec<u8>) -> Self {
        Outgoing {
            buf,
            splices: Vec::new(),
            raw_data: false,
        }
    }
}

impl Outgoing {
    pub fn with_capacity(capacity: usize) -> Self {
        Outgoing {
            buf: Vec::with_capacity(capacity),
            splices: Vec::new(),
            raw_data: false,
        }
    }

    /// Total length, spliced values included.
    pub fn len(&self) -> usize {
        self.buf.len() + self.spliced_len()
    }

    fn spliced_len(&self) -> usize {
        self.splices.iter().map(|s| s.len).sum()
    }

    pub fn is_spliced(&self) -> bool {
        !self.splices.is_empty()
    }

    /// Cut back to `len` bytes of `buf`, dropping the values spliced after that point.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
        self.splices.retain(|s| s.at <= len);
    }

    /// The whole message as consecutive slices, in order (usable without the GIL: the
    /// spliced values are immutable and referenced by `self`).
    pub fn parts(&self, py: Python<'_>) -> Vec<&[u8]> {
        let mut parts = Vec::with_capacity(2 * self.splices.len() + 1);
        let mut from = 0;
        for s in &self.splices {
            parts.push(&self.buf[from..s.at]);
            parts.push(s.data.as_bytes(py));
            from = s.at;
        }
        parts.push(&self.buf[from..]);
        parts.retain(|p| !p.is_empty());
        parts
    }

    /// The bytes from `offset` on, at most `max` of them, copied out.
    pub fn copy_range(&self, py: Python<'_>, offset: usize, max: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(max);
        for part in skip_bytes(&self.parts(py), offset) {
            let take = part.len().min(max - out.len());
            out.extend_from_slice(&part[..take]);
            if out.len() == max {
                break;
            }
        }
        out
    }

    /// The message in one piece, spliced values copied in.
    pub fn flatten(self, py: Python<'_>) -> Vec<u8> {
        if self.splices.is_empty() {
            return self.buf;
        }
        self.parts(py).concat()
    }
}

/// `parts` without their first `n` bytes (and without empty parts).
pub fn skip_bytes<'a>(parts: &[&'a [u8]], mut n: usize) -> Vec<&'a [u8]> {
    let mut rest = Vec::with_capacity(parts.len());
    for part in parts {
        if n >= part.len() {
            n -= part.len();
        } else {
            rest.push(&part[n..]);
            n = 0;
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_bytes_drops_what_was_sent() {
        let parts: [&[u8]; 4] = [b"ab", b"", b"cde", b"f"];
        let rest = |n| skip_bytes(&parts, n).concat();
        assert_eq!(rest(0), b"abcdef");
        assert_eq!(rest(1), b"bcdef");
        assert_eq!(rest(2), b"cdef");
        assert_eq!(rest(4), b"ef");
        assert_eq!(rest(6), b"");
    }
}
