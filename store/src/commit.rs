//! Making staged blobs durable beside the stream. An fsync waits for the
//! disk (tens of milliseconds each on a busy one, whatever the blob's size),
//! so an import hands each verified blob to a few threads that fsync it and
//! only then rename it under its digest, while the reader goes on with the
//! next. The order per blob is the store's rule: temp file, fsync, rename;
//! the caller fsyncs the directory after [`Committer::finish`].

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tempfile::NamedTempFile;

use crate::StoreError;
use crate::fsutil::io_err;

/// Threads making blobs durable at once (concurrent fsyncs share the
/// journal's commits).
const WORKERS: usize = 4;
/// Verified blobs waiting for a thread (each an open file).
const QUEUE: usize = 16;

type Job = (NamedTempFile, PathBuf);

/// Verified staged blobs on their way under their digests.
pub(crate) struct Committer {
    jobs: Option<mpsc::SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    failed: Arc<Mutex<Option<StoreError>>>,
}

impl Committer {
    pub(crate) fn start() -> Committer {
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let failed = Arc::new(Mutex::new(None));
        let workers = (0..WORKERS)
            .map(|_| {
                let (queue, failed) = (queue.clone(), failed.clone());
                std::thread::spawn(move || {
                    loop {
                        let job = queue.lock().expect("commit queue").recv();
                        let Ok((staged, target)) = job else { return };
                        if let Err(e) = durable(staged, target) {
                            failed.lock().expect("commit failure").get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        Committer { jobs: Some(jobs), workers, failed }
    }

    /// fsync `staged` and rename it to `target` (the caller checked its
    /// digest), on a thread; an earlier blob's failure is returned here.
    pub(crate) fn commit(&self, staged: NamedTempFile, target: PathBuf) -> Result<(), StoreError> {
        if let Some(e) = self.failed.lock().expect("commit failure").take() {
            return Err(e);
        }
        let jobs = self.jobs.as_ref().expect("committing before finish");
        jobs.send((staged, target)).expect("commit threads run until finish");
        Ok(())
    }

    /// Wait until every blob handed over is in place (or failed): the
    /// first failure, if any.
    pub(crate) fn finish(&mut self) -> Result<(), StoreError> {
        self.jobs = None;
        for w in self.workers.drain(..) {
            w.join().expect("commit thread does not panic");
        }
        match self.failed.lock().expect("commit failure").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Blobs handed over are verified: they still go in place.
        let _ = self.finish();
    }
}

/// Durable before it is visible under its digest.
fn durable(staged: NamedTempFile, target: PathBuf) -> Result<(), StoreError> {
    staged.as_file().sync_all().map_err(io_err(staged.path()))?;
    staged
        .persist(&target)
        .map_err(|e| StoreError::Io { path: target.clone(), source: e.error })?;
    Ok(())
}
