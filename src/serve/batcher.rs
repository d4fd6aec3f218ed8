//! The queue in front of the one model: a dedicated OS thread owns the model (its wgpu calls block
//! until the device is done, so they must not run on the async threads), takes jobs from a bounded
//! channel, and runs the predictions that arrive together as one batch.
//!
//! Gathering: the thread blocks for the first job, then takes more until it holds `max_batch`
//! predictions or `max_wait` has passed since the first arrived, whichever comes first. The batch
//! runs through the smallest of its fixed-batch predictors (1, 2, 4, ... up to `max_batch`) that
//! holds it, so a lone request does not pay for 15 padding images. Every image's row is computed
//! on its own (no layer mixes the images of a batch in inference mode), so a batched answer is the
//! answer that image would get alone.
//!
//! Explanations (saliency, Grad-CAM) run one at a time on the same thread, between batches, through
//! the same [`ModelSession`] as the CLI: Grad-CAM of a model without a convolution is saliency,
//! with the session's note.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use crate::model::explain::ExplainMethod;
use crate::report::Prediction;
pub use crate::workflow::session::Explained;
use crate::workflow::session::ModelSession;
use crate::{Error, Result};

/// How predictions are gathered into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOptions {
    /// The most images run as one batch (1 turns batching off).
    pub max_batch: usize,
    /// How long the first job of a batch waits for company.
    pub max_wait: Duration,
    /// Jobs waiting beyond this are refused (the server answers 503) instead of queued.
    pub queue_capacity: usize,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self { max_batch: 16, max_wait: Duration::from_millis(5), queue_capacity: 1024 }
    }
}

/// One image's prediction, and how many images shared its batch.
#[derive(Clone, Debug)]
pub struct Predicted {
    pub prediction: Prediction,
    pub batch_images: usize,
}

enum Job {
    Predict { image: Vec<f32>, reply: oneshot::Sender<Result<Predicted>> },
    Explain { image: Vec<f32>, class: Option<usize>, method: ExplainMethod, reply: oneshot::Sender<Result<Explained>> },
}

/// Counts of what the model thread ran, for `/stats` and the load test.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BatchStats {
    /// Prediction batches run.
    pub batches: u64,
    /// Images predicted, over all batches.
    pub images: u64,
    /// `images / batches` (0 before the first batch).
    pub mean_batch: f64,
    /// The largest batch run.
    pub largest_batch: usize,
    /// `histogram[k]`: batches of k images (index 0 unused).
    pub histogram: Vec<u64>,
    /// Explanations run.
    pub explanations: u64,
    /// Seconds the thread spent running the model.
    pub busy_seconds: f64,
    /// Jobs refused because the queue was full.
    pub refused: u64,
}

/// The submitting side of the queue; cheap to clone.
#[derive(Clone)]
pub struct BatcherHandle {
    jobs: SyncSender<Job>,
    stats: Arc<Mutex<BatchStats>>,
}

/// Why a job got no answer.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue holds `queue_capacity` jobs already.
    Busy,
    /// The model thread has stopped.
    Stopped,
    /// The model failed on this job.
    Model(Error),
}

impl BatcherHandle {
    /// Queues one image (NCHW f32 of the model's input) and waits for its prediction.
    pub async fn predict(&self, image: Vec<f32>) -> std::result::Result<Predicted, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Predict { image, reply })?;
        answer.await.map_err(|_| SubmitError::Stopped)?.map_err(SubmitError::Model)
    }

    /// Queues one image for an explanation of `class` (the predicted class when None).
    pub async fn explain(
        &self,
        image: Vec<f32>,
        class: Option<usize>,
        method: ExplainMethod,
    ) -> std::result::Result<Explained, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Explain { image, class, method, reply })?;
        answer.await.map_err(|_| SubmitError::Stopped)?.map_err(SubmitError::Model)
    }

    /// A copy of the counts so far.
    pub fn stats(&self) -> BatchStats {
        self.stats.lock().expect("stats lock").clone()
    }

    fn submit(&self, job: Job) -> std::result::Result<(), SubmitError> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.stats.lock().expect("stats lock").refused += 1;
                Err(SubmitError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }
}

