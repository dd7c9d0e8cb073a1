//! The one writer: a thread that takes validated batches off a bounded queue and stores
//! everything waiting in one durable commit (group commit), then answers each sender.
//!
//! Owns the queue's bounds (batches and bytes): a full queue is refused at once, so the
//! HTTP side answers 429 instead of holding memory. Never validates and never answers HTTP.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::store::{Committed, Store, StoreError};
use crate::wire::IncomingBatch;

/// Batches stored together in one commit, at most.
const GROUP_BATCHES: usize = 256;
/// Events stored together in one commit, at most (a commit is never split, only capped).
const GROUP_EVENTS: usize = 50_000;
/// While batches come from several senders at once, a commit of fewer events than this
/// waits up to [`LINGER`] for more: fewer, larger commits write far fewer pages per event.
const LINGER_EVENTS: usize = 2_000;
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

enum Job {
    Store {
        batch: IncomingBatch,
        reply: oneshot::Sender<Result<Committed, StoreError>>,
        _permit: OwnedSemaphorePermit,
    },
    Retain {
        cutoff: i64,
        limit: usize,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
}

/// Why a batch was not stored.
#[derive(Debug)]
pub enum WriteError {
    /// The queue is full: try again shortly (429).
    Busy,
    /// The store failed, or the writer is gone (503).
    Store(StoreError),
}

/// The handle the HTTP side writes through; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    bytes: Arc<Semaphore>,
    kib_budget: u32,
}

impl Writer {
    /// Starts the writer thread on `store`; at most `queue_bytes` of event JSON wait.
    pub fn start(store: Arc<dyn Store>, queue_bytes: usize) -> std::io::Result<Self> {
        let (jobs, receiver) = mpsc::channel(GROUP_BATCHES * 4);
        std::thread::Builder::new()
            .name("collector-writer".into())
            .spawn(move || run(store.as_ref(), receiver))?;
        let kib_budget = u32::try_from(queue_bytes / 1024).unwrap_or(u32::MAX).max(1);
        Ok(Self {
            jobs,
            bytes: Arc::new(Semaphore::new(kib_budget as usize)),
            kib_budget,
        })
    }

    /// Stores `batch` durably, or says why not. Never waits for room in the queue.
    pub async fn store(&self, batch: IncomingBatch) -> Result<Committed, WriteError> {
        let kib = u32::try_from(batch.bytes / 1024 + 1)
            .unwrap_or(u32::MAX)
            .min(self.kib_budget);
        let permit = Arc::clone(&self.bytes)
            .try_acquire_many_owned(kib)
            .map_err(|_| WriteError::Busy)?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job::Store {
                batch,
                reply,
                _permit: permit,
            })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => WriteError::Busy,
                mpsc::error::TrySendError::Closed(_) => gone(),
            })?;
        answer.await.map_err(|_| gone())?.map_err(WriteError::Store)
    }

    /// Deletes up to `limit` events older than `cutoff` (ms), between commits.
    pub async fn retain(&self, cutoff: i64, limit: usize) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Retain {
                cutoff,
                limit,
                reply,
            })
            .await
            .map_err(|_| StoreError("the writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError("the writer stopped".into()))?
    }
}

fn gone() -> WriteError {
    WriteError::Store(StoreError("the writer stopped".into()))
}

fn run(store: &dyn Store, mut receiver: mpsc::Receiver<Job>) {
    let mut group = Vec::new();
    let mut replies = Vec::new();
    let mut held = None;
    let mut busy = false;
    loop {
        let first = match held.take() {
            Some(job) => job,
            None => match receiver.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        let mut events = 0;
        let mut lingered = false;
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Store {
                    batch,
                    reply,
                    _permit,
                } => {
                    events += batch.events.len();
                    group.push(batch);
                    replies.push((reply, _permit));
                }
                Job::Retain {
                    cutoff,
                    limit,
                    reply,
                } => {
                    if group.is_empty() {
                        let _ = reply.send(store.delete_before(cutoff, limit));
                    } else {
                        held = Some(Job::Retain {
                            cutoff,
                            limit,
                            reply,
                        });
                    }
                    break;
                }
            }
            if group.len() >= GROUP_BATCHES || events >= GROUP_EVENTS {
                break;
            }
            next = receiver.try_recv().ok();
            if next.is_none() && busy && events < LINGER_EVENTS && !lingered {
                lingered = true;
                std::thread::sleep(LINGER);
                next = receiver.try_recv().ok();
            }
        }
        busy = group.len() > 1;
        if group.is_empty() {
            continue;
        }
        match store.commit(&group) {
            Ok(results) => {
                for ((reply, _permit), committed) in replies.drain(..).zip(results) {
                    if let Err(error) = &committed {
                        tracing::error!(%error, "storing a batch failed");
                    }
                    let _ = reply.send(committed);
                }
            }
            Err(error) => {
                tracing::error!(%error, batches = group.len(), "storing events failed");
                for (reply, _permit) in replies.drain(..) {
                    let _ = reply.send(Err(StoreError(error.0.clone())));
                }
            }
        }
        group.clear();
    }
}
