//! The batches of a pass prepared on a background thread while the model works on the one before.

use std::ops::ControlFlow;
use std::sync::mpsc;
use std::time::Instant;

use super::events::BatchTiming;
use crate::Result;
use crate::model::PADDING_LABEL;
use crate::train::BatchSource;

/// One batch of host images and labels.
pub(super) struct BatchBuffer {
    pub(super) images: Vec<f32>,
    pub(super) labels: Vec<u32>,
}

impl BatchBuffer {
    fn new(batch: usize, sample_len: usize) -> Self {
        Self { images: vec![0.0; batch * sample_len], labels: vec![PADDING_LABEL; batch] }
    }

    /// Loads the samples at `indices`; the rows after them become padding (zeros, [`PADDING_LABEL`]).
    fn load(&mut self, source: &dyn BatchSource, indices: &[usize], epoch: usize) -> Result<()> {
        source.fill(indices, epoch, &mut self.images, &mut self.labels)?;
        self.images[indices.len() * source.sample_len()..].fill(0.0);
        self.labels[indices.len()..].fill(PADDING_LABEL);
        Ok(())
    }
}

/// Hands `consume` the batches of `chunks` in order. A background thread prepares each batch
/// while `consume` works on the one before (two buffers in turn), so the data is the same as
/// when prepared in line and training stays bit-for-bit reproducible. Stops at the first error
/// or when `consume` breaks; the time spent is added to `timing`.
pub(super) fn prefetched<'a>(
    source: &dyn BatchSource,
    chunks: impl Iterator<Item = &'a [usize]> + Send,
    batch: usize,
    epoch: usize,
    timing: &mut BatchTiming,
    mut consume: impl FnMut(&BatchBuffer) -> Result<ControlFlow<()>>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = mpsc::sync_channel::<(Result<BatchBuffer>, f64)>(1);
        let (free_tx, free_rx) = mpsc::channel::<BatchBuffer>();
        for _ in 0..2 {
            free_tx.send(BatchBuffer::new(batch, source.sample_len())).expect("the receiver is alive");
        }
        // The wait for a batch counts from when the trainer is ready for it: for the first, from
        // before the preparing thread starts, so the wait is never shorter than its preparation.
        let mut waiting = Instant::now();
        scope.spawn(move || {
            for indices in chunks {
                // Both ends close when the consumer returns, which ends this thread.
                let Ok(mut buffer) = free_rx.recv() else { return };
                let started = Instant::now();
                let loaded = buffer.load(source, indices, epoch).map(|()| buffer);
                if ready_tx.send((loaded, started.elapsed().as_secs_f64())).is_err() {
                    return;
                }
            }
        });
        let mut first = true;
        loop {
            let Ok((loaded, prepare_seconds)) = ready_rx.recv() else { return Ok(()) };
            let waited = waiting.elapsed().as_secs_f64();
            match std::mem::replace(&mut first, false) {
                true => timing.first_batch_seconds += waited,
                false => timing.wait_seconds += waited,
            }
            timing.prepare_seconds += prepare_seconds;
            timing.batches += 1;
            let buffer = loaded?;
            if consume(&buffer)?.is_break() {
                return Ok(());
            }
            // Fails only once the producer has finished, when the buffer is no longer needed.
            let _ = free_tx.send(buffer);
            waiting = Instant::now();
        }
    })
}
