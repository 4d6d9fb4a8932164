//! One thread per process sends the releases that quiet connections hold (`io::held`).
//! It never touches Python (native transports only, no GIL), so interpreter finalization
//! cannot catch it.

use super::held::RELEASE_DELAY;
use super::link::Link;
use std::sync::{Arc, Condvar, Mutex};

struct Flusher {
    state: Mutex<FlusherState>,
    wake: Condvar,
}

struct FlusherState {
    /// The process the thread runs in (a forked child has no flusher thread: it starts one).
    pid: u32,
    queue: Vec<Arc<Link>>,
}

static FLUSHER: Flusher = Flusher {
    state: Mutex::new(FlusherState {
        pid: 0,
        queue: Vec::new(),
    }),
    wake: Condvar::new(),
};

/// Queue `link` for a flush after [`RELEASE_DELAY`]; false if no flusher thread could be
/// started (the caller then sends at once).
pub fn schedule(link: Arc<Link>) -> bool {
    let mut st = FLUSHER.state.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    if st.pid != pid {
        let started = std::thread::Builder::new()
            .name("rpyc-releases".into())
            .spawn(run)
            .is_ok();
        if !started {
            return false;
        }
        st.pid = pid;
        st.queue.clear(); // a parent's connections, not ours to write to
    }
    if st.queue.is_empty() {
        FLUSHER.wake.notify_one();
    }
    st.queue.push(link);
    true
}

fn run() {
    loop {
        {
            let mut st = FLUSHER.state.lock().unwrap_or_else(|p| p.into_inner());
            while st.queue.is_empty() {
                st = FLUSHER.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        }
        std::thread::sleep(RELEASE_DELAY);
        let batch = {
            let mut st = FLUSHER.state.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut st.queue)
        };
        for link in &batch {
            link.flush_detached();
        }
    }
}
