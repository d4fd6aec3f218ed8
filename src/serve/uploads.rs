//! Upload bodies against one memory budget: what a body costs is the bytes of it that have
//! arrived, charged chunk by chunk to a budget shared by every request, so that clients that
//! open uploads and then stall hold only what they sent, and never a slot that a complete upload
//! from someone else needs.
//!
//! When a chunk does not fit the budget, the server sheds the body in flight that has been idle
//! longest (its last chunk the oldest): that request is answered 503 and its bytes are freed at
//! once. A body that is complete (waiting to decode, or decoding) is never shed: while the budget
//! is full of those, a chunk waits for one of them to finish, within the body timeout. So the bytes
//! held by all bodies never pass the budget, and the ones given up are the slowest, not the newest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::sync::Notify;

/// How much of an over-limit body is read and thrown away before answering 413, so that a client
/// that sends its whole body before reading the answer sees the 413 rather than a reset connection.
/// The bytes thrown away are not held, so they cost no budget.
const DRAIN_LIMIT: usize = 64 << 20;

/// The bytes of the upload bodies held in memory, across all requests.
pub(crate) struct BodyBudget {
    limit: usize,
    state: Mutex<BudgetState>,
    /// Woken when bytes are given back.
    freed: Notify,
}

#[derive(Default)]
struct BudgetState {
    held: usize,
    peak: usize,
    shed: u64,
    next_id: u64,
    /// The bodies still arriving: the ones that may be shed.
    arriving: HashMap<u64, Arriving>,
}

struct Arriving {
    held: usize,
    /// When its last chunk came (its start, before the first).
    last_chunk: Instant,
    shed: Arc<Shed>,
}

/// Set when a body is shed, waking its reader.
#[derive(Default)]
struct Shed {
    flag: AtomicBool,
    wake: Notify,
}

/// What `/stats` says of the uploads.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct UploadStats {
    pub budget_bytes: usize,
    pub held_bytes: usize,
    pub peak_bytes: usize,
    pub arriving: usize,
    pub shed: u64,
}

/// Why an upload's body was not read whole.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the per-upload limit (at least this many bytes were sent).
    TooLarge { sent: usize },
    /// Shed to make room for other uploads: it was the one idle longest.
    Shed,
    /// The connection failed while the body was arriving.
    Broken(String),
}

impl BodyBudget {
    pub(crate) fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget { limit, state: Mutex::default(), freed: Notify::new() })
    }

    pub(crate) fn stats(&self) -> UploadStats {
        let state = self.lock();
        UploadStats {
            budget_bytes: self.limit,
            held_bytes: state.held,
            peak_bytes: state.peak,
            arriving: state.arriving.len(),
            shed: state.shed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BudgetState> {
        // The state stays consistent under every early return, so a poisoned lock is still good.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads `body` whole, charging its bytes as they arrive. The bytes stay charged until the
    /// returned [`HeldBody`] is dropped. Over `max_bytes`, the body is read on (up to
    /// [`DRAIN_LIMIT`], holding nothing) and refused.
    pub(crate) async fn read(self: &Arc<Self>, mut body: Body, max_bytes: usize) -> Result<HeldBody, BodyError> {
        let mut held = self.register();
        let mut data = Vec::new();
        let mut sent = 0usize;
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = held.shed.wake.notified() => None,
            };
            if held.shed.flag.load(Ordering::Acquire) {
                return Err(BodyError::Shed);
            }
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            let Ok(chunk) = frame.into_data() else { continue };
            sent += chunk.len();
            if sent <= max_bytes {
                held.charge(chunk.len()).await?;
                data.extend_from_slice(&chunk);
            } else {
                // Once, at the first chunk over the limit: what is drained after it holds nothing.
                if held.held > 0 {
                    held.release_all();
                    data = Vec::new();
                }
                if sent > max_bytes + DRAIN_LIMIT {
                    break;
                }
            }
        }
        if sent > max_bytes {
            return Err(BodyError::TooLarge { sent });
        }
        held.complete();
        Ok(HeldBody { bytes: data.into(), _charge: held })
    }

    fn register(self: &Arc<Self>) -> Charge {
        let shed = Arc::new(Shed::default());
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.arriving.insert(id, Arriving { held: 0, last_chunk: Instant::now(), shed: Arc::clone(&shed) });
        Charge { budget: Arc::clone(self), id, held: 0, shed }
    }
}

/// A complete body, its bytes charged to the budget until it is dropped.
pub(crate) struct HeldBody {
    pub bytes: Bytes,
    _charge: Charge,
}

/// One body's share of the budget.
struct Charge {
    budget: Arc<BodyBudget>,
    id: u64,
    held: usize,
    shed: Arc<Shed>,
}

impl Charge {
    /// Adds `bytes` to this body's share: at once if they fit, else after shedding the body idle
    /// longest, else once complete bodies give bytes back.
    async fn charge(&mut self, bytes: usize) -> Result<(), BodyError> {
        let budget = Arc::clone(&self.budget);
        loop {
            let freed = budget.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so that bytes given back after it still wake us.
            freed.as_mut().enable();
            {
                let mut state = budget.lock();
                if self.shed.flag.load(Ordering::Acquire) {
                    return Err(BodyError::Shed);
                }
                if state.held + bytes <= budget.limit {
                    state.held += bytes;
                    state.peak = state.peak.max(state.held);
                    let me = state.arriving.get_mut(&self.id).expect("a body arriving is registered");
                    me.held += bytes;
                    me.last_chunk = Instant::now();
                    self.held += bytes;
                    return Ok(());
                }
                let idle_longest = state
                    .arriving
                    .iter()
                    .filter(|(id, body)| **id != self.id && body.held > 0)
                    .min_by_key(|(id, body)| (body.last_chunk, **id))
                    .map(|(id, _)| *id);
                if let Some(victim) = idle_longest {
                    let victim = state.arriving.remove(&victim).expect("found above");
                    state.held -= victim.held;
                    state.shed += 1;
                    victim.shed.flag.store(true, Ordering::Release);
                    victim.shed.wake.notify_one();
                    continue;
                }
            }
            tokio::select! {
                () = &mut freed => {}
                () = self.shed.wake.notified() => {}
            }
        }
    }

    /// Gives back every byte held (a body over its limit is read on without keeping it).
    fn release_all(&mut self) {
        let mut state = self.budget.lock();
        if let Some(me) = state.arriving.get_mut(&self.id) {
            me.held = 0;
            state.held -= self.held;
        }
        self.held = 0;
        drop(state);
        self.budget.freed.notify_waiters();
    }

    /// The body is whole: it can no longer be shed, and its bytes stay charged until it is dropped.
    fn complete(&mut self) {
        self.budget.lock().arriving.remove(&self.id);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut state = self.budget.lock();
        let shed_already = self.shed.flag.load(Ordering::Acquire);
        state.arriving.remove(&self.id);
        if !shed_already {
            state.held -= self.held;
        }
        drop(state);
        self.budget.freed.notify_waiters();
    }
}
