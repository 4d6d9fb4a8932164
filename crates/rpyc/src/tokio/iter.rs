//! Awaited iteration over a remote iterable ([`super::NetRef::iter`]): items fetched in
//! batches (`HANDLE_BUFFITER`, which every peer serves), handed out one by one.

use super::NetRef;
use crate::conn::ITER_CHUNK;
use crate::error::{Error, Result};
use crate::value::{FromValue, Value};
use rpyc_wire::consts::handler;
use std::collections::VecDeque;

/// The items of a remote iterable, awaited one by one ([`super::NetRef::iter`]); a batch of
/// up to 128 items is fetched when the buffer runs out. An error of the remote iterator
/// fails the batch it happens in (`HANDLE_BUFFITER` has no partial answer) and ends the
/// iteration.
///
/// ```no_run
/// # async fn run(obj: rpyc::tokio::NetRef) -> rpyc::Result<()> {
/// let mut items = obj.iter().await?;
/// while let Some(item) = items.next::<i64>().await? {
///     println!("{item}");
/// }
/// # Ok(())
/// # }
/// ```
pub struct Iter {
    it: NetRef,
    buffer: VecDeque<Value>,
    done: bool,
}

impl Iter {
    pub(super) fn new(it: NetRef) -> Iter {
        Iter {
            it,
            buffer: VecDeque::new(),
            done: false,
        }
    }

    /// The next item (`None` once the iterator is exhausted), converted to `T`.
    pub async fn next<T: FromValue>(&mut self) -> Result<Option<T>> {
        if self.buffer.is_empty() && !self.done {
            self.fetch().await?;
        }
        self.buffer.pop_front().map(T::from_value).transpose()
    }

    async fn fetch(&mut self) -> Result<()> {
        let args = vec![Value::from(&self.it), Value::Int(ITER_CHUNK)];
        let batch = self.it.shared().request(handler::BUFFITER, args).await;
        match batch {
            Ok(Value::Tuple(items)) => {
                self.done = items.is_empty();
                self.buffer.extend(items);
                Ok(())
            }
            Ok(other) => {
                self.done = true;
                Err(Error::Conversion(format!(
                    "the peer answered an iteration request with {}",
                    other.describe()
                )))
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }
}
