//! Background jobs: long work (import, training, evaluation, report) runs on its
//! own thread and talks to the UI through a Tauri channel. The UI thread and the
//! async runtime never run a training or scoring step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tauri::ipc::Channel;

use spectrum_app::dto::{JobEvent, JobInfo, JobKind, JobResult, UiError};

struct Job {
    info: JobInfo,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The jobs of this window, by id.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    /// Set at exit: jobs stop sending to a window that is going away.
    closing: Arc<AtomicBool>,
    jobs: Mutex<BTreeMap<u64, Job>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("running", &self.list())
            .finish()
    }
}

/// What a job's body gets: a way to report progress and its cancel flag.
#[derive(Clone)]
pub struct Context {
    channel: Channel<JobEvent>,
    pub cancel: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    last_note: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl Context {
    pub fn send(&self, event: JobEvent) {
        // At exit the window is going away: the job only has to stop.
        if self.closing.load(Ordering::Relaxed) {
            return;
        }
        let _ = self.channel.send(event);
    }

    /// A free-text progress line, at most 20 per second.
    pub fn note(&self, text: &str) {
        let mut last = self.last_note.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(50)) {
            return;
        }
        *last = Some(Instant::now());
        self.send(JobEvent::Note {
            text: text.to_string(),
        });
    }
}

impl Jobs {
    /// Starts `body` on a new thread; its result (or error) ends the job as a
    /// `done`, `failed` or `cancelled` event on `channel`.
    pub fn start<F>(
        self: &Arc<Self>,
        kind: JobKind,
        label: String,
        channel: Channel<JobEvent>,
        body: F,
    ) -> Result<u64, UiError>
    where
        F: FnOnce(&Context) -> anyhow::Result<JobResult> + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let cancel = Arc::new(AtomicBool::new(false));
        let ctx = Context {
            channel,
            cancel: cancel.clone(),
            closing: self.closing.clone(),
            last_note: Arc::default(),
        };
        let info = JobInfo { id, kind, label };
        let jobs = Arc::clone(self);
        // Hold the lock while spawning so that the thread cannot finish (and
        // remove itself) before it is registered.
        let mut map = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let thread = std::thread::Builder::new()
            .name(format!("job-{id}-{kind:?}"))
            .spawn(move || {
                spectrum_app::flush_subnormals();
                let event = match body(&ctx) {
                    Ok(result) => JobEvent::Done { result },
                    Err(e) if spectrum_app::is_cancelled(&e) => JobEvent::Cancelled,
                    Err(_) if ctx.cancel.load(Ordering::Relaxed) => JobEvent::Cancelled,
                    Err(e) => JobEvent::Failed {
                        error: UiError::from(e),
                    },
                };
                ctx.send(event);
                jobs.jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
            })
            .map_err(|e| UiError::internal(format!("cannot start a thread: {e}")))?;
        map.insert(
            id,
            Job {
                info,
                cancel,
                thread: Some(thread),
            },
        );
        Ok(id)
    }

    pub fn cancel(&self, id: u64) -> bool {
        let map = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&id) {
            Some(job) => {
                job.cancel.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn list(&self) -> Vec<JobInfo> {
        let map = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(|j| j.info.clone()).collect()
    }

    /// Cancels every job and waits for its thread: the app exits with no work
    /// half-written (training stops within one step and keeps a checkpoint).
    pub fn shutdown(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let threads: Vec<JoinHandle<()>> = {
            let mut map = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            map.values_mut()
                .filter_map(|job| {
                    job.cancel.store(true, Ordering::Relaxed);
                    job.thread.take()
                })
                .collect()
        };
        if !threads.is_empty() {
            eprintln!(
                "spectrum-studio: cancelling {} job(s) before exit",
                threads.len()
            );
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tauri::ipc::InvokeResponseBody;

    #[test]
    fn a_job_computes_with_subnormals_flushed_to_zero() {
        // The test's own thread never asks for the mode, so the job thread
        // inherits nothing: only the job runner's own call can set it.
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let channel = Channel::new(move |body| {
            let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(body);
            Ok(())
        });
        let jobs = Arc::new(Jobs::default());
        jobs.start(JobKind::Train, "subnormals".into(), channel, |_| {
            anyhow::ensure!(
                spectrum_lm::fpu::flushes_here(),
                "the job thread kept subnormals"
            );
            Ok(JobResult::Report("flushed".into()))
        })
        .expect("start the job");
        let event = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the job's event");
        let InvokeResponseBody::Json(text) = event else {
            panic!("a JSON event");
        };
        let event: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(event["type"], "done", "{event}");
        assert_eq!(event["result"]["value"], "flushed", "{event}");
    }
}
