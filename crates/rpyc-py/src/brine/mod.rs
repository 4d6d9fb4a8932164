//! Brine straight from and to Python objects: no intermediate value tree on the hot path.
pub mod decode;
pub mod encode;
