//! Running an `async fn` service method to completion on the calling thread: what the
//! threaded server (and any synchronous [`crate::Exposed::call_method`] caller) does with
//! the async methods of `#[rpyc::service]`. The tokio server never comes here: it awaits
//! them (`Exposed::call_method_async`).

use crate::error::Result;
use std::future::Future;

/// Run `fut` to completion on this thread (used by the code `#[rpyc::service]` writes for
/// async methods). With the `tokio` feature the future runs within a tokio runtime, so it
/// may use tokio's timers and sockets: the current one (on a thread of its blocking pool),
/// else one small runtime of the process, started on first use (its reactor and timers
/// driven by a thread named `rpyc-async`). Without the feature, a minimal executor parks
/// the thread between wake-ups: futures that need a tokio reactor fail there.
///
/// Do not call it on a tokio runtime's worker thread (tokio refuses to block one): await
/// the method instead.
#[doc(hidden)]
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    #[cfg(feature = "tokio")]
    {
        let handle = match ::tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => background()?,
        };
        Ok(handle.block_on(fut))
    }
    #[cfg(not(feature = "tokio"))]
    {
        Ok(park::block_on(fut))
    }
}

/// The process's runtime for async methods called outside any runtime.
#[cfg(feature = "tokio")]
fn background() -> Result<::tokio::runtime::Handle> {
    use std::sync::Mutex;
    static HANDLE: Mutex<Option<::tokio::runtime::Handle>> = Mutex::new(None);
    let mut handle = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(h) = handle.as_ref() {
        return Ok(h.clone());
    }
    let failed = |what: &str, e: std::io::Error| {
        crate::Error::Io(std::io::Error::new(
            e.kind(),
            format!("cannot start the {what} of async service methods: {e}"),
        ))
    };
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed("runtime", e))?;
    let h = rt.handle().clone();
    // (A current-thread runtime's timers and sockets only advance while some thread is in
    // its Runtime::block_on; the Handle::block_on of the callers then makes progress.)
    std::thread::Builder::new()
        .name("rpyc-async".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .map_err(|e| failed("thread", e))?;
    *handle = Some(h.clone());
    Ok(h)
}

#[cfg(not(feature = "tokio"))]
mod park {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;

    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
