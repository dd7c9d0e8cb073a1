//! The two bodies the layer puts in place: [`ReplayBody`] for the request the inner service
//! reads, [`ObservedBody`] for the response the client reads. Both pass bytes on exactly.

mod capture;
mod observed;
mod replay;

pub(crate) use capture::{Capture, Captured};
pub use observed::ObservedBody;
pub(crate) use observed::ResponseTap;
pub use replay::ReplayBody;

use bytes::{Bytes, BytesMut};

/// Joins chunks into one buffer: no copy for a single chunk, one copy otherwise.
fn join_chunks(chunks: &mut Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut joined = BytesMut::with_capacity(len);
    for chunk in chunks.drain(..) {
        joined.extend_from_slice(&chunk);
    }
    joined.freeze()
}
