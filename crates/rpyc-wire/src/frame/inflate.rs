//! Inflating compressed frames, bounded per frame (`max_decompressed_size`) and per process
//! (the inbound memory budget), and resumable when the budget says "not now".

use crate::budget::{Charge, MemoryBudget, FREE_PER_CONNECTION};
use crate::error::WireError;
use crate::limits::Limits;
use flate2::{Decompress, FlushDecompress, Status};

/// Inflates one zlib stream. A zlib bomb never gets its memory: the output never grows past
/// `max_decompressed_size` plus one byte, and every growth beyond [`FREE_PER_CONNECTION`]
/// is first taken from the inbound memory budget. When the budget refuses, [`Inflater::run`]
/// returns [`WireError::MemoryBudget`] and may be called again later to go on where it
/// stopped.
///
/// Stricter than upstream in one way: bytes after the end of the zlib stream are refused
/// (Python's `zlib.decompress` ignores them; no upstream sender writes any). A truncated
/// stream is refused, as upstream does.
pub struct Inflater {
    dec: Decompress,
    out: Vec<u8>,
    charge: Charge,
    done: bool,
}

impl Inflater {
    /// An inflater whose output is charged to `charge` (beyond the free allowance).
    pub fn new(charge: Charge) -> Inflater {
        Inflater {
            dec: Decompress::new(true),
            out: Vec::new(),
            charge,
            done: false,
        }
    }

    /// Inflate `data` (the same bytes on every call) until its end. Errors other than
    /// [`WireError::MemoryBudget`] are final.
    pub fn run(&mut self, data: &[u8], limits: &Limits) -> Result<(), WireError> {
        let max = limits.max_decompressed_size;
        let cap_limit = max.saturating_add(1);
        while !self.done {
            if self.out.len() == self.out.capacity() {
                if self.out.len() > max {
                    return Err(WireError::DecompressedTooLarge { max });
                }
                // Start near the likely size (compressed frames are mostly a few KiB).
                let first = data.len().saturating_mul(4).clamp(64, 1 << 24);
                let target = match self.out.capacity() {
                    0 => first,
                    c => c.saturating_mul(2),
                }
                .min(cap_limit);
                self.charge
                    .set(target.saturating_sub(FREE_PER_CONNECTION))?;
                self.out.reserve_exact(target - self.out.len());
            }
            let (in_before, out_before) = (self.dec.total_in(), self.dec.total_out());
            let input = data.get(in_before as usize..).unwrap_or(&[]);
            let status = self
                .dec
                .decompress_vec(input, &mut self.out, FlushDecompress::None)
                .map_err(|e| WireError::BadCompression(e.to_string()))?;
            if self.out.len() > max {
                return Err(WireError::DecompressedTooLarge { max });
            }
            match status {
                Status::StreamEnd => self.done = true,
                Status::Ok | Status::BufError => {
                    if self.dec.total_in() == in_before && self.dec.total_out() == out_before {
                        // Room for output and no progress: the input ran out mid-stream.
                        return Err(WireError::BadCompression(
                            "zlib stream is truncated".to_owned(),
                        ));
                    }
                }
            }
        }
        let used = self.dec.total_in() as usize;
        if used < data.len() {
            return Err(WireError::BadCompression(format!(
                "{} bytes after the end of the zlib stream",
                data.len() - used
            )));
        }
        Ok(())
    }

    /// The inflated bytes, with what they hold of the budget (after [`Inflater::run`]
    /// succeeded).
    pub fn finish(self) -> (Vec<u8>, Charge) {
        (self.out, self.charge)
    }
}

/// Inflate a zlib stream under `limits`, outside any budget (tests, tools).
pub fn inflate(data: &[u8], limits: &Limits) -> Result<Vec<u8>, WireError> {
    let mut inflater = Inflater::new(Charge::new(&MemoryBudget::new(), usize::MAX));
    inflater.run(data, limits)?;
    Ok(inflater.finish().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::compress;

    #[test]
    fn a_refused_budget_pauses_and_the_inflation_resumes() {
        let payload = vec![7u8; 4 << 20];
        let data = compress(&payload, 1);
        let budget = MemoryBudget::new();
        let limits = Limits::default();
        let mut hog = Charge::new(&budget, 8 << 20);
        hog.set(8 << 20).expect("the hog takes the whole budget");
        let mut inflater = Inflater::new(Charge::new(&budget, 8 << 20));
        assert!(matches!(
            inflater.run(&data, &limits),
            Err(WireError::MemoryBudget { .. })
        ));
        drop(hog);
        inflater
            .run(&data, &limits)
            .expect("resumes once there is room");
        let (out, charge) = inflater.finish();
        assert_eq!(out, payload);
        assert!(charge.bytes() >= payload.len() - FREE_PER_CONNECTION);
    }
}
