//! What the crate's tests and examples share: `mod common;` in a test, `#[path =
//! "../tests/common/mod.rs"] mod common;` in an example. Each includer uses part of it.
#![allow(dead_code)]

use rpyc::{Args, Value};
use std::sync::Arc;
use std::time::Duration;

/// Bytes that break the protocol, each to send on a connection of its own: the peer must
/// close that connection only.
pub const HOSTILE: [&[u8]; 5] = [
    // a frame announcing 3 GiB
    b"\xc0\x00\x00\x00\x00",
    // message type 9
    b"\x00\x00\x00\x03\x00\x09\x11\x50\x0a",
    // a corrupt zlib frame
    b"\x00\x00\x00\x04\x01\xff\xff\xff\xff\x0a",
    // a request whose brine is truncated
    b"\x00\x00\x00\x04\x00\x01\x11\x50\x11\x0a",
    // noise
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
];

/// `len` incompressible bytes (xorshift64 from `seed`): frames of them stay their size, as
/// a compressor would otherwise shrink them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A callback (named `name` in errors) taking one integer `x` and answering `f(x)`.
pub fn int_callback<F>(name: &'static str, f: F) -> Value
where
    F: Fn(i64) -> rpyc::Result<i64> + Send + Sync + 'static,
{
    rpyc::callback(move |args: Args| {
        let first = args.positional.into_iter().next().unwrap_or_default();
        let x: i64 = rpyc::arg(name, "x", first)?;
        f(x).map(Value::from)
    })
}

/// The smallest executor: poll, park until woken.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_secs(1));
    }
}