/// The batch sizes a session needs for `max_batch`: 1, 2, 4, ... and `max_batch`.
pub fn batch_sizes(max_batch: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> =
        std::iter::successors(Some(1usize), |&s| Some(s * 2)).take_while(|&s| s < max_batch).collect();
    sizes.push(max_batch);
    sizes
}

/// Starts the model thread that owns `session` (opened with [`batch_sizes`] of
/// `options.max_batch`); the thread ends when every handle is dropped and the queue is empty.
pub fn spawn(session: ModelSession, options: BatchOptions) -> Result<(BatcherHandle, JoinHandle<()>)> {
    if options.max_batch == 0 || options.queue_capacity == 0 {
        return Err(Error::Invalid("batching: max batch and queue capacity must be at least 1".into()));
    }
    let (jobs, receiver) = mpsc::sync_channel(options.queue_capacity);
    let stats = Arc::new(Mutex::new(BatchStats { histogram: vec![0; options.max_batch + 1], ..Default::default() }));
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread_stats = stats.clone();
    let thread = std::thread::Builder::new()
        .name("wgcnn-model".into())
        .spawn(move || {
            let _ = ready_tx.send(Ok(()));
            ModelThread { session, options, stats: thread_stats }.run(receiver);
        })
        .map_err(|e| Error::Invalid(format!("cannot start the model thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((BatcherHandle { jobs, stats }, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(Error::Invalid("the model thread stopped while building the model".into()))
        }
    }
}

struct ModelThread {
    /// Predictors of batch 1, 2, 4, ... up to `max_batch`.
    session: ModelSession,
    options: BatchOptions,
    stats: Arc<Mutex<BatchStats>>,
}

impl ModelThread {
    fn run(&mut self, jobs: Receiver<Job>) {
        // A job taken while gathering that is not a prediction waits here for the next round.
        let mut held: Option<Job> = None;
        loop {
            let first = match held.take() {
                Some(job) => job,
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                },
            };
            let (image, reply) = match first {
                Job::Predict { image, reply } => (image, reply),
                Job::Explain { image, class, method, reply } => {
                    let _ = reply.send(self.explain(&image, class, method));
                    continue;
                }
            };
            let mut batch = vec![(image, reply)];
            let deadline = Instant::now() + self.options.max_wait;
            while batch.len() < self.options.max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                let next = if left.is_zero() {
                    jobs.try_recv().map_err(|_| ())
                } else {
                    jobs.recv_timeout(left).map_err(|_| ())
                };
                match next {
                    Ok(Job::Predict { image, reply }) => batch.push((image, reply)),
                    Ok(other) => {
                        held = Some(other);
                        break;
                    }
                    Err(()) => break,
                }
            }
            self.predict_batch(batch);
        }
    }

    fn predict_batch(&mut self, batch: Vec<(Vec<f32>, oneshot::Sender<Result<Predicted>>)>) {
        let start = Instant::now();
        let n = batch.len();
        let images: Vec<f32> = batch.iter().flat_map(|(image, _)| image.iter().copied()).collect();
        let predictions = self.session.predict(&images);
        {
            let mut stats = self.stats.lock().expect("stats lock");
            stats.batches += 1;
            stats.images += n as u64;
            stats.mean_batch = stats.images as f64 / stats.batches as f64;
            stats.largest_batch = stats.largest_batch.max(n);
            stats.histogram[n] += 1;
            stats.busy_seconds += start.elapsed().as_secs_f64();
        }
        match predictions {
            Ok(predictions) => {
                for ((_, reply), prediction) in batch.into_iter().zip(predictions) {
                    let _ = reply.send(Ok(Predicted { prediction, batch_images: n }));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(Error::Invalid(format!("the model failed on this batch: {message}"))));
                }
            }
        }
    }

    fn explain(&mut self, image: &[f32], class: Option<usize>, method: ExplainMethod) -> Result<Explained> {
        let start = Instant::now();
        let explained = self.session.explain(image, class, method)?.pop().expect("one image, one explanation");
        let mut stats = self.stats.lock().expect("stats lock");
        stats.explanations += 1;
        stats.busy_seconds += start.elapsed().as_secs_f64();
        Ok(explained)
    }
}
