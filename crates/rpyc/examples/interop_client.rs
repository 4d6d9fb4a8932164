//! The Rust client side of the interop tests (tests/rust/): runs checks against the Python
//! peer server of tests/peers/server.py (ours or upstream rpyc 6.0.2) and prints one JSON
//! line per check: `{"check": name, "ok": bool, "detail": text}`.
//!
//! ```text
//! cargo run -p rpyc --example interop_client -- --port N [--mode default|classic|bind_threads]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use rpyc::{Args, Config, Connection, Error, NetRef, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Check = fn(&Env) -> Result<(), String>;

struct Env {
    addr: String,
    config: Config,
    conn: Connection,
}

fn fail<T: std::fmt::Debug>(what: &str, got: T) -> Result<(), String> {
    Err(format!("{what}: got {got:?}"))
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what())
    }
}

fn e(err: Error) -> String {
    err.to_string()
}

fn root(env: &Env) -> Result<NetRef, String> {
    env.conn.root().map_err(e)
}

// -- default mode ----------------------------------------------------------------------

fn add(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    if let Ok(expect) = std::env::var("RPYC_EXPECT_FEATURES") {
        // (set by the tests: "quiet_del" for our server, "" for upstream's)
        let got = env.conn.peer_features().join(",");
        ensure(got == expect, || {
            format!("peer features {got:?}, expected {expect:?}")
        })?;
    }
    let n: i64 = r.call_method("add", (5, 10)).map_err(e)?;
    ensure(n == 15, || format!("add(5, 10) = {n}"))?;
    let s: String = r.call_method("add", ("ab", "cd")).map_err(e)?;
    ensure(s == "abcd", || format!("add('ab', 'cd') = {s:?}"))?;
    let big: Value = r.call_method("add", (u64::MAX, 1)).map_err(e)?;
    ensure(big == Value::BigInt("18446744073709551616".into()), || {
        format!("add(2**64-1, 1) = {big:?}")
    })?;
    let add: NetRef = r.getattr("add").map_err(e)?;
    let n: i64 = add.call((1, 2)).map_err(e)?;
    ensure(n == 3, || format!("root.add(1, 2) via getattr = {n}"))
}

fn echo_values(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let values = vec![
        Value::None,
        Value::Bool(true),
        Value::Int(-49),
        Value::Int(160),
        Value::Int(i64::MIN),
        Value::BigInt("-123456789012345678901234567890".into()),
        Value::Float(-0.0),
        Value::Float(1.5e300),
        Value::Complex(1.0, -2.0),
        Value::bytes(vec![0u8, 255, 10]),
        Value::bytes(vec![7u8; 300]),
        Value::str("é€😀"),
        Value::str("x".repeat(5000)),
        Value::Tuple(vec![]),
        Value::tuple([1, 2, 3]),
        Value::FrozenSet(vec![Value::Int(1)]),
        Value::Slice(Box::new((Value::Int(1), Value::None, Value::Int(-1)))),
        Value::Ellipsis,
        Value::NotImplemented,
    ];
    for v in values {
        let back: Value = r.call_method("echo", (v.clone(),)).map_err(e)?;
        if back != v {
            return fail(&format!("echo({v:?})"), back);
        }
    }
    Ok(())
}

fn kwargs(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let got: Value = r.call_method_kw("kw", (1, 2), [("x", 3)]).map_err(e)?;
    let want = Value::from((
        Value::from((1, 2)),
        Value::Tuple(vec![Value::from(("x", 3))]),
    ));
    ensure(got == want, || format!("kw(1, 2, x=3) = {got:?}"))?;
    let got: (i64, i64, i64) = r.call_method_kw("kwonly", (1,), [("c", 9)]).map_err(e)?;
    ensure(got == (1, 2, 9), || format!("kwonly(1, c=9) = {got:?}"))
}

