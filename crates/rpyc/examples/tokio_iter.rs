//! Awaited iteration on the tokio driver against a Python server: the interop suite's
//! tests/peers/server.py (ours or upstream rpyc 6.0.2; tests/rust/test_rust_tokio_iter.py
//! runs it). Prints `ok NAME` or `FAIL NAME: why` per check; exit status 1 if one failed.
//!
//! ```text
//! python tests/peers/server.py --port 18861 &
//! cargo run -p rpyc --features tokio --example tokio_iter -- --port 18861
//! ```

use rpyc::tokio::{Connection, NetRef};
use rpyc::Value;

type Outcome = Result<(), String>;

fn main() {
    let mut port = "18861".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next().unwrap_or_default(),
            other => {
                eprintln!("usage: tokio_iter [--port N] (unknown argument {other})");
                std::process::exit(2);
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("cannot start a tokio runtime: {e}");
            std::process::exit(2)
        });
    let failed = runtime.block_on(async {
        let conn = match Connection::connect(format!("127.0.0.1:{port}")).await {
            Ok(c) => c,
            Err(e) => {
                println!("FAIL connect: {e}");
                return true;
            }
        };
        let mut failed = false;
        for (name, outcome) in [
            ("iter", iterate(&conn).await),
            ("iter_error", iterate_error(&conn).await),
            ("items", items(&conn).await),
            ("to_vec", to_vec(&conn).await),
        ] {
            match outcome {
                Ok(()) => println!("ok {name}"),
                Err(why) => {
                    failed = true;
                    println!("FAIL {name}: {why}");
                }
            }
        }
        failed
    });
    std::process::exit(i32::from(failed));
}

async fn root(conn: &Connection) -> Result<NetRef, String> {
    conn.root().await.map_err(|e| e.to_string())
}

/// A generator of 300 items: three batches, items in order, then the end (twice).
async fn iterate(conn: &Connection) -> Outcome {
    let gen: NetRef = root(conn)
        .await?
        .call_method("gen", (300,))
        .await
        .map_err(|e| e.to_string())?;
    let mut it = gen.iter().await.map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    while let Some(i) = it.next::<i64>().await.map_err(|e| e.to_string())? {
        seen.push(i);
    }
    if seen != (0..300).collect::<Vec<i64>>() {
        return Err(format!("items {seen:?}"));
    }
    match it.next::<i64>().await {
        Ok(None) => Ok(()),
        other => Err(format!("after the end: {other:?}")),
    }
}

/// An error of the remote iterator fails the batch it happens in (`HANDLE_BUFFITER` has no
/// partial answer: the item before it is lost with it, as with every RPyC client that
/// iterates with it), then the iteration ends.
async fn iterate_error(conn: &Connection) -> Outcome {
    let gen: NetRef = root(conn)
        .await?
        .call_method("gen_fail", ())
        .await
        .map_err(|e| e.to_string())?;
    let mut it = gen.iter().await.map_err(|e| e.to_string())?;
    match it.next::<i64>().await {
        Err(e) if e.is_remote("ValueError") && e.to_string().contains("gen failed") => {}
        other => return Err(format!("expected ValueError('gen failed'), got {other:?}")),
    }
    match it.next::<i64>().await {
        Ok(None) => Ok(()),
        other => Err(format!("after the error: {other:?}")),
    }
}

/// A remote dict's pairs.
async fn items(conn: &Connection) -> Outcome {
    let d: NetRef = root(conn)
        .await?
        .call_method("get_dict", ())
        .await
        .map_err(|e| e.to_string())?;
    let mut pairs = d.items().await.map_err(|e| e.to_string())?;
    pairs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let want = vec![
        (Value::str("a"), Value::Int(1)),
        (Value::str("b"), Value::Int(2)),
    ];
    if pairs == want {
        Ok(())
    } else {
        Err(format!("pairs {pairs:?}"))
    }
}

async fn to_vec(conn: &Connection) -> Outcome {
    let list: NetRef = root(conn)
        .await?
        .call_method("get_list", ())
        .await
        .map_err(|e| e.to_string())?;
    let items: Vec<i64> = list.to_vec().await.map_err(|e| e.to_string())?;
    if items == [1, 2, 3] {
        Ok(())
    } else {
        Err(format!("list {items:?}"))
    }
}
