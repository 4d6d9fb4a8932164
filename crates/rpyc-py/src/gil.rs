//! Releasing the GIL safely around blocking work.
//!
//! When the interpreter finalizes, CPython ends any daemon thread that tries to take the GIL
//! back with `pthread_exit`, a forced unwind. Unwinding through Rust frames that are not
//! allowed to unwind aborts the whole process. A thread that finishes blocking work while the
//! interpreter finalizes therefore never returns to Python: it parks until the process exits.

use pyo3::Python;

/// Like `py.detach(f)`, but a thread that finishes `f` during interpreter finalization parks
/// instead of taking the GIL back. The main thread (which runs the finalization and may
/// still close connections in `__del__`) carries on.
pub fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    py.detach(move || {
        let out = f();
        if finalizing() && !is_main_thread() {
            loop {
                std::thread::park();
            }
        }
        out
    })
}

/// Whether this is the process's main thread, the one that finalizes the interpreter.
#[cfg(target_os = "linux")]
fn is_main_thread() -> bool {
    // SAFETY: plain system calls without arguments.
    unsafe { libc::gettid() == libc::getpid() }
}

#[cfg(not(target_os = "linux"))]
fn is_main_thread() -> bool {
    MAIN_THREAD.get() == Some(&std::thread::current().id())
}

#[cfg(not(target_os = "linux"))]
static MAIN_THREAD: std::sync::OnceLock<std::thread::ThreadId> = std::sync::OnceLock::new();

/// Remember the importing thread as the main thread where the OS cannot tell.
pub fn note_main_thread() {
    #[cfg(not(target_os = "linux"))]
    let _ = MAIN_THREAD.set(std::thread::current().id());
}

/// Whether the interpreter is finalizing; callable without the GIL.
#[cfg(unix)]
fn finalizing() -> bool {
    use std::sync::OnceLock;
    type IsFinalizing = unsafe extern "C" fn() -> std::os::raw::c_int;
    static FUNC: OnceLock<Option<IsFinalizing>> = OnceLock::new();
    let func = FUNC.get_or_init(|| {
        // Public since 3.13, private (but exported) before.
        for name in [c"Py_IsFinalizing", c"_Py_IsFinalizing"] {
            // SAFETY: dlsym with a valid NUL-terminated name; the symbol, if found, is a
            // function of this signature in every CPython that exports it.
            let ptr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            if !ptr.is_null() {
                return Some(unsafe {
                    std::mem::transmute::<*mut libc::c_void, IsFinalizing>(ptr)
                });
            }
        }
        None
    });
    // SAFETY: reads one atomic flag of the runtime; documented as callable without the GIL.
    func.map(|f| unsafe { f() } != 0).unwrap_or(false)
}

#[cfg(not(unix))]
fn finalizing() -> bool {
    false
}