fn references(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let list: NetRef = r.call_method("get_list", ()).map_err(e)?;
    ensure(list.type_name() == "builtins.list", || {
        format!("type {}", list.type_name())
    })?;
    ensure(list.len().map_err(e)? == 3, || "len".into())?;
    let first: i64 = list.getitem(0).map_err(e)?;
    ensure(first == 1, || format!("list[0] = {first}"))?;
    let items: Vec<i64> = r.call_method("get_list", ()).map_err(e)?;
    ensure(items == vec![1, 2, 3], || {
        format!("Vec from a remote list: {items:?}")
    })?;
    ensure(list.contains(2).map_err(e)?, || "2 in list".into())?;
    let repr = list.repr().map_err(e)?;
    ensure(repr == "[1, 2, 3]", || format!("repr = {repr}"))?;
    let dict: HashMap<String, i64> = r.call_method("get_dict", ()).map_err(e)?;
    ensure(
        dict == HashMap::from([("a".to_owned(), 1), ("b".to_owned(), 2)]),
        || format!("dict = {dict:?}"),
    )?;
    // the server's setitem on a remote dict of ours is not possible: but ours on theirs is
    let d: NetRef = r.call_method("get_dict", ()).map_err(e)?;
    d.setitem("c", 3).map_err(e)?;
    let peek: Value = r.call_method("peek_dict", ()).map_err(e)?;
    let want = Value::tuple([("a", 1), ("b", 2), ("c", 3)]);
    ensure(peek == want, || {
        format!("peek_dict after setitem: {peek:?}")
    })?;
    // a same object comes back as the same reference
    let same: bool = r.call_method("is_same", (&list, &list)).map_err(e)?;
    ensure(same, || "is_same(list, list)".into())
}

fn objects(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let t: NetRef = r.call_method("make_obj", (5,)).map_err(e)?;
    let v: i64 = t.getattr("value").map_err(e)?;
    ensure(v == 5, || format!("value = {v}"))?;
    let v: i64 = t.call_method("bump", (2,)).map_err(e)?;
    ensure(v == 7, || format!("bump(2) = {v}"))?;
    ensure(t.repr().map_err(e)? == "Thing(7)", || "repr".into())?;
    ensure(t.str().map_err(e)? == "thing:7", || "str".into())?;
    ensure(t.len().map_err(e)? == 7, || "len".into())?;
    let hidden = t.getattr::<Value>("not_exposed");
    ensure(
        matches!(&hidden, Err(err) if err.is_remote("AttributeError")),
        || format!("not_exposed: {hidden:?}"),
    )?;
    let set = t.setattr("value", 1);
    ensure(
        matches!(&set, Err(err) if err.is_remote("AttributeError")),
        || format!("setattr without allow_setattr: {set:?}"),
    )
}

fn exceptions(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let err = match r.call_method::<Value>("fail_value", ("boom",)) {
        Err(err) => err,
        Ok(v) => return fail("fail_value", v),
    };
    let re = err.remote().ok_or_else(|| format!("not remote: {err}"))?;
    ensure(re.name == "ValueError" && re.module == "builtins", || {
        format!("class {}.{}", re.module, re.name)
    })?;
    ensure(re.message() == "boom", || {
        format!("message {}", re.message())
    })?;
    ensure(re.traceback.contains("fail_value"), || {
        format!("traceback: {}", re.traceback)
    })?;
    let err = r.call_method::<Value>("fail_key", ("k",)).err();
    ensure(
        err.as_ref().is_some_and(|x| x.is_remote("KeyError")),
        || format!("fail_key: {err:?}"),
    )?;
    let err = r.call_method::<Value>("fail_custom", ("custom", 7)).err();
    let ok = err.as_ref().and_then(Error::remote).is_some_and(|x| {
        x.module == "__main__"
            && x.name == "InteropError"
            && x.args == vec![Value::str("custom"), Value::Int(7)]
            && x.attrs
                .iter()
                .any(|(k, v)| k == "code" && *v == Value::Int(7))
    });
    ensure(ok, || format!("fail_custom: {err:?}"))?;
    let missing = r.getattr::<Value>("hidden").err();
    ensure(
        missing
            .as_ref()
            .is_some_and(|x| x.is_remote("AttributeError")),
        || format!("hidden: {missing:?}"),
    )?;
    // still usable
    let n: i64 = r.call_method("add", (1, 1)).map_err(e)?;
    ensure(n == 2, || "after errors".into())
}

