//! The [`DataLoader`]: an epoch's batches, prepared in order on the calling thread or
//! by `num_workers` background threads.
//!
//! With workers, batch `k` of the epoch is a job; each worker takes the next job,
//! loads its samples and collates them, and sends the batch back tagged with `k`. The
//! consumer hands batches out in `k` order (a small reorder buffer), so the batches
//! and their order do not depend on the number of workers or on which worker was
//! faster. At most `num_workers × prefetch_factor` batches are prepared ahead of the
//! consumer (a bounded queue: memory stays flat on a long epoch). A worker's error is
//! delivered in place of its batch; a panic in a dataset's `get` is caught and
//! delivered as [`DataError::Worker`]; dropping the epoch stops and joins the workers.

use crate::augment::Transform;
use crate::collate::{Batch, Collate, Stack};
use crate::dataset::{Dataset, Sample};
use crate::rng::SplitMix64;
use crate::sampler::{BatchSampler, RandomSampler, Sampler, SequentialSampler};
use crate::{invalid, DataError, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Batches of a dataset, epoch by epoch (`torch.utils.data.DataLoader`).
#[derive(Clone)]
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    sampler: Arc<dyn Sampler>,
    batch: BatchSampler,
    collate: Arc<dyn Collate>,
    transform: Option<(Arc<dyn Transform>, u64)>,
    num_workers: usize,
    prefetch_factor: usize,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("samples", &self.dataset.len())
            .field("batch_size", &self.batch.batch_size)
            .field("drop_last", &self.batch.drop_last)
            .field("num_workers", &self.num_workers)
            .field("prefetch_factor", &self.prefetch_factor)
            .finish()
    }
}

impl DataLoader {
    /// Batches of `batch_size` in dataset order, stacked, on the calling thread.
    pub fn new(dataset: Arc<dyn Dataset>, batch_size: usize) -> DataLoader {
        DataLoader {
            dataset,
            sampler: Arc::new(SequentialSampler),
            batch: BatchSampler {
                batch_size,
                drop_last: false,
            },
            collate: Arc::new(Stack),
            transform: None,
            num_workers: 0,
            prefetch_factor: 2,
        }
    }

    /// A fresh random order every epoch, from `seed` (`shuffle=True`).
    pub fn shuffle(self, seed: u64) -> DataLoader {
        self.sampler(RandomSampler::new(seed))
    }

    /// The order of each epoch ([`crate::WeightedRandomSampler`], draws with
    /// replacement, or your own [`Sampler`]).
    pub fn sampler(mut self, s: impl Sampler + 'static) -> DataLoader {
        self.sampler = Arc::new(s);
        self
    }

    /// Drop the last batch when it is shorter than `batch_size`.
    pub fn drop_last(mut self, drop: bool) -> DataLoader {
        self.batch.drop_last = drop;
        self
    }

    /// How samples become a batch ([`crate::PadCollate`] for variable lengths).
    pub fn collate(mut self, c: impl Collate + 'static) -> DataLoader {
        self.collate = Arc::new(c);
        self
    }

    /// A per-sample augmentation ([`crate::augment`]), run in the workers, drawing from
    /// a generator seeded by `(seed, epoch, position in the epoch)`: the same batches
    /// whatever the number of workers, new draws every epoch.
    pub fn transform(mut self, t: impl Transform + 'static, seed: u64) -> DataLoader {
        self.transform = Some((Arc::new(t), seed));
        self
    }

    /// Background threads preparing batches (0: on the calling thread).
    pub fn num_workers(mut self, n: usize) -> DataLoader {
        self.num_workers = n;
        self
    }

