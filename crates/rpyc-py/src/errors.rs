//! Python exception types of the extension and the mapping of wire errors onto them.
use pyo3::create_exception;
use pyo3::exceptions::{PyEOFError, PyValueError};
use pyo3::PyErr;
use rpyc_wire::WireError;

create_exception!(
    rpyc._core,
    TruncatedFrame,
    PyEOFError,
    "The peer closed the connection in the middle of a frame."
);

create_exception!(
    rpyc._core,
    ProtocolError,
    PyValueError,
    "The peer sent bytes that violate the RPyC wire protocol or a configured limit."
);

create_exception!(
    rpyc._core,
    SendStalled,
    PyEOFError,
    "The peer read nothing for send_stall_timeout seconds while a frame waited to be sent; the connection was closed."
);

#[cold]
#[inline(never)]
pub fn wire_err(e: WireError) -> PyErr {
    ProtocolError::new_err(e.to_string())
}
