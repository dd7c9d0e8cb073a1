//! The two bodies the layer puts in place: [`ReplayBody`] for the request the inner service
//! reads, [`ObservedBody`] for the response the client reads. Both pass bytes on exactly,
//! unless an opt-in insight rewrites a `tools/list` answer or answers a call itself
//! ([`Rewriter`]).

mod capture;
mod observed;
mod replay;
mod rewrite;

pub(crate) use capture::{Capture, Captured};
pub use observed::ObservedBody;
pub(crate) use observed::ResponseTap;
pub use replay::ReplayBody;
pub(crate) use rewrite::Rewriter;

use bytes::{Bytes, BytesMut};

/// A single chunk at most this large is copied when it is kept (see [`join_chunks`]).
const COPY_AT_MOST: usize = 64 * 1024;

/// Joins chunks into one buffer: one copy for several chunks. A single chunk is kept as it
/// is, unless `exact` and it is small: then it is copied, so that what is kept is only its
/// bytes (a chunk may share a much larger buffer, which it would keep alive).
fn join_chunks(chunks: &mut Vec<Bytes>, len: usize, exact: bool) -> Bytes {
    if chunks.len() == 1 {
        let chunk = chunks.pop().unwrap_or_default();
        return match exact && chunk.len() <= COPY_AT_MOST {
            true => Bytes::copy_from_slice(&chunk),
            false => chunk,
        };
    }
    let mut joined = BytesMut::with_capacity(len);
    for chunk in chunks.drain(..) {
        joined.extend_from_slice(&chunk);
    }
    joined.freeze()
}
