//! The negotiation of rpyc-rs extensions (docs/protocol.md#rpyc-rs-extensions).
//!
//! The connecting side sends an asynchronous `HANDLE_PING` whose data is
//! `(HELLO, VERSION, features)`. Upstream echoes ping data, so it never sees anything it
//! does not know; an rpyc-rs peer answers `(HELLO_ACK, VERSION, features, ...)` and both
//! sides use the features both named.

use crate::brine::Value;

pub const HELLO: &str = "rpyc-rs/hello";
pub const HELLO_ACK: &str = "rpyc-rs/hello-ack";
pub const VERSION: i64 = 1;

/// `next()` on a proxy fetches items in batches (`HANDLE_ITER_BATCH`).
pub const ITER_BATCH: &str = "iter_batch";
/// The accepting side describes its root's class in its answer (no `HANDLE_INSPECT`).
pub const ROOT_CLASS: &str = "root_class";
/// `HANDLE_DEL` gets no answer.
pub const QUIET_DEL: &str = "quiet_del";
/// A requester that stops waiting sends `HANDLE_CANCEL(seq)`.
pub const CANCEL: &str = "cancel";
/// Containers and arrays may travel by value (`LABEL_BY_VALUE`, `HANDLE_OBTAIN`;
/// docs/by-value.md).
pub const BY_VALUE: &str = "by_value";
/// What this implementation offers, sorted.
pub const FEATURES: [&str; 5] = [BY_VALUE, CANCEL, ITER_BATCH, QUIET_DEL, ROOT_CLASS];

/// The data of the hello ping: `(HELLO, VERSION, features)`.
pub fn hello() -> Value {
    announce(HELLO)
}

/// An answer to a hello: `(HELLO_ACK, VERSION, features)` (a driver may append more).
pub fn ack() -> Value {
    announce(HELLO_ACK)
}

fn announce(word: &str) -> Value {
    Value::Tuple(vec![
        Value::str(word),
        Value::Int(VERSION),
        Value::Tuple(FEATURES.iter().map(|f| Value::str(*f)).collect()),
    ])
}

/// Which of the two messages a value is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    Hello,
    Ack,
}

/// When `data` is the announcement `kind` (a hello: exactly three items; an answer: three
/// or more), the features it names that we offer too; `None` otherwise.
pub fn features_of(data: &Value, kind: Announcement) -> Option<Vec<&'static str>> {
    let items = data.as_tuple()?;
    let (word, fits) = match kind {
        Announcement::Hello => (HELLO, items.len() == 3),
        Announcement::Ack => (HELLO_ACK, items.len() >= 3),
    };
    if !fits || items.first()?.as_str()? != word {
        return None;
    }
    let named = items.get(2)?.as_tuple().unwrap_or_default();
    Some(
        FEATURES
            .iter()
            .copied()
            .filter(|f| named.iter().any(|n| n.as_str() == Some(f)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_use_what_both_named() {
        assert_eq!(
            features_of(&hello(), Announcement::Hello),
            Some(FEATURES.to_vec())
        );
        let mut answer = ack().into_tuple().expect("tuple");
        answer[2] = Value::Tuple(vec![Value::str(QUIET_DEL), Value::str("teleport")]);
        answer.push(Value::None); // the root description a driver appends
        assert_eq!(
            features_of(&Value::Tuple(answer), Announcement::Ack),
            Some(vec![QUIET_DEL])
        );
        // an upstream peer echoes the hello: not an answer
        assert_eq!(features_of(&hello(), Announcement::Ack), None);
        assert_eq!(features_of(&Value::str(HELLO), Announcement::Hello), None);
    }
}
