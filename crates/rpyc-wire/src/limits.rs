//! Safety limits applied to everything a peer sends. Each has a config key of the same name.

/// Limits enforced while decoding peer data; the defaults are safe for untrusted peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload accepted, as announced in the header (`max_frame_size`).
    pub max_frame_size: usize,
    /// Largest payload a compressed frame may inflate to (`max_decompressed_size`).
    pub max_decompressed_size: usize,
    /// Deepest nesting of brine tuples/containers (`max_nesting_depth`).
    pub max_nesting_depth: usize,
}

pub const MIB: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 256 * MIB,
            max_decompressed_size: 256 * MIB,
            max_nesting_depth: 256,
        }
    }
}

/// Human-readable size for error messages: "3 GiB", "256 MiB", "17 bytes".
pub fn human_size(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if n >= unit {
            if n % unit == 0 {
                return format!("{} {}", n / unit, name);
            }
            return format!("{:.1} {}", n as f64 / unit as f64, name);
        }
    }
    format!("{} bytes", n)
}
