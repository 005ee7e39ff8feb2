//! The work queue: jobs spread over every endpoint, `concurrency` requests
//! in flight per endpoint, results in job order.

use super::*;

impl RemoteModel {
    /// Runs `jobs` on every endpoint, `concurrency` at a time each; results in
    /// job order. The first failure stops the remaining jobs.
    pub(super) fn parallel<J: Send, T: Send>(
        &self,
        jobs: Vec<J>,
        run: &(dyn Fn(&Endpoint, J) -> Result<T> + Sync),
    ) -> Result<Vec<T>> {
        let count = jobs.len();
        let slots = (self.endpoints.len() * self.spec.concurrency.max(1)).min(count);
        let queue = Mutex::new(jobs.into_iter().enumerate().collect::<VecDeque<_>>());
        let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
        let failure: Mutex<Option<LmError>> = Mutex::new(None);
        let failed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for slot in 0..slots {
                let endpoint = &self.endpoints[slot % self.endpoints.len()];
                let (queue, results, failure, failed) = (&queue, &results, &failure, &failed);
                scope.spawn(move || {
                    while !failed.load(Ordering::Relaxed) {
                        let Some((i, job)) = queue.lock().ok().and_then(|mut q| q.pop_front())
                        else {
                            break;
                        };
                        match run(endpoint, job) {
                            Ok(value) => {
                                if let Ok(mut r) = results.lock() {
                                    r[i] = Some(value);
                                }
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                if let Ok(mut f) = failure.lock() {
                                    f.get_or_insert(e);
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        results
            .into_inner()
            .map_err(|_| remote("a request thread panicked"))?
            .into_iter()
            .map(|r| r.ok_or_else(|| remote("a request was not answered")))
            .collect()
    }
}
