//! `#[rpyc::service]` over the signatures a user may write, called through a real
//! connection.

use rpyc::{Args, Connection, Error, Exposed, NetRef, Server, Value};
use std::marker::PhantomData;
use std::sync::Mutex;

#[derive(Default)]
struct Kitchen {
    log: Mutex<Vec<String>>,
}

#[rpyc::service]
impl Kitchen {
    /// Unit return, String argument.
    fn note(&self, text: String) {
        self.log.lock().map(|mut l| l.push(text)).ok();
    }

    fn notes(&self) -> Value {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        Value::tuple(log)
    }

    fn maybe(&self, x: Option<i64>) -> Option<i64> {
        x.map(|v| v * 10)
    }

    fn total(&self, xs: Vec<i64>) -> i64 {
        xs.iter().sum()
    }

    fn swap(&self, pair: (String, i64)) -> (i64, String) {
        (pair.1, pair.0)
    }

    fn checked(&self, mut n: i64) -> Result<(), Error> {
        n -= 1;
        if n < 0 {
            return Err(Error::value_error("negative"));
        }
        Ok(())
    }

    fn destructure(&self, (a, b): (i64, i64)) -> i64 {
        a * b
    }

    fn io_style(&self, fail: bool) -> std::io::Result<u8> {
        if fail {
            Err(std::io::Error::other("disk on fire"))
        } else {
            Ok(7)
        }
    }

    fn helper() -> i64 {
        0 // no receiver: not exposed
    }
}

struct Tagged<T> {
    _t: PhantomData<fn() -> T>,
}

#[rpyc::service(name = "tests.Tagged")]
impl<T: 'static> Tagged<T> {
    fn tag(&self) -> &'static str {
        std::any::type_name::<T>()
    }
}

/// An object written by hand: an attribute, and calls.
struct Thermometer;

impl Exposed for Thermometer {
    fn type_name(&self) -> String {
        "tests.Thermometer".into()
    }
    fn getattr(&self, name: &str) -> rpyc::Result<Value> {
        match name {
            "celsius" => Ok(Value::Float(21.5)),
            _ => Err(Error::attribute_error(format!("no attribute {name}"))),
        }
    }
    fn call(&self, args: Args) -> rpyc::Result<Value> {
        Ok(Value::Int(args.positional.len() as i64))
    }
}

#[test]
fn signatures() -> rpyc::Result<()> {
    assert_eq!(Kitchen::helper(), 0);
    let h = Server::bind("127.0.0.1:0", Kitchen::default())?.spawn()?;
    let conn = Connection::connect(h.local_addr().expect("tcp"))?;
    let root = conn.root()?;
    root.call_method::<()>("note", ("a",))?;
    root.call_method_kw::<(), _, _>("note", (), [("text", "b")])?;
    assert_eq!(
        root.call_method::<Value>("notes", ())?,
        Value::tuple(["a", "b"])
    );
    assert_eq!(
        root.call_method::<Option<i64>>("maybe", (Value::None,))?,
        None
    );
    assert_eq!(root.call_method::<Option<i64>>("maybe", (4,))?, Some(40));
    assert_eq!(
        root.call_method::<i64>("total", (Value::tuple([1, 2, 3]),))?,
        6
    );
    assert_eq!(
        root.call_method::<(i64, String)>("swap", (("x", 1),))?,
        (1, "x".to_owned())
    );
    root.call_method::<()>("checked", (1,))?;
    let e = root.call_method::<()>("checked", (0,)).unwrap_err();
    assert!(e.is_remote("ValueError"), "{e}");
    assert_eq!(root.call_method::<i64>("destructure", ((6, 7),))?, 42);
    assert_eq!(root.call_method::<i64>("io_style", (false,))?, 7);
    let e = root.call_method::<i64>("io_style", (true,)).unwrap_err();
    assert!(
        e.is_remote("OSError") && e.to_string().contains("disk on fire"),
        "{e}"
    );
    let e = root.call_method::<i64>("helper", ()).unwrap_err();
    assert!(e.is_remote("AttributeError"), "{e}");
    let e = root.call_method::<i64>("total", (5,)).unwrap_err();
    assert!(
        e.is_remote("TypeError") && e.to_string().contains("total() argument 'xs'"),
        "{e}"
    );
    assert_eq!(root.dir()?.len(), 8);
    Ok(())
}

#[test]
fn generic_and_hand_written_objects() -> rpyc::Result<()> {
    struct Root;
    #[rpyc::service]
    impl Root {
        fn tagged(&self) -> Value {
            Value::local(Tagged::<u32> { _t: PhantomData })
        }
        fn thermometer(&self) -> Value {
            Value::local(Thermometer)
        }
    }
    let h = Server::bind("127.0.0.1:0", Root)?.spawn()?;
    let conn = Connection::connect(h.local_addr().expect("tcp"))?;
    let root = conn.root()?;
    let t: NetRef = root.call_method("tagged", ())?;
    assert_eq!(t.type_name(), "tests.Tagged");
    assert_eq!(t.call_method::<String>("tag", ())?, "u32");
    let th: NetRef = root.call_method("thermometer", ())?;
    assert_eq!(th.getattr::<f64>("celsius")?, 21.5);
    assert_eq!(th.call::<i64>((1, 2, 3))?, 3);
    assert!(th
        .getattr::<Value>("kelvin")
        .unwrap_err()
        .is_remote("AttributeError"));
    assert!(th
        .setattr("celsius", 0)
        .unwrap_err()
        .is_remote("AttributeError"));
    Ok(())
}
