//! A lock that is waited for with the GIL released and held across Python calls.
//! (A std `Mutex` taken while holding the GIL deadlocks as soon as its owner needs the GIL.)

use pyo3::Python;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct Gate {
    busy: Mutex<bool>,
    freed: Condvar,
}

impl Gate {
    pub fn acquire(&self, py: Python<'_>) -> GateGuard<'_> {
        {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            if !*busy {
                *busy = true;
                return GateGuard(self);
            }
        }
        crate::gil::detach(py, || {
            let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
            while *busy {
                busy = self.freed.wait(busy).unwrap_or_else(|p| p.into_inner());
            }
            *busy = true;
        });
        GateGuard(self)
    }
}

pub struct GateGuard<'a>(&'a Gate);

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy = false;
        self.0.freed.notify_one();
    }
}
