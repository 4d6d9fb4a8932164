//! Two connection cores driven against each other in memory: what one sends, the other
//! receives, in chunks of any size. No sockets, no threads.

mod common;

use common::noise;
use rpyc_wire::brine::Value;
use rpyc_wire::budget::MemoryBudget;
use rpyc_wire::conn::{Config, Connection, Event};
use rpyc_wire::consts::handler;
use rpyc_wire::message::{Boxed, IdPack};
use rpyc_wire::WireError;
use std::sync::Arc;

/// The objects the server side serves: its root, with one method.
#[derive(Debug, Clone, PartialEq)]
enum Obj {
    Root,
}

const ROOT_KEY: (u64, u64) = (1000, 2000);

fn root_id() -> IdPack {
    IdPack::new("calc.CalcService", ROOT_KEY.0 as i64, ROOT_KEY.1 as i64)
}

struct Pair {
    client: Connection<()>,
    server: Connection<Obj>,
    /// Chunk sizes used to carry bytes across, cycled.
    chunks: Vec<usize>,
    turn: usize,
}

impl Pair {
    fn new(config: Config) -> Pair {
        let budget = MemoryBudget::new();
        Pair::with(config.clone(), config, &budget)
    }

    fn with(client: Config, server: Config, budget: &Arc<MemoryBudget>) -> Pair {
        Pair {
            client: Connection::new(client, budget),
            server: Connection::new(server, budget),
            chunks: vec![1, 7, 4096, 3, 65536, 2],
            turn: 0,
        }
    }

    /// Carry what the client sent to the server, in chunks.
    fn carry_to_server(&mut self) {
        let bytes = self.client.take_outgoing();
        for piece in chunked(&bytes, &self.chunks, &mut self.turn) {
            self.server.receive(piece).expect("server receives");
        }
    }

    fn carry_to_client(&mut self) {
        let bytes = self.server.take_outgoing();
        for piece in chunked(&bytes, &self.chunks, &mut self.turn) {
            self.client.receive(piece).expect("client receives");
        }
    }

    /// Serve every request that reached the server, as a tiny "calculator" service does.
    fn serve(&mut self) {
        while let Some(event) = self.server.poll_event().expect("server event") {
            match event {
                Event::Request {
                    seq,
                    handler,
                    thread,
                    args,
                } => {
                    let answer = serve_one(&mut self.server, handler, args);
                    match answer {
                        Ok(result) => self.server.reply(&seq, thread, &result),
                        Err(why) => self.server.reply_exception(&seq, thread, &why),
                    }
                    .expect("answer");
                }
                other => panic!("server got {other:?}"),
            }
        }
    }

    /// One call from the client, served, and its answer.
    fn call(&mut self, handler: i64, args: &[Boxed]) -> Event {
        let id = self.client.request(handler, args).expect("request");
        self.carry_to_server();
        self.serve();
        self.carry_to_client();
        let event = self
            .client
            .poll_event()
            .expect("client event")
            .expect("an answer");
        match &event {
            Event::Reply { id: got, .. } | Event::Exception { id: got, .. } => assert_eq!(*got, id),
            other => panic!("client got {other:?}"),
        }
        event
    }
}

fn chunked<'a>(bytes: &'a [u8], sizes: &[usize], turn: &mut usize) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = sizes[*turn % sizes.len()].min(rest.len());
        *turn += 1;
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// The calculator: GETROOT gives the root by reference; CALLATTR(root, "add", (a, b), ())
/// adds; anything else is an exception body.
fn serve_one(
    server: &mut Connection<Obj>,
    handler: i64,
    args: Result<Vec<Boxed>, WireError>,
) -> Result<Boxed, Value> {
    let args = args.map_err(|e| Value::str(e.to_string()))?;
    match (handler, &args[..]) {
        (handler::GETROOT, []) => {
            server
                .export(ROOT_KEY, || Obj::Root)
                .map_err(|e| Value::str(e.to_string()))?;
            Ok(Boxed::RemoteRef(root_id()))
        }
        (
            handler::CALLATTR,
            [Boxed::LocalRef(id), Boxed::Value(name), Boxed::Value(call_args), _],
        ) => {
            let key = (
                id.class_id_i64().unwrap_or(-1) as u64,
                id.instance_id_i64().unwrap_or(-1) as u64,
            );
            assert_eq!(
                server.objects().get(key),
                Some(&Obj::Root),
                "the root, looked up"
            );
            match (name.as_str(), call_args.as_tuple()) {
                (Some("add"), Some([Value::Int(a), Value::Int(b)])) => {
                    Ok(Boxed::Value(Value::Int(a + b)))
                }
                _ => Err(Value::str("AttributeError")),
            }
        }
        _ => Err(Value::Tuple(vec![
            Value::str("KeyError"),
            Value::Int(handler),
        ])),
    }
}

fn add_args(a: i64, b: i64) -> Vec<Boxed> {
    vec![
        Boxed::LocalRef(root_id()),
        Boxed::Value(Value::str("add")),
        Boxed::Value(Value::Tuple(vec![Value::Int(a), Value::Int(b)])),
        Boxed::Value(Value::Tuple(vec![])),
    ]
}

