//! A lock that is waited for with the GIL released and held across Python calls.
//! (A std `Mutex` taken while holding the GIL deadlocks as soon as its owner needs the GIL.)

use pyo3::Python;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    freed: Condvar,
}

#[derive(Default)]
struct GateState {
    busy: bool,
    /// Threads waiting for the gate (waking them costs a system call: only if any).
    waiting: usize,
}

impl Gate {
    pub fn acquire(&self, py: Python<'_>) -> GateGuard<'_> {
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if !st.busy {
                st.busy = true;
                return GateGuard(self);
            }
        }
        crate::gil::detach(py, || self.acquire_detached())
    }

    /// Acquire only if nobody holds the gate (its holder may be this very thread).
    pub fn try_acquire(&self) -> Option<GateGuard<'_>> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.busy {
            return None;
        }
        st.busy = true;
        Some(GateGuard(self))
    }

    /// Acquire from a thread that does not hold the GIL.
    pub fn acquire_detached(&self) -> GateGuard<'_> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.waiting += 1;
        while st.busy {
            st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.waiting -= 1;
        st.busy = true;
        GateGuard(self)
    }
}

pub struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        st.busy = false;
        if st.waiting > 0 {
            self.0.freed.notify_one();
        }
    }
}
