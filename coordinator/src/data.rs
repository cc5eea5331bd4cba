//! The coordinator's side of the data plane, for workers that share no filesystem with
//! it: it streams them the lines of input splits (only this job's splits, nothing else on
//! this machine), and stores the reduce output they send back (only from the task's
//! current attempt) by temp file and atomic rename into the output directory.

use crate::service::Shared;
use mr::atomic::AtomicFile;
use mr::data::{self, DataReply, DataRequest, Refusal};
use mr::ids::{Attempt, TaskId, TaskKind, WorkerId};
use mr::rpc::Io;
use mr::task::Split;
use std::io::{self, Seek, SeekFrom};
use std::path::Path;
use tracing::{debug, info, warn};

/// Answers one data request on an authenticated connection.
pub async fn serve(io: &mut Box<dyn Io>, shared: &Shared, out_dir: &Path) -> io::Result<()> {
    match data::read_frame(io).await? {
        DataRequest::Split(split) => send_split(io, shared, split).await,
        DataRequest::PutOutput {
            worker,
            task,
            attempt,
            len,
        } => store_output(io, shared, out_dir, worker, task, attempt, len).await,
        other => refuse(io, Refusal::NotServed(format!("{other:?}"))).await,
    }
}

async fn refuse(io: &mut Box<dyn Io>, why: Refusal) -> io::Result<()> {
    warn!(%why, "data request refused");
    data::write_frame(io, &DataReply::Refused(why)).await
}

async fn send_split(io: &mut Box<dyn Io>, shared: &Shared, split: Split) -> io::Result<()> {
    if !shared.lock().tasks.is_split(&split) {
        return refuse(io, Refusal::NotAnInput(split.to_string())).await;
    }
    let shown = split.to_string();
    let opened = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let mut file = std::fs::File::open(&split.path)?;
        let (start, end) = mr::split::owned_range(&file, split.offset, split.len)?;
        file.seek(SeekFrom::Start(start))?;
        Ok((file, end - start))
    })
    .await
    .map_err(io::Error::other)?;
    match opened {
        Ok((file, len)) => {
            debug!(split = %shown, len, "streaming a split");
            data::send_file(io, tokio::fs::File::from_std(file), len).await
        }
        Err(e) => {
            let why = Refusal::Unreadable {
                name: shown,
                error: e.to_string(),
            };
            refuse(io, why).await
        }
    }
}

async fn store_output(
    io: &mut Box<dyn Io>,
    shared: &Shared,
    out_dir: &Path,
    worker: WorkerId,
    task: TaskId,
    attempt: Attempt,
    len: u64,
) -> io::Result<()> {
    let not_current = |why| Refusal::NotCurrent { task, attempt, why };
    let current = |shared: &Shared| {
        if task.kind != TaskKind::Reduce {
            return Err(mr::task::Refusal::BadResult { got: 1, want: 0 });
        }
        shared.lock().tasks.check_current(worker, task, attempt)
    };
    if let Err(why) = current(shared) {
        return refuse(io, not_current(why)).await;
    }
    data::write_frame(io, &DataReply::Ok { len: 0 }).await?;
    let dest = out_dir.join(mr::task::output_name(task.index));
    // On any error below, the temp file is dropped and deleted.
    let out = AtomicFile::create(&dest)?;
    let mut file = out.tokio_file()?;
    data::copy_exact(io, &mut file, len).await?;
    drop(file); // flushed by copy_exact
    let prepared = tokio::task::spawn_blocking(move || out.prepare(true))
        .await
        .map_err(io::Error::other)??;
    // Checked again now that the bytes are here, and renamed under the lock (one quick
    // system call), so that an attempt revoked meanwhile never lands: see mr::atomic
    // for why this, and the shared directory's unchecked rename, are both safe.
    let stored = {
        let job = shared.lock();
        match job.tasks.check_current(worker, task, attempt) {
            Ok(()) => Ok(prepared.rename()),
            Err(r) => Err(r),
        }
    };
    match stored {
        Ok(renamed) => renamed?,
        Err(why) => return refuse(io, not_current(why)).await,
    }
    mr::atomic::sync_dir(out_dir);
    info!(%worker, %task, %attempt, len, output = %dest.display(), "stored reduce output");
    data::write_frame(io, &DataReply::Stored { path: dest }).await
}
