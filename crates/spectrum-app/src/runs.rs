//! Runs as the use cases see them: finding one by id or name, naming new
//! ones, and claiming one to resume it. A run belongs to the process that
//! holds its lease (`spectrum_store::Lease`); claiming takes the lease first,
//! so two processes never run one run, and a run another process is running
//! is refused with that process's id and host.

use anyhow::Result;
use spectrum_store::{Lease, RunKind, RunRecord, RunRef, RunStatus, Store};

use crate::{AppError, Fix, Listing, Problem, Studio};

pub(crate) fn find_run(store: &Store, run: &RunRef) -> Result<RunRecord> {
    store.find_run(run)?.ok_or_else(|| {
        AppError::not_found(format!("no run {:?}", run.to_string()), Listing::Runs).into()
    })
}

/// `name`, or `name-2`, `name-3`... if a model or run already has it.
pub(crate) fn unique_name(store: &Store, name: String) -> Result<String> {
    let taken = |n: &str| -> Result<bool> {
        Ok(store.find_model(n)?.is_some() || store.find_run(&RunRef::Name(n.into()))?.is_some())
    };
    if !taken(&name)? {
        return Ok(name);
    }
    for i in 2.. {
        let candidate = format!("{name}-{i}");
        if !taken(&candidate)? {
            return Ok(candidate);
        }
    }
    unreachable!("some suffix is free")
}

/// Refuses a run of another kind than `kind`, pointing at the way to resume it.
pub(crate) fn require_kind(record: &RunRecord, kind: RunKind) -> Result<()> {
    if record.kind == kind {
        return Ok(());
    }
    let what = match kind {
        RunKind::Train => "a training run",
        RunKind::Eval => "an evaluation",
    };
    Err(AppError::bad_input(format!(
        "run {} ({}) is a {} run, not {what}",
        record.id, record.name, record.kind
    ))
    .with_fix(Fix::Resume {
        run: record.id,
        run_kind: record.kind,
    })
    .into())
}

/// Claims run `run` of `kind` to resume it: takes its lease (refused while
/// another process, or another job of this one, runs it), then checks that it
/// has not finished. The record returned is read under the lease.
pub(crate) fn claim(store: &mut Store, run: &RunRef, kind: RunKind) -> Result<(RunRecord, Lease)> {
    let found = find_run(store, run)?;
    require_kind(&found, kind)?;
    let lease = store.take_lease(found.id)?;
    let record = store.run(found.id)?.ok_or_else(|| {
        AppError::not_found(format!("run {} was removed", found.id), Listing::Runs)
    })?;
    if record.status == RunStatus::Finished {
        let fix = match kind {
            RunKind::Train => "export its model, or start a new run",
            RunKind::Eval => "start a new evaluation, or compare this one",
        };
        return Err(Problem::say(
            format!("run {} ({}) has already finished", record.id, record.name),
            fix,
        )
        .into());
    }
    Ok((record, lease))
}

impl Studio {
    /// Removes run `run` from the store with everything recorded of it;
    /// refused, naming the holder, while a process runs it. Its files (the
    /// run folder, a registered tuned model) are kept.
    pub fn remove_run(&self, run: &RunRef) -> Result<RunRecord> {
        let mut store = self.store()?;
        let record = find_run(&store, run)?;
        store.remove_run(record.id)?;
        Ok(record)
    }

    /// Asks the process that runs `run` to stop, as Ctrl-C in its terminal
    /// would: it ends the step or task it is in, keeps what is done (the run
    /// stays resumable) and lets the run go. Waits up to `wait` for that.
    /// Refused, with the way out, when no process runs the run, when the
    /// holder is on another machine, or when it is not the `spectrum` command
    /// (the desktop app cancels its own jobs).
    pub fn stop_run(&self, run: &RunRef, wait: std::time::Duration) -> Result<StopOutcome> {
        let store = self.store()?;
        let record = find_run(&store, run)?;
        let Some(holder) = record.holder.clone() else {
            return Err(AppError::bad_input(format!(
                "run {} ({}) is not running: no process holds it",
                record.id, record.name
            ))
            .with_fix(Fix::Resume {
                run: record.id,
                run_kind: record.kind,
            })
            .into());
        };
        if !holder.is_on_this_host() {
            return Err(AppError::bad_input(format!(
                "run {} ({}) is run by {holder}, another machine",
                record.id, record.name
            ))
            .with_fix(Fix::say(format!(
                "stop it on {}: Ctrl-C in its terminal, or `spectrum runs stop {}` there",
                holder.host, record.id
            )))
            .into());
        }
        interrupt(holder.pid, &record)?;
        let start = std::time::Instant::now();
        loop {
            let now = find_run(&store, &RunRef::Id(record.id))?;
            let released = now.holder.is_none();
            if released || start.elapsed() >= wait {
                return Ok(StopOutcome {
                    run: now,
                    holder,
                    released,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// What [`Studio::stop_run`] did: the run as it stands afterwards, the process
/// that was asked to stop, and whether it let the run go within the wait.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StopOutcome {
    pub run: RunRecord,
    pub holder: spectrum_store::RunHolder,
    pub released: bool,
}

/// Sends SIGINT to `pid` after checking it is the `spectrum` command: the
/// desktop app would quit on it (its jobs are cancelled from its jobs bar),
/// and a stranger must never be signalled.
#[cfg(unix)]
fn interrupt(pid: u32, record: &RunRecord) -> Result<()> {
    let out = std::process::Command::new("ps")
        .args(["-o", "comm=", "-p", &pid.to_string()])
        .output()
        .map_err(|e| AppError::internal(format!("cannot run `ps` to check process {pid}: {e}")))?;
    let command = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let name = std::path::Path::new(&command)
        .file_name()
        .map_or(command.clone(), |n| n.to_string_lossy().into_owned());
    if name != "spectrum" {
        let fix = if name.starts_with("spectrum-studio") {
            "cancel it in the desktop app, from its jobs bar"
        } else {
            "stop that process yourself if it is the one running the run"
        };
        return Err(AppError::bad_input(format!(
            "run {} ({}) is held by process {pid}, which is {}, not the `spectrum` command",
            record.id,
            record.name,
            if name.is_empty() {
                "gone or unknown".to_string()
            } else {
                format!("`{name}`")
            }
        ))
        .with_fix(Fix::say(fix))
        .into());
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map_err(|e| AppError::internal(format!("cannot run `kill`: {e}")))?;
    if !status.success() {
        return Err(AppError::internal(format!("`kill -INT {pid}` failed ({status})")).into());
    }
    Ok(())
}

#[cfg(not(unix))]
fn interrupt(pid: u32, record: &RunRecord) -> Result<()> {
    Err(AppError::bad_input(format!(
        "run {} ({}) is run by process {pid}: stopping another process is not supported on this system",
        record.id, record.name
    ))
    .with_fix(Fix::say("press Ctrl-C in the terminal that runs it"))
    .into())
}