#[test]
fn a_call_and_the_release_of_the_root() {
    let mut pair = Pair::new(Config::default());
    let root = pair.call(handler::GETROOT, &[]);
    assert_eq!(
        root,
        Event::Reply {
            id: 0,
            result: Ok(Boxed::RemoteRef(root_id()))
        }
    );
    assert_eq!(pair.server.objects().len(), 1);
    assert_eq!(
        pair.call(handler::CALLATTR, &add_args(5, 10)),
        Event::Reply {
            id: 1,
            result: Ok(Boxed::Value(Value::Int(15)))
        }
    );
    // The client drops its proxy: HANDLE_DEL, served by the core, answered (upstream peers
    // wait for that answer), and the answer nobody awaits is dropped on arrival.
    pair.client
        .notify(
            handler::DEL,
            &[Boxed::LocalRef(root_id()), Boxed::Value(Value::Int(2))],
        )
        .expect("release");
    pair.carry_to_server();
    assert_eq!(
        pair.server.poll_event().expect("no error"),
        None,
        "DEL is no event"
    );
    assert!(pair.server.objects().is_empty(), "the root was released");
    pair.carry_to_client();
    assert_eq!(
        pair.client.poll_event().expect("no error"),
        None,
        "stray answer dropped"
    );
}

#[test]
fn a_quiet_peer_gets_no_answer_to_its_releases() {
    let mut pair = Pair::new(Config::default());
    pair.call(handler::GETROOT, &[]);
    pair.server
        .session_mut()
        .set_peer_features(vec!["quiet_del"]);
    pair.client
        .notify(handler::DEL, &[Boxed::LocalRef(root_id())])
        .expect("release");
    pair.carry_to_server();
    assert_eq!(pair.server.poll_event().expect("no error"), None);
    assert!(pair.server.objects().is_empty());
    assert!(pair.server.take_outgoing().is_empty(), "nothing sent");
}

#[test]
fn unknown_handlers_and_bad_arguments_are_answered_not_fatal() {
    let mut pair = Pair::new(Config::default());
    match pair.call(99, &[]) {
        Event::Exception { body: Ok(body), .. } => {
            assert_eq!(
                body,
                Value::Tuple(vec![Value::str("KeyError"), Value::Int(99)])
            )
        }
        other => panic!("{other:?}"),
    }
    pair.call(handler::GETROOT, &[]);
    let mut args = add_args(1, 2);
    args[1] = Boxed::Value(Value::str("sub"));
    match pair.call(handler::CALLATTR, &args) {
        Event::Exception { body: Ok(body), .. } => assert_eq!(body, Value::str("AttributeError")),
        other => panic!("{other:?}"),
    }
    // The connection goes on.
    assert_eq!(
        pair.call(handler::CALLATTR, &add_args(1, 2)),
        Event::Reply {
            id: 3,
            result: Ok(Boxed::Value(Value::Int(3)))
        }
    );
}

#[test]
fn pending_requests_are_bounded() {
    let config = Config {
        max_pending_requests: 2,
        ..Config::default()
    };
    let mut pair = Pair::new(config);
    pair.client.request(handler::PING, &[]).expect("first");
    pair.client.request(handler::PING, &[]).expect("second");
    assert_eq!(
        pair.client.request(handler::PING, &[]),
        Err(WireError::TooManyPending { max: 2 })
    );
    // A request nobody awaits takes no slot.
    pair.client.notify(handler::PING, &[]).expect("not awaited");
}

#[test]
fn exported_objects_are_bounded() {
    let mut server: Connection<u8> = Connection::new(
        Config {
            max_local_objects: 1,
            ..Config::default()
        },
        &MemoryBudget::new(),
    );
    server.export((1, 1), || 1).expect("first");
    server.export((1, 1), || 1).expect("the same object again");
    assert_eq!(
        server.export((1, 2), || 2),
        Err(WireError::TooManyObjects { max: 1 })
    );
}

#[test]
fn values_nested_deeper_than_the_peer_accepts_are_refused_before_sending() {
    let mut pair = Pair::new(Config::default());
    let mut deep = Value::Int(0);
    for _ in 0..300 {
        deep = Value::Tuple(vec![deep]);
    }
    assert!(matches!(
        pair.client.request(handler::PING, &[Boxed::Value(deep)]),
        Err(WireError::OutgoingTooDeep { max: 256 })
    ));
    assert!(pair.client.take_outgoing().is_empty(), "nothing queued");
    assert_eq!(pair.client.session().requests.awaited(), 0, "no slot kept");
}

#[test]
fn close_ends_both_sides() {
    let mut pair = Pair::new(Config::default());
    pair.client.close().expect("close");
    assert!(matches!(
        pair.client.request(handler::PING, &[]),
        Err(WireError::Closed(_))
    ));
    pair.carry_to_server();
    assert_eq!(
        pair.server.poll_event().expect("event"),
        Some(Event::Closed)
    );
    assert!(matches!(
        pair.server.poll_event(),
        Err(WireError::Closed(_))
    ));
    assert!(matches!(
        pair.server
            .reply(&Value::Int(0), 0, &Boxed::Value(Value::None)),
        Err(WireError::Closed(_))
    ));
}