fn callbacks(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let times10 = common::int_callback("times10", |x| Ok(x * 10));
    let n: i64 = r.call_method("call_me", (times10, 21)).map_err(e)?;
    ensure(n == 420, || format!("call_me(x*10, 21) = {n}"))?;
    let kw = rpyc::callback(|args: Args| {
        let v = args.bind("f", &["a", "b", "c"])?;
        Ok(Value::Tuple(v))
    });
    let got: (i64, i64, i64) = r.call_method("call_kw", (kw,)).map_err(e)?;
    ensure(got == (1, 2, 3), || format!("call_kw: {got:?}"))?;
    // a callback that calls the server while the server waits for it
    let r2 = r.clone();
    let nested = common::int_callback("nested", move |x| r2.call_method("add", (x, 1)));
    let got: Value = r.call_method("map", (nested, (1, 2, 3))).map_err(e)?;
    ensure(got == Value::tuple([2, 3, 4]), || format!("map: {got:?}"))?;
    // an error in our callback is an exception for the server
    let raiser = rpyc::callback(|_| Err(Error::value_error("from rust")));
    let s: String = r.call_method("call_catch", (raiser,)).map_err(e)?;
    ensure(s == "caught:from rust", || format!("call_catch: {s}"))
}

fn async_callbacks(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let ticks = Arc::new(AtomicI64::new(0));
    let t2 = ticks.clone();
    let cb = rpyc::callback(move |_| {
        t2.fetch_add(1, Ordering::SeqCst);
        Ok(Value::None)
    });
    let _: bool = r
        .call_method("start_ticker", (cb, 3, 0.02, true))
        .map_err(e)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while ticks.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        env.conn.serve(Duration::from_millis(100)).map_err(e)?;
    }
    let n = ticks.load(Ordering::SeqCst);
    ensure(n == 3, || format!("{n} ticks served"))
}

fn awaiting(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let pending: Vec<_> = (0..20)
        .map(|i| r.call_method_async("add", (i, 1)))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let got = common::block_on(async {
        let mut out = Vec::new();
        for p in pending {
            out.push(i64::try_from(p.await?)?);
        }
        Ok::<_, Error>(out)
    })
    .map_err(e)?;
    ensure(got == (1..=20).collect::<Vec<_>>(), || format!("{got:?}"))?;
    let plus_one = common::int_callback("f", |x| Ok(x + 1));
    let v =
        common::block_on(r.call_method_async("call_me", (plus_one, 20)).map_err(e)?).map_err(e)?;
    ensure(v == Value::Int(42), || {
        format!("call_me while awaiting: {v:?}")
    })
}

fn generators(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let items: Vec<i64> = r.call_method("gen", (300,)).map_err(e)?;
    ensure(items == (0..300).collect::<Vec<_>>(), || {
        format!("gen(300): {} items", items.len())
    })?;
    let g: NetRef = r.call_method("gen_fail", ()).map_err(e)?;
    let got: Vec<_> = g.iter().map_err(e)?.collect();
    ensure(
        matches!(got.as_slice(), [Ok(Value::Int(1)), Err(err)] if err.is_remote("ValueError"))
            || matches!(got.as_slice(), [Err(err)] if err.is_remote("ValueError")),
        || format!("gen_fail: {got:?}"),
    )
}

fn releases(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    env.conn.flush().map_err(e)?;
    let before: i64 = r.call_method("table_size", ()).map_err(e)?;
    let objs: Vec<NetRef> = (0..20)
        .map(|i| r.call_method("make_obj", (i,)))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let during: i64 = r.call_method("table_size", ()).map_err(e)?;
    ensure(during >= before + 20, || {
        format!("table {before} -> {during}")
    })?;
    drop(objs);
    env.conn.flush().map_err(e)?;
    let after: i64 = r.call_method("table_size", ()).map_err(e)?;
    ensure(after == before, || {
        format!("table {before} -> {during} -> {after} after drop")
    })
}

fn timeout(env: &Env) -> Result<(), String> {
    let config = Config {
        sync_request_timeout: Some(Duration::from_millis(300)),
        ..env.config.clone()
    };
    let conn = Connection::connect_with(env.addr.as_str(), config).map_err(e)?;
    let r = conn.root().map_err(e)?;
    let t0 = Instant::now();
    match r.call_method::<Value>("sleep", (1.5,)) {
        Err(Error::Timeout(_)) => {}
        other => return fail("sleep(1.5) with a 0.3 s timeout", other),
    }
    ensure(t0.elapsed() < Duration::from_millis(1200), || {
        format!("timed out after {:?}", t0.elapsed())
    })?;
    std::thread::sleep(Duration::from_millis(1300));
    let n: i64 = r.call_method("add", (2, 2)).map_err(e)?;
    ensure(n == 4, || "usable after a timeout".into())
}

