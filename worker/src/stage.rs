//! Moving a task's bytes between machines, around the local computation in
//! [`crate::exec`]: before it, the split from the coordinator and map output from the
//! workers that hold it; after it, the reduce output back to the coordinator. In a
//! shared directory none of this happens: every location is a path.

use futures::{StreamExt, TryStreamExt};
use mr::atomic::TEMP_PREFIX;
use mr::data::{self, DataError, DataRequest};
use mr::ids::WorkerId;
use mr::secure::Guard;
use mr::task::{Assignment, Location, LossCause, MapOutput, Split, TaskFailure};
use std::path::{Path, PathBuf};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

/// Map outputs fetched at once by one reduce task.
const PARALLEL_FETCHES: usize = 4;

/// This worker's own data server and the directory it serves.
#[derive(Debug, Clone)]
pub struct Own {
    /// The advertised address, as it appears in [`Location::Remote`].
    pub server: String,
    /// The map output directory.
    pub dir: PathBuf,
}

/// Streams the lines of `split` from the coordinator's data plane.
pub async fn fetch_split(
    coordinator: &str,
    guard: &Guard,
    split: &Split,
) -> Result<Vec<u8>, TaskFailure> {
    let mut bytes = Vec::with_capacity(split.len.min(1 << 30) as usize + 4096);
    data::get(
        coordinator,
        guard,
        &DataRequest::Split(split.clone()),
        &mut bytes,
    )
    .await
    .map_err(|e| match e {
        // The coordinator answered, and said no: the input itself is the problem
        // (unless it stayed too busy to answer, which is this worker's link).
        DataError::Refused {
            reason: mr::data::Refusal::Busy,
            ..
        } => TaskFailure::Network {
            what: format!(
                "the coordinator stayed too busy to stream {}",
                split.path.display()
            ),
            error: e.to_string(),
        },
        DataError::Refused { reason, .. } => TaskFailure::Input {
            path: split.path.clone(),
            error: reason.to_string(),
        },
        DataError::Local { fault, error } => TaskFailure::Local {
            fault,
            what: format!("cannot hold the split of {}", split.path.display()),
            error,
        },
        DataError::Failed { .. } => TaskFailure::Network {
            what: format!(
                "cannot stream {} from the coordinator",
                split.path.display()
            ),
            error: e.to_string(),
        },
    })?;
    Ok(bytes)
}

/// A reduce task's inputs as local paths; fetched copies are deleted when dropped.
pub struct LocalInputs {
    /// One per map task, in map order.
    pub inputs: Vec<MapOutput>,
    /// Fetches asked again because a data server was busy.
    pub retries: u64,
    _copies: Vec<TempPath>,
}

/// Makes every input of a reduce task readable here: paths stay as they are, this
/// worker's own map output is read in place, and the rest is fetched into `dir`. An input
/// that cannot be fetched is lost map output, so that its map runs again.
pub async fn fetch_map_outputs(
    inputs: &[MapOutput],
    own: Option<&Own>,
    dir: &Path,
    guard: &Guard,
) -> Result<LocalInputs, TaskFailure> {
    let fetches: Vec<_> = inputs
        .iter()
        .map(|input| fetch_one(input, own, dir, guard))
        .collect();
    let fetched: Vec<(MapOutput, Option<TempPath>, u64)> = futures::stream::iter(fetches)
        .buffered(PARALLEL_FETCHES)
        .try_collect()
        .await?;
    let retries = fetched.iter().map(|f| f.2).sum();
    let (inputs, copies) = fetched
        .into_iter()
        .map(|(i, c, _)| (i, c))
        .unzip::<_, _, Vec<_>, Vec<_>>();
    Ok(LocalInputs {
        inputs,
        retries,
        _copies: copies.into_iter().flatten().collect(),
    })
}

async fn fetch_one(
    input: &MapOutput,
    own: Option<&Own>,
    dir: &Path,
    guard: &Guard,
) -> Result<(MapOutput, Option<TempPath>, u64), TaskFailure> {
    let (server, name) = match &input.location {
        Location::Path(_) => return Ok((input.clone(), None, 0)),
        Location::Remote { server, name } => (server, name),
    };
    let local = |path: PathBuf| MapOutput {
        location: Location::Path(path),
        ..input.clone()
    };
    if let Some(own) = own.filter(|o| &o.server == server) {
        return Ok((local(own.dir.join(name)), None, 0));
    }
    let lost = |cause, error: String| input.lost(cause, error);
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| {
            TaskFailure::local(format!("cannot create a file in {}", dir.display()), &e)
        })?;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let req = DataRequest::MapOutput { name: name.clone() };
    let mut retries = 0;
    data::get_counting(server, guard, &req, &mut file, &mut retries)
        .await
        .map_err(|e| match e {
            // Our own disk failed, not the map output: never re-run a map for that.
            DataError::Local { fault, error } => TaskFailure::Local {
                fault,
                what: format!("cannot store a fetched copy in {}", dir.display()),
                error,
            },
            // A server that stayed busy past the patience is load, not loss: this
            // reducer retries (elsewhere), the map stays.
            DataError::Refused {
                reason: mr::data::Refusal::Busy,
                ..
            } => TaskFailure::Network {
                what: format!("{server} stayed too busy to serve {name}"),
                error: e.to_string(),
            },
            // Not there, or unreadable there: the output is lost.
            DataError::Refused {
                reason: mr::data::Refusal::NoSuchFile { .. },
                ..
            } => lost(LossCause::Missing, e.to_string()),
            DataError::Refused { .. } => lost(LossCause::Corrupt, e.to_string()),
            // Its server unreachable, or the transfer cut: lost, or this reducer's own
            // network (the coordinator weighs that).
            DataError::Failed { .. } => lost(LossCause::Unreachable, e.to_string()),
        })?;
    file.flush()
        .await
        .map_err(|e| TaskFailure::local("cannot store a fetched copy", &e))?;
    Ok((local(path.to_path_buf()), Some(path), retries))
}

/// Sends the reduce output at `path` to the coordinator, which stores it if `a` is still
/// the task's current attempt. Returns where the coordinator stored it.
pub async fn upload_output(
    coordinator: &str,
    guard: &Guard,
    worker: WorkerId,
    a: &Assignment,
    path: &Path,
) -> Result<PathBuf, DataError> {
    let failed = |e: std::io::Error| DataError::Local {
        fault: mr::task::LocalFault::of(&e),
        error: format!("{}: {e}", path.display()),
    };
    let mut file = tokio::fs::File::open(path).await.map_err(failed)?;
    let len = file.metadata().await.map_err(failed)?.len();
    let req = DataRequest::PutOutput {
        worker,
        task: a.task,
        attempt: a.attempt,
        len,
    };
    data::put(coordinator, guard, &req, &mut file, len).await
}
