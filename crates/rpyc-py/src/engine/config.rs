//! The settings a connection reads once from its Python config dict. Defaults are the core's
//! (`rpyc_wire::conn`), and Python's `DEFAULT_CONFIG` reads them from `config_defaults()`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rpyc_wire::conn::{defaults, Config};
use rpyc_wire::Limits;
use std::time::Duration;

/// What the engine keeps besides the core's [`Config`].
pub struct Settings {
    pub core: Config,
    /// How long a write may wait for the peer to read (`send_stall_timeout`; None: forever).
    pub send_stall: Option<Duration>,
    /// How long a read polls before it blocks (`busy_poll_us`).
    pub busy_poll: Duration,
}

impl Settings {
    /// Read the settings from a connection's config; `compress` is the channel's choice.
    pub fn read(config: &Bound<'_, PyDict>, compress: bool) -> PyResult<Settings> {
        let base = Config::default();
        let limits = Limits {
            max_frame_size: size(config, "max_frame_size", base.limits.max_frame_size)?,
            max_decompressed_size: size(
                config,
                "max_decompressed_size",
                base.limits.max_decompressed_size,
            )?,
            max_nesting_depth: size(config, "max_nesting_depth", base.limits.max_nesting_depth)?,
        };
        let compression_threshold = match config.get_item("compression_threshold")? {
            _ if !compress => None,
            Some(v) if v.is_none() => None,
            Some(v) => Some(v.extract::<usize>()?),
            None => base.compression_threshold,
        };
        let core = Config {
            limits,
            bind_threads: flag(config, "bind_threads", base.bind_threads)?,
            compression_threshold,
            compression_level: u32::try_from(size(
                config,
                "compression_level",
                base.compression_level as usize,
            )?)
            .map_err(|_| PyValueError::new_err("compression_level must be 0 to 9"))?,
            max_pending_requests: size(config, "max_pending_requests", base.max_pending_requests)?,
            max_local_objects: size(config, "max_local_objects", base.max_local_objects)?,
            max_inbound_memory: size(config, "max_inbound_memory", base.max_inbound_memory)?,
        };
        Ok(Settings {
            core,
            send_stall: seconds(
                config,
                "send_stall_timeout",
                Some(defaults::SEND_STALL_TIMEOUT),
            )?,
            busy_poll: Duration::from_micros(size(
                config,
                "busy_poll_us",
                defaults::BUSY_POLL_US as usize,
            )? as u64),
        })
    }
}

/// The defaults of the rpyc-rs config keys, for Python's `DEFAULT_CONFIG`.
#[pyfunction]
pub fn config_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let base = Config::default();
    let d = PyDict::new(py);
    d.set_item("max_frame_size", base.limits.max_frame_size)?;
    d.set_item("max_decompressed_size", base.limits.max_decompressed_size)?;
    d.set_item("max_nesting_depth", base.limits.max_nesting_depth)?;
    d.set_item("max_pending_requests", base.max_pending_requests)?;
    d.set_item("max_local_objects", base.max_local_objects)?;
    d.set_item("max_inbound_memory", base.max_inbound_memory)?;
    d.set_item("send_stall_timeout", defaults::SEND_STALL_TIMEOUT)?;
    d.set_item("compression_threshold", base.compression_threshold)?;
    d.set_item("compression_level", base.compression_level)?;
    d.set_item("busy_poll_us", defaults::BUSY_POLL_US)?;
    Ok(d)
}

fn flag(cfg: &Bound<'_, PyDict>, key: &str, default: bool) -> PyResult<bool> {
    match cfg.get_item(key)? {
        Some(v) => v.is_truthy(),
        None => Ok(default),
    }
}

fn size(cfg: &Bound<'_, PyDict>, key: &str, default: usize) -> PyResult<usize> {
    match cfg.get_item(key)? {
        Some(v) if !v.is_none() => v.extract().map_err(|_| {
            PyValueError::new_err(format!("{key} must be a non-negative integer, not {v}"))
        }),
        _ => Ok(default),
    }
}

/// A duration in seconds; `None` (the key's value or absent default) means no limit.
fn seconds(cfg: &Bound<'_, PyDict>, key: &str, default: Option<f64>) -> PyResult<Option<Duration>> {
    let secs = match cfg.get_item(key)? {
        Some(v) if v.is_none() => None,
        Some(v) => Some(v.extract::<f64>()?),
        None => default,
    };
    secs.map(|t| {
        Duration::try_from_secs_f64(t)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{key} must be a positive number of seconds or None, not {t}"
                ))
            })
    })
    .transpose()
}
