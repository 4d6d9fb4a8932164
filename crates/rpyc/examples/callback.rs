//! Pass Rust closures to a Python service, which calls them back while the call runs.
//!
//! ```text
//! python examples/add_server.py --port 18861 &     # or: cargo run -p rpyc --example server
//! cargo run -p rpyc --example callback -- 127.0.0.1:18861
//! ```

use rpyc::{Args, Connection, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn main() -> rpyc::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18861".into());
    let conn = Connection::connect(addr.as_str())?;
    let root = conn.root()?;

    // The server runs `func(value) * 2`: `func` is this closure, run here, in Rust.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let plus_one = rpyc::callback(move |args: Args| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut bound = args.bind("plus_one", &["v"])?.into_iter();
        let v: i64 = rpyc::arg("plus_one", "v", bound.next().unwrap_or_default())?;
        Ok(Value::from(v + 1))
    });
    let r: i64 = root.call_method("call_me_back", (plus_one, 20))?;
    println!(
        "call_me_back(v + 1, 20) = {r} ({} call)",
        calls.load(Ordering::SeqCst)
    );

    // A callback may call the server again while the server waits for it.
    let root2 = root.clone();
    let nested = rpyc::callback(move |args: Args| {
        let mut bound = args.bind("nested", &["v"])?.into_iter();
        let v: i64 = rpyc::arg("nested", "v", bound.next().unwrap_or_default())?;
        let s: i64 = root2.call_method("add", (v, 100))?;
        Ok(Value::from(s))
    });
    let r: i64 = root.call_method("call_me_back", (nested, 1))?;
    println!("call_me_back(add(v, 100), 1) = {r}");

    // An error in the callback is raised in the server's code (and comes back to us).
    let failing = rpyc::callback(|_| Err(rpyc::Error::value_error("no, thanks")));
    match root.call_method::<Value>("call_me_back", (failing, 0)) {
        Err(e) => println!(
            "failing callback: {}",
            e.remote().map(|r| r.qualified_name()).unwrap_or_default()
        ),
        Ok(v) => println!("failing callback returned {v:?}"),
    }
    Ok(())
}
