//! The connection core (`rpyc_wire::conn::Connection`) fed arbitrary peer bytes, as a server
//! or as a client with requests in flight, answering every request it is handed.
//!
//! Input: one byte of settings (bit 0 `bind_threads`, bit 1 the peer said `quiet_del`,
//! bit 2 the client role, bits 3-5 the chunking of what follows), then the peer's bytes.
//!
//! Checks, besides no panic and no hang:
//! - everything the core sends decodes as frames and messages (under the same limits);
//! - an error other than the memory budget's ends the connection: every later call says
//!   `Closed`, and no request is left awaited;
//! - the object table only shrinks (the peer can release our objects, never add to them),
//!   and the pending table never exceeds `max_pending_requests`;
//! - allocation stays proportional to the input (the frame and inflate limits are small).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rpyc_wire::brine::Value;
use rpyc_wire::budget::MemoryBudget;
use rpyc_wire::conn::{Config, Connection, Event};
use rpyc_wire::consts::handler;
use rpyc_wire::frame::FrameDecoder;
use rpyc_wire::message::{decode_payload, Boxed, IdPack};
use rpyc_wire::{Limits, WireError};
use rpyc_wire_fuzz::peak_during;

const LIMITS: Limits = Limits {
    max_frame_size: 16 * 1024,
    max_decompressed_size: 64 * 1024,
    max_nesting_depth: 64,
};
const MAX_PENDING: usize = 4;
/// Objects of ours the peer starts out holding (it may name them in LOCAL_REF and DEL).
const EXPORTED: [(u64, u64); 3] = [(1, 1), (1, 2), (7, 9)];

fn config(flags: u8) -> Config {
    Config {
        limits: LIMITS,
        bind_threads: flags & 1 != 0,
        max_pending_requests: MAX_PENDING,
        max_local_objects: 8,
        max_inbound_memory: 1 << 20,
        ..Config::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let (_, peak) = peak_during(|| run(flags, stream));
    let bound = 256 * stream.len() + (2 << 20);
    assert!(
        peak <= bound,
        "{peak} bytes allocated for {} input bytes",
        stream.len()
    );
});

fn run(flags: u8, stream: &[u8]) {
    let config = config(flags);
    let mut conn: Connection<u32> = Connection::new(config.clone(), &MemoryBudget::new());
    for (i, key) in EXPORTED.iter().enumerate() {
        conn.export(*key, || i as u32).expect("room");
    }
    if flags & 2 != 0 {
        conn.session_mut().set_peer_features(vec!["quiet_del"]);
    }
    if flags & 4 != 0 {
        // A client: requests in flight, so that the peer's answers find waiters.
        conn.request(handler::GETROOT, &[]).expect("room");
        conn.request(handler::PING, &[Boxed::Value(Value::str("x"))])
            .expect("room");
        conn.notify(handler::DEL, &[Boxed::LocalRef(IdPack::new("m.C", 5, 6))])
            .expect("sent");
    }
    let mut sent = conn.take_outgoing();
    let chunk = [1usize, 2, 7, 64, 512, 4096, 1 << 16, usize::MAX][usize::from((flags >> 3) & 7)];
    let mut failed = None;
    for piece in stream.chunks(chunk.max(1)) {
        match conn.receive(piece) {
            Ok(()) => {}
            Err(WireError::MemoryBudget { .. }) => break,
            Err(e) => {
                assert!(matches!(e, WireError::Closed(_)), "{e:?}");
                break;
            }
        }
        if let Err(e) = serve(&mut conn) {
            failed = Some(e);
            break;
        }
        sent.extend(conn.take_outgoing());
        assert!(conn.session().requests.awaited() <= MAX_PENDING);
        assert!(
            conn.objects().len() <= EXPORTED.len(),
            "the peer added objects"
        );
    }
    if let Some(e) = failed {
        if !matches!(e, WireError::MemoryBudget { .. }) {
            assert!(
                conn.session().ended().is_some(),
                "{e:?} left the connection open"
            );
            assert_eq!(conn.session().requests.awaited(), 0);
            assert!(matches!(conn.poll_event(), Err(WireError::Closed(_))));
            assert!(matches!(conn.receive(b"\0"), Err(WireError::Closed(_))));
            assert!(matches!(
                conn.request(handler::PING, &[]),
                Err(WireError::Closed(_))
            ));
        }
    }
    sent.extend(conn.take_outgoing());
    check_sent(&sent, &config);
}

/// Answer every event as a service would: echo, `None`, or an exception.
fn serve(conn: &mut Connection<u32>) -> Result<(), WireError> {
    while let Some(event) = conn.poll_event()? {
        let answered = match event {
            Event::Request {
                seq,
                thread,
                args: Ok(args),
                handler,
            } => match handler % 3 {
                0 => conn.reply(&seq, thread, &Boxed::tuple(args)),
                1 => conn.reply(&seq, thread, &Boxed::Value(Value::None)),
                _ => conn.reply_exception(&seq, thread, &Value::str("ValueError")),
            },
            Event::Request {
                seq,
                thread,
                args: Err(e),
                ..
            } => conn.reply_exception(&seq, thread, &Value::str(e.to_string())),
            Event::UnknownHandler {
                seq,
                thread,
                handler,
            } => conn.reply_exception(
                &seq,
                thread,
                &Value::Tuple(vec![Value::str("KeyError"), handler]),
            ),
            Event::Reply { .. } | Event::Exception { .. } => Ok(()),
            Event::Closed => return Err(WireError::Closed("closed by the peer".into())),
        };
        match answered {
            // What we cannot send (a seq or a value nested past the limit) is refused
            // before anything is written; the connection goes on.
            Ok(()) | Err(WireError::OutgoingTooDeep { .. }) => {}
            Err(WireError::OutgoingTooLarge { .. }) | Err(WireError::Unencodable(_)) => {}
            Err(e) => panic!("answering failed: {e:?}"),
        }
    }
    Ok(())
}

/// Everything the core sent is well-formed frames holding well-formed messages.
fn check_sent(sent: &[u8], config: &Config) {
    let mut frames = FrameDecoder::new(config.limits);
    frames.feed(sent).expect("room");
    while let Some(payload) = frames.next_payload().expect("our frames decode") {
        decode_payload(&payload, config.bind_threads, &config.limits).expect("our messages decode");
    }
    assert_eq!(frames.buffered(), 0, "a frame of ours was cut short");
}