fn threads(env: &Env) -> Result<(), String> {
    let r = root(env)?;
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..50 {
                    let n: i64 = r.call_method("add", (t, i)).map_err(e)?;
                    ensure(n == t + i, || format!("thread {t}: {n}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "thread panicked".to_owned())??;
    }
    Ok(())
}

// -- classic mode ----------------------------------------------------------------------

fn classic(env: &Env) -> Result<(), String> {
    let conn = Connection::connect_with(env.addr.as_str(), env.config.clone()).map_err(e)?;
    let c = rpyc::classic::Classic::new(conn).map_err(e)?;
    let three: i64 = c.eval("1 + 2").map_err(e)?;
    ensure(three == 3, || format!("eval: {three}"))?;
    let os = c.module("os").map_err(e)?;
    let pid: i64 = os.call_method("getpid", ()).map_err(e)?;
    let pid2: i64 = c.eval("__import__('os').getpid()").map_err(e)?;
    ensure(pid == pid2 && pid > 0, || format!("getpid {pid} vs {pid2}"))?;
    c.execute("x = 41").map_err(e)?;
    let x: i64 = c.eval("x + 1").map_err(e)?;
    ensure(x == 42, || format!("execute then eval: {x}"))?;
    let sep: String = c.module("os.path").map_err(e)?.getattr("sep").map_err(e)?;
    ensure(sep == "/", || format!("os.path.sep {sep}"))?;
    let l: NetRef = c
        .builtins()
        .map_err(e)?
        .call_method("list", ((1, 2),))
        .map_err(e)?;
    l.call_method::<Value>("append", (3,)).map_err(e)?;
    ensure(l.to_vec::<i64>().map_err(e)? == vec![1, 2, 3], || {
        "list".into()
    })?;
    let err = c.eval::<Value>("1/0").err();
    ensure(
        err.as_ref()
            .is_some_and(|x| x.is_remote("ZeroDivisionError")),
        || format!("1/0: {err:?}"),
    )
}

fn main() {
    let mut port = None;
    let mut mode = "default".to_owned();
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => port = args.next(),
            "--mode" => mode = args.next().unwrap_or_default(),
            "--check" => only.extend(args.next()),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let Some(port) = port else {
        eprintln!(
            "usage: interop_client --port N [--mode default|classic|bind_threads] [--check NAME]"
        );
        std::process::exit(2);
    };
    let addr = format!("127.0.0.1:{port}");
    let mut config = Config {
        sync_request_timeout: Some(Duration::from_secs(10)),
        ..Config::default()
    };
    config.wire.bind_threads = mode == "bind_threads";
    let checks: Vec<(&str, Check)> = match mode.as_str() {
        "classic" => vec![("classic", classic)],
        "bind_threads" => vec![
            ("add", add),
            ("callbacks", callbacks),
            ("exceptions", exceptions),
        ],
        _ => vec![
            ("add", add),
            ("echo_values", echo_values),
            ("kwargs", kwargs),
            ("references", references),
            ("objects", objects),
            ("exceptions", exceptions),
            ("callbacks", callbacks),
            ("async_callbacks", async_callbacks),
            ("awaiting", awaiting),
            ("generators", generators),
            ("releases", releases),
            ("timeout", timeout),
            ("threads", threads),
        ],
    };
    let mut failed = false;
    for (name, check) in checks {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let t0 = Instant::now();
        let result = Connection::connect_with(addr.as_str(), config.clone())
            .map_err(e)
            .and_then(|conn| {
                let env = Env {
                    addr: addr.clone(),
                    config: config.clone(),
                    conn,
                };
                check(&env)
            });
        failed |= result.is_err();
        println!(
            "{{\"check\": {}, \"ok\": {}, \"detail\": {}, \"seconds\": {:.3}}}",
            json_str(name),
            result.is_ok(),
            json_str(result.err().as_deref().unwrap_or("")),
            t0.elapsed().as_secs_f64()
        );
    }
    std::process::exit(i32::from(failed));
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
