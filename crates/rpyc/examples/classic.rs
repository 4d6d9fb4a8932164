//! Drive a classic-mode Python server (full access to its interpreter).
//!
//! ```text
//! python -c "from rpyc.utils.server import ThreadedServer; from rpyc import SlaveService; \
//!            ThreadedServer(SlaveService, hostname='127.0.0.1', port=18812).start()" &
//! cargo run -p rpyc --example classic -- 127.0.0.1:18812
//! ```
//! A classic server trusts its clients with everything: listen on 127.0.0.1 only.

use rpyc::NetRef;

fn main() -> rpyc::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18812".into());
    let c = rpyc::classic::connect(addr.as_str())?;

    let os = c.module("os")?;
    let pid: i64 = os.call_method("getpid", ())?;
    println!("server pid      = {pid}");
    let version: String = c.module("sys")?.getattr("version")?;
    println!(
        "server python   = {}",
        version.lines().next().unwrap_or_default()
    );

    let answer: i64 = c.eval("6 * 7")?;
    println!("eval('6 * 7')   = {answer}");
    c.execute("import math\nradius = 2.0")?;
    let area: f64 = c.eval("math.pi * radius ** 2")?;
    println!("area            = {area:.3}");

    // Remote objects: a list made on the server, filled from Rust.
    let list: NetRef = c.builtins()?.call_method("list", ())?;
    for i in 0..3 {
        list.call_method::<rpyc::Value>("append", (i * i,))?;
    }
    println!("remote list     = {}", list.repr()?);
    let items: Vec<i64> = list.to_vec()?;
    println!("fetched         = {items:?}");
    Ok(())
}
