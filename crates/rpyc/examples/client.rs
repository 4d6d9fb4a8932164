//! Call a Python service from Rust.
//!
//! ```text
//! python examples/add_server.py --port 18861 &     # or: cargo run -p rpyc --example server
//! cargo run -p rpyc --example client -- 127.0.0.1:18861
//! ```

use rpyc::{Connection, NetRef, Value};

fn main() -> rpyc::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18861".into());
    let conn = Connection::connect(addr.as_str())?;
    let root = conn.root()?;
    println!("root        = {}", root.repr()?);

    // Arguments are anything that converts into rpyc::Value; ask for the type you want back.
    let sum: i64 = root.call_method("add", (5, 10))?;
    println!("add(5, 10)  = {sum}");
    let text: String = root.call_method("add", ("con", "cat"))?;
    println!("add(str)    = {text}");

    // A method is an object too: read it, then call it.
    let add: NetRef = root.getattr("add")?;
    let any: Value = add.call((1.5, 2))?;
    println!("add(1.5, 2) = {any:?}");

    // Remote exceptions carry the class, the arguments and the remote traceback.
    match root.call_method::<Value>("add", (1, "x")) {
        Err(e) if e.is_remote("TypeError") => {
            let remote = e.remote().map(|r| r.message()).unwrap_or_default();
            println!("add(1, 'x') raised TypeError: {remote}");
        }
        other => println!("add(1, 'x') = {other:?}"),
    }
    Ok(())
}