    /// Batches each worker may prepare ahead of the consumer (at least 1).
    pub fn prefetch_factor(mut self, n: usize) -> DataLoader {
        self.prefetch_factor = n.max(1);
        self
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The batches (dataset indices) of epoch `epoch`.
    ///
    /// # Errors
    /// A zero batch size, an empty dataset, or `drop_last` leaving no batch.
    pub fn plan(&self, epoch: u64) -> Result<Vec<Vec<usize>>> {
        if self.batch.batch_size == 0 {
            return Err(invalid("DataLoader", "batch_size must be at least 1"));
        }
        let len = self.dataset.len();
        if len == 0 {
            return Err(DataError::EmptyDataset);
        }
        let order = self.sampler.indices(len, epoch);
        if let Some(&index) = order.iter().find(|&&i| i >= len) {
            return Err(DataError::Index { index, len });
        }
        let batches = self.batch.batches(&order);
        if batches.is_empty() {
            return Err(DataError::NoBatch {
                samples: order.len(),
                batch_size: self.batch.batch_size,
            });
        }
        Ok(batches)
    }

    /// Number of batches in epoch `epoch`.
    ///
    /// # Errors
    /// As [`DataLoader::plan`].
    pub fn len(&self, epoch: u64) -> Result<usize> {
        self.plan(epoch).map(|b| b.len())
    }

    /// The batches of epoch `epoch`, in order (an iterator of `Result<Batch>`).
    ///
    /// # Errors
    /// As [`DataLoader::plan`].
    pub fn epoch(&self, epoch: u64) -> Result<Epoch> {
        let jobs = Arc::new(self.plan(epoch)?);
        let shared = Arc::new(Shared {
            dataset: self.dataset.clone(),
            collate: self.collate.clone(),
            transform: self.transform.clone(),
            epoch,
            batch_size: self.batch.batch_size,
            jobs,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            window: Mutex::new(0),
            moved: Condvar::new(),
        });
        let ahead = self.num_workers * self.prefetch_factor;
        *lock(&shared.window) = ahead;
        let mut workers = Vec::with_capacity(self.num_workers);
        let (tx, rx) = channel();
        for w in 0..self.num_workers {
            let s = shared.clone();
            let tx = tx.clone();
            workers.push(std::thread::spawn(move || worker(w, &s, &tx)));
        }
        Ok(Epoch {
            shared,
            rx: (self.num_workers > 0).then_some(rx),
            workers,
            pending: BTreeMap::new(),
            at: 0,
            ahead,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a worker panicked while holding it; the counter it
    // guards is still meaningful.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// State shared by an epoch's consumer and workers.
struct Shared {
    dataset: Arc<dyn Dataset>,
    collate: Arc<dyn Collate>,
    transform: Option<(Arc<dyn Transform>, u64)>,
    epoch: u64,
    batch_size: usize,
    jobs: Arc<Vec<Vec<usize>>>,
    /// Next job to take.
    next: AtomicUsize,
    stop: AtomicBool,
    /// Jobs below this index may be started (consumer position + prefetch).
    window: Mutex<usize>,
    moved: Condvar,
}

impl Shared {
    /// Loads and collates batch `k`.
    fn make(&self, k: usize) -> Result<Batch> {
        let mut samples: Vec<(usize, Sample)> = Vec::with_capacity(self.jobs[k].len());
        for (j, &i) in self.jobs[k].iter().enumerate() {
            let mut s = self.dataset.get(i)?;
            if let Some((t, seed)) = &self.transform {
                let position = k * self.batch_size + j;
                s = t.apply(s, &mut SplitMix64::for_sample(*seed, self.epoch, position))?;
            }
            samples.push((i, s));
        }
        self.collate.collate(&samples)
    }
}

fn worker(w: usize, s: &Shared, tx: &std::sync::mpsc::Sender<(usize, Result<Batch>)>) {
    loop {
        let k = s.next.fetch_add(1, Ordering::SeqCst);
        if k >= s.jobs.len() {
            return;
        }
        // Wait until the consumer's window reaches job k.
        {
            let mut win = lock(&s.window);
            while k >= *win && !s.stop.load(Ordering::SeqCst) {
                win = s
                    .moved
                    .wait(win)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.make(k)))
            .unwrap_or_else(|p| {
                let message = p
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panicked".to_string());
                Err(DataError::Worker { worker: w, message })
            });
        if tx.send((k, r)).is_err() {
            return;
        }
    }
}

/// One epoch's batches, in order ([`DataLoader::epoch`]).
pub struct Epoch {
    shared: Arc<Shared>,
    rx: Option<Receiver<(usize, Result<Batch>)>>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<usize, Result<Batch>>,
    at: usize,
    ahead: usize,
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Epoch(batch {} of {}, {} workers)",
            self.at,
            self.shared.jobs.len(),
            self.workers.len()
        )
    }
}

impl Epoch {
    /// Number of batches in the epoch.
    pub fn num_batches(&self) -> usize {
        self.shared.jobs.len()
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let k = self.at;
        if k >= self.shared.jobs.len() {
            return None;
        }
        self.at += 1;
        let Some(rx) = &self.rx else {
            return Some(self.shared.make(k));
        };
        // Let the workers run up to `ahead` batches past this one.
        *lock(&self.shared.window) = k + 1 + self.ahead;
        self.shared.moved.notify_all();
        loop {
            if let Some(r) = self.pending.remove(&k) {
                return Some(r);
            }
            match rx.recv() {
                Ok((j, r)) => {
                    self.pending.insert(j, r);
                }
                Err(_) => {
                    return Some(Err(DataError::Worker {
                        worker: 0,
                        message: format!("every worker stopped before batch {k}"),
                    }))
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.shared.jobs.len() - self.at;
        (n, Some(n))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.moved.notify_all();
        // Workers blocked on `send` cannot be: the channel is unbounded; drop the
        // receiver first anyway so a send fails fast.
        self.rx = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}
