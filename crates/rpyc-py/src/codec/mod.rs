//! Python objects on the wire: the brine sink and encoder over Python objects, boxing, and
//! the id_packs of local objects. The format itself (one reader, one writer) is `rpyc_wire`'s.

pub mod boxing;
pub mod by_value;
pub mod id_pack;
pub mod py_encode;
pub mod py_sink;