#[test]
fn garbage_ends_the_connection_with_the_error_then_closed() {
    let mut pair = Pair::new(Config::default());
    pair.client.request(handler::PING, &[]).expect("pending");
    pair.client
        .receive(b"\x00\x00\x00\x02\x00\x07\x11\n")
        .expect("bytes");
    assert_eq!(
        pair.client.poll_event(),
        Err(WireError::UnknownMessageType(7))
    );
    assert!(matches!(
        pair.client.poll_event(),
        Err(WireError::Closed(_))
    ));
    assert!(matches!(
        pair.client.receive(b"x"),
        Err(WireError::Closed(_))
    ));
    assert_eq!(
        pair.client.session().requests.awaited(),
        0,
        "waiters dropped"
    );
}

#[test]
fn a_stray_reply_releases_the_references_it_holds() {
    let mut pair = Pair::new(Config::default());
    // The server answers a request the client never made (seq 77), with a reference.
    pair.server.export(ROOT_KEY, || Obj::Root).expect("export");
    pair.server
        .reply(&Value::Int(77), 0, &Boxed::RemoteRef(root_id()))
        .expect("reply");
    pair.carry_to_client();
    assert_eq!(pair.client.poll_event().expect("no error"), None);
    pair.carry_to_server();
    assert_eq!(pair.server.poll_event().expect("no error"), None);
    assert!(pair.server.objects().is_empty(), "released by the client");
}

#[test]
fn bind_threads_routes_answers_to_the_requesting_thread() {
    let mut pair = Pair::new(Config {
        bind_threads: true,
        ..Config::default()
    });
    pair.client
        .request(handler::PING, &[Boxed::Value(Value::str("x"))])
        .expect("ping");
    pair.carry_to_server();
    match pair.server.poll_event().expect("event") {
        Some(Event::Request {
            seq,
            thread,
            handler,
            args,
        }) => {
            assert_eq!((handler, thread), (handler::PING, 0));
            let echo = args.expect("args").remove(0);
            pair.server.reply(&seq, thread, &echo).expect("reply");
        }
        other => panic!("{other:?}"),
    }
    pair.carry_to_client();
    assert_eq!(
        pair.client.poll_event().expect("answer"),
        Some(Event::Reply {
            id: 0,
            result: Ok(Boxed::Value(Value::str("x")))
        })
    );
}

#[test]
fn large_compressed_values_cross_under_the_budget() {
    let budget = MemoryBudget::new();
    let config = Config::default();
    let mut pair = Pair::with(config.clone(), config, &budget);
    let big = Value::bytes(vec![b'z'; 3 << 20]);
    let id = pair
        .client
        .request(handler::PING, &[Boxed::Value(big.clone())])
        .expect("ping");
    pair.carry_to_server();
    let Some(Event::Request {
        seq, thread, args, ..
    }) = pair.server.poll_event().expect("event")
    else {
        panic!("no request")
    };
    assert_eq!(args.expect("args"), vec![Boxed::Value(big.clone())]);
    assert_eq!(budget.used(), 0, "everything decoded was given back");
    pair.server
        .reply(&seq, thread, &Boxed::Value(big.clone()))
        .expect("echo");
    pair.carry_to_client();
    assert_eq!(
        pair.client.poll_event().expect("answer"),
        Some(Event::Reply {
            id,
            result: Ok(Boxed::Value(big))
        })
    );
}

#[test]
fn a_full_budget_pauses_a_connection_without_losing_bytes() {
    let budget = MemoryBudget::new();
    let small = Config {
        max_inbound_memory: 1 << 20,
        ..Config::default()
    };
    let mut pair = Pair::with(small.clone(), small, &budget);
    let big = Value::bytes(noise(2 << 20));
    pair.client
        .request(handler::PING, &[Boxed::Value(big)])
        .expect("ping");
    let bytes = pair.client.take_outgoing();
    let refused = pair.server.receive(&bytes);
    assert!(
        matches!(refused, Err(WireError::MemoryBudget { .. })),
        "{refused:?}"
    );
    // The connection is not lost: a smaller piece goes in, and the rest once there is room.
    pair.server
        .receive(&bytes[..1000])
        .expect("a small piece fits");
    assert_eq!(pair.server.poll_event().expect("waiting"), None);
}

#[test]
fn small_messages_are_framed_in_the_buffer_they_were_written_in() {
    // (Room reserved for blobs that are not there grew, reallocated, every small message's
    // buffer: a measurable share of a small call's cost.)
    let mut pair = Pair::new(Config::default());
    pair.client
        .request(handler::CALLATTR, &add_args(1, 2))
        .expect("request");
    let request = pair.client.take_outgoing();
    assert!(request.capacity() <= 128, "request: {}", request.capacity());
    pair.server
        .reply(&Value::Int(7), 0, &Boxed::Value(Value::Int(3)))
        .expect("reply");
    let answer = pair.server.take_outgoing();
    assert!(answer.capacity() <= 128, "answer: {}", answer.capacity());
}
