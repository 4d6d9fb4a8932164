//! The `rpyc._core` extension module: brine codec over Python objects, the connection engine
//! and its transports. The Python package `rpyc` is the face; this is where the work happens.

mod attrs;
mod codec;
mod engine;
mod errors;
mod gate;
mod gil;
mod io;
mod objects;
mod stats;
mod threads;
mod tls;
mod work;

use codec::py_encode::Encoder;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rpyc_wire::Limits;

/// The largest encode buffer `brine.dump` keeps between calls.
const DUMP_SCRATCH_KEPT: usize = 4 << 20;

thread_local! {
    /// `brine.dump`'s encode buffer, kept so that repeated dumps neither regrow it (copying
    /// what was written so far) nor fault in fresh pages each time.
    static DUMP_SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `brine.dump(obj)`: encode a brine-able value.
#[pyfunction]
fn dump<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    // Taken out for the call, so a nested dump (none is expected) would start its own.
    let mut out = DUMP_SCRATCH.take();
    out.clear();
    let mut enc = Encoder::new(&mut out, Limits::default().max_nesting_depth);
    let encoded = enc.value(obj, 0).map_err(|e| e.into_pyerr(obj));
    let result = encoded.and_then(|()| io::bigbuf::new_bytes(py, &out));
    if out.capacity() <= DUMP_SCRATCH_KEPT {
        DUMP_SCRATCH.set(out);
    }
    result
}

/// `brine.load(data)`: decode exactly one value (strict: no trailing bytes).
#[pyfunction]
fn load(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    codec::py_sink::load(py, data, Limits::default().max_nesting_depth)
}

/// `brine.dumpable(obj)`: whether `obj` travels by value.
#[pyfunction]
fn dumpable(obj: &Bound<'_, PyAny>) -> bool {
    codec::py_encode::dumpable(obj)
}

/// The data of the rpyc-rs hello ping (`rpyc_wire::conn::hello`).
#[pyfunction]
fn hello_payload(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let depth = Limits::default().max_nesting_depth;
    codec::py_sink::from_value(py, &rpyc_wire::conn::hello::hello(), depth)
}

/// The start of an answer to a hello (the features this implementation offers).
#[pyfunction]
fn hello_ack(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let depth = Limits::default().max_nesting_depth;
    codec::py_sink::from_value(py, &rpyc_wire::conn::hello::ack(), depth)
}

/// `rpyc.lib.get_id_pack` for local objects, computed the way the engine does.
#[pyfunction]
fn local_id_pack(obj: &Bound<'_, PyAny>) -> PyResult<(String, u64, u64)> {
    let (name, key) = codec::id_pack::id_pack_of(obj)?;
    Ok((name.to_str()?.to_owned(), key.0, key.1))
}

// The engine's threads, caches and unsafe FFI were written for an interpreter with a GIL
// and have not been audited for free-threaded CPython (3.13t): declaring the GIL as used
// makes such an interpreter turn it back on (with a warning) when `rpyc._core` is imported,
// instead of running this code without it. (PyO3 >= 0.28 assumes the opposite by default.)
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // PyO3 checks once per process, when it first attaches from a detached state, that the
    // interpreter is initialized. Run that check now: if it first ran while the interpreter
    // finalizes (an error normalized in a connection's `__del__` at exit) it would panic.
    Python::initialize();
    gil::note_main_thread();
    m.add_class::<engine::Engine>()?;
    m.add_class::<io::acceptor::Acceptor>()?;
    m.add_class::<work::Work>()?;
    m.add_class::<tls::context::TlsContext>()?;
    m.add_class::<tls::socket::TlsSocket>()?;
    m.add_class::<tls::pipe::TlsPipe>()?;
    m.add("ProtocolError", m.py().get_type::<errors::ProtocolError>())?;
    m.add("SendStalled", m.py().get_type::<errors::SendStalled>())?;
    m.add(
        "TruncatedFrame",
        m.py().get_type::<errors::TruncatedFrame>(),
    )?;
    m.add_function(wrap_pyfunction!(attrs::class_attr, m)?)?;
    m.add_function(wrap_pyfunction!(attrs::has_static_attr, m)?)?;
    m.add_function(wrap_pyfunction!(dump, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(dumpable, m)?)?;
    m.add_function(wrap_pyfunction!(local_id_pack, m)?)?;
    m.add_function(wrap_pyfunction!(engine::register_netref_base, m)?)?;
    m.add_function(wrap_pyfunction!(engine::config_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(hello_payload, m)?)?;
    m.add_function(wrap_pyfunction!(hello_ack, m)?)?;
    m.add_function(wrap_pyfunction!(engine::inbound_memory, m)?)?;
    Ok(())
}
