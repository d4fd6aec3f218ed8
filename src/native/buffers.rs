//! Memory the native backend reuses step after step: tensors come from a [`BufferPool`] and go
//! back to it when dropped, and each thread keeps scratch buffers for its im2col tiles and fused ops. After a
//! model's first step, a step of the same batch allocates nothing large.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::LocalKey;

/// Buffers free for reuse, shared by every [`Buffer`] taken from the pool, each with whether it
/// has been used since the last [`BufferPool::trim`].
pub struct BufferPool<T> {
    free: Arc<Mutex<Vec<FreeBuffer<T>>>>,
}

/// A buffer in the pool, and whether it was used since the last trim.
type FreeBuffer<T> = (Vec<T>, bool);

impl<T> Clone for BufferPool<T> {
    fn clone(&self) -> Self {
        Self { free: self.free.clone() }
    }
}

impl<T> Default for BufferPool<T> {
    fn default() -> Self {
        Self { free: Arc::default() }
    }
}

impl<T: Copy + Default> BufferPool<T> {
    /// A buffer of `len` values whose contents are unspecified (a reused buffer keeps its old
    /// values): every op writes each element of its output.
    pub fn take(&self, len: usize) -> Buffer<T> {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let data = match free.iter().position(|(b, _)| b.len() == len) {
            Some(at) => free.swap_remove(at).0,
            None => vec![T::default(); len],
        };
        Buffer { data, pool: self.clone() }
    }

    /// Frees the buffers nobody took since the last trim: called after every step, it keeps the
    /// memory of one step's shapes, and lets go of a short last batch's once full batches resume.
    pub fn trim(&self) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.retain(|(_, used)| *used);
        free.iter_mut().for_each(|(_, used)| *used = false);
    }
}

/// A tensor's values, returned to its pool when dropped.
pub struct Buffer<T> {
    data: Vec<T>,
    pool: BufferPool<T>,
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        self.pool.free.lock().unwrap_or_else(PoisonError::into_inner).push((data, true));
    }
}

impl<T> Deref for Buffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data
    }
}

impl<T> DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.data
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static OUTPUT_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer of at least `len` values (contents unspecified). The
/// buffer grows to the largest request and stays, so it is allocated once per thread. `f` must not
/// start parallel work (a stolen task on this thread would ask for the same buffer).
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&SCRATCH, len, f)
}

/// As [`with_scratch`], a second buffer for an op's output that a fused op consumes at once (a
/// convolution's image before its pool), so that `f` may itself use [`with_scratch`].
pub fn with_output_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    with_buffer(&OUTPUT_SCRATCH, len, f)
}

fn with_buffer<R>(key: &'static LocalKey<RefCell<Vec<f32>>>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    key.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        f(&mut scratch[..len])
    })
}
