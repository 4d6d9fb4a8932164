//! Deferred `HANDLE_DEL` frames (the flusher sends them: `io::flusher`).
//!
//! A proxy that dies sends its owner a `HANDLE_DEL`, and nobody waits for an answer. Sent at
//! once, it costs a system call here and a wake-up of the owner, often just before the next
//! request goes the same way (`conn.root.f(x)` drops the temporary proxy of `root.f` right
//! before the next call). So the sealed frame is held instead and goes out in the same write
//! as the next frame of the connection, or, if the connection stays quiet, from the flusher
//! thread after [`RELEASE_DELAY`]. The owner therefore sees every `HANDLE_DEL` before anything
//! sent after it, as before; only an idle connection's releases arrive up to a few
//! milliseconds later.

use std::sync::Mutex;
use std::time::Duration;

/// Longest time a release waits for another frame to travel with.
pub const RELEASE_DELAY: Duration = Duration::from_millis(2);
/// Releases held at most; one more sends them all at once.
const MAX_HELD: usize = 64;

#[derive(Default)]
struct Queue {
    held: HeldFrames,
    /// The connection is in the flusher's queue.
    scheduled: bool,
}

/// Sealed frames, back to back, with where each ends (a TLS transport gives each frame its
/// own record).
#[derive(Default)]
pub struct HeldFrames {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl HeldFrames {
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// All the frames as one buffer.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| &self.bytes[a..b])
    }
}

/// What the caller of [`Releases::hold`] must do next.
pub enum Hold {
    /// Nothing: the frame waits with others for a write or the flusher.
    Held,
    /// The first frame since the last flush: hand the connection to the flusher.
    Schedule,
    /// Too many frames wait: send them now.
    Full,
}

/// The releases a connection holds back.
#[derive(Default)]
pub struct Releases {
    queue: Mutex<Queue>,
}

impl Releases {
    pub fn hold(&self, framed: &[u8]) -> Hold {
        let mut q = self.lock();
        q.held.bytes.extend_from_slice(framed);
        let end = q.held.bytes.len();
        q.held.ends.push(end);
        if q.held.len() >= MAX_HELD {
            Hold::Full
        } else if q.scheduled {
            Hold::Held
        } else {
            q.scheduled = true;
            Hold::Schedule
        }
    }

    /// Whether no frame is held.
    pub fn is_empty(&self) -> bool {
        self.lock().held.is_empty()
    }

    /// The held frames, to be written in front of the next frame (empty if none).
    pub fn take(&self) -> HeldFrames {
        std::mem::take(&mut self.lock().held)
    }

    /// The flusher's turn: take the frames and leave its queue.
    pub fn take_for_flusher(&self) -> HeldFrames {
        let mut q = self.lock();
        q.scheduled = false;
        std::mem::take(&mut q.held)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_frame_schedules_and_the_rest_wait() {
        let r = Releases::default();
        assert!(matches!(r.hold(b"a"), Hold::Schedule));
        assert!(matches!(r.hold(b"bc"), Hold::Held));
        let held = r.take();
        assert_eq!(held.bytes(), b"abc");
        assert_eq!(held.frames().collect::<Vec<_>>(), [&b"a"[..], &b"bc"[..]]);
        // still scheduled: the flusher will find nothing, and new frames need no new turn
        assert!(matches!(r.hold(b"d"), Hold::Held));
        assert_eq!(r.take_for_flusher().bytes(), b"d");
        assert!(r.take().is_empty());
        assert!(matches!(r.hold(b"e"), Hold::Schedule));
    }

    #[test]
    fn too_many_held_frames_ask_for_a_flush() {
        let r = Releases::default();
        let mut last = None;
        for _ in 0..MAX_HELD {
            last = Some(r.hold(b"x"));
        }
        assert!(matches!(last, Some(Hold::Full)));
        assert_eq!(r.take().len(), MAX_HELD);
        assert!(matches!(r.hold(b"x"), Hold::Held));
    }
}
