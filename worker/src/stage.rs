//! Moving a task's bytes between machines, around the local computation in
//! [`crate::exec`]: before it, the split from the coordinator and map output from the
//! workers that hold it; after it, the reduce output back to the coordinator. In a
//! shared directory none of this happens: every location is a path.

use crate::exec::Input;
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

/// A reduce task's inputs as read here; fetched copies are deleted when dropped.
pub struct LocalInputs {
    /// One per map task, in map order.
    pub inputs: Vec<Input>,
    /// Fetches asked again because a data server was busy.
    pub retries: u64,
    _copies: Vec<TempPath>,
}

/// Makes every input of a reduce task readable here: paths stay as they are, this
/// worker's own map output is read in place, and the rest is fetched into `dir`. An input
/// that cannot be fetched is lost map output, so that its map runs again.
///
/// Fetched copies go to [`PARALLEL_FETCHES`] lanes, each fetching its inputs one after
/// another into one temp file of its own, every copy a byte range of it: at M = 1,000
/// maps a reduce used to create 1,000 files, and on ext4 creating and deleting files
/// by the hundred thousand costs more than the bytes.
pub async fn fetch_map_outputs(
    inputs: &[MapOutput],
    own: Option<&Own>,
    dir: &Path,
    guard: &Guard,
) -> Result<LocalInputs, TaskFailure> {
    let mut placed: Vec<Option<Input>> = vec![None; inputs.len()];
    let mut lanes: Vec<Vec<usize>> = vec![Vec::new(); PARALLEL_FETCHES];
    let mut remote = 0;
    for (i, input) in inputs.iter().enumerate() {
        match &input.location {
            Location::Path(_) => placed[i] = Some(input.clone().into()),
            Location::Remote { server, name } => match own.filter(|o| &o.server == server) {
                Some(own) => {
                    let here = MapOutput {
                        location: Location::Path(own.dir.join(name)),
                        ..input.clone()
                    };
                    placed[i] = Some(here.into());
                }
                None => {
                    lanes[remote % PARALLEL_FETCHES].push(i);
                    remote += 1;
                }
            },
        }
    }
    let fetched = futures::future::try_join_all(
        lanes
            .into_iter()
            .filter(|l| !l.is_empty())
            .map(|lane| fetch_lane(inputs, lane, dir, guard)),
    )
    .await?;
    let mut retries = 0;
    let mut copies = Vec::with_capacity(fetched.len());
    for (got, copy, r) in fetched {
        retries += r;
        copies.push(copy);
        for (i, input) in got {
            placed[i] = Some(input);
        }
    }
    Ok(LocalInputs {
        // Every index was placed above or by its lane.
        inputs: placed.into_iter().flatten().collect(),
        retries,
        _copies: copies,
    })
}

/// Fetches `inputs[i]` for each `i` of `lane`, in turn, into one temp file in `dir`.
async fn fetch_lane(
    inputs: &[MapOutput],
    lane: Vec<usize>,
    dir: &Path,
    guard: &Guard,
) -> Result<(Vec<(usize, Input)>, TempPath, u64), TaskFailure> {
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| {
            TaskFailure::local(format!("cannot create a file in {}", dir.display()), &e)
        })?;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let (mut at, mut retries) = (0u64, 0u64);
    let mut got = Vec::with_capacity(lane.len());
    for i in lane {
        let input = &inputs[i];
        let Location::Remote { server, name } = &input.location else {
            continue;
        };
        let req = DataRequest::MapOutput { name: name.clone() };
        let len = data::get_counting(server, guard, &req, &mut file, &mut retries)
            .await
            .map_err(|e| fetch_failure(input, dir, server, name, e))?;
        let copy = MapOutput {
            location: Location::Path(path.to_path_buf()),
            ..input.clone()
        };
        got.push((
            i,
            Input {
                output: copy,
                range: Some((at, len)),
            },
        ));
        at += len;
    }
    file.flush()
        .await
        .map_err(|e| TaskFailure::local("cannot store a fetched copy", &e))?;
    Ok((got, path, retries))
}

/// What a failed fetch of `input` (`name` on `server`) says about it.
fn fetch_failure(
    input: &MapOutput,
    dir: &Path,
    server: &str,
    name: &str,
    e: DataError,
) -> TaskFailure {
    let lost = |cause, error: String| input.lost(cause, error);
    match e {
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
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use mr::ids::Attempt;
    use mr::intermediate::{Reader, Writer};
    use mr::task::intermediate_name;

    #[tokio::test]
    async fn fetched_copies_share_a_few_files_and_read_back_whole() {
        // A data server with partition 0 of 30 maps, each a few records.
        let served = tempfile::tempdir().unwrap();
        for m in 0..30u32 {
            let mut w = Writer::new(
                std::fs::File::create(served.path().join(intermediate_name(m, 0))).unwrap(),
            )
            .unwrap();
            for i in 0..m {
                w.push(format!("k{i:03}").as_bytes(), format!("m{m}").as_bytes())
                    .unwrap();
            }
            w.finish().unwrap();
        }
        let l = mr::rpc::Listener::bind(&mr::rpc::Addr::Tcp("127.0.0.1:0".into()))
            .await
            .unwrap();
        let server = l.local_addr().unwrap().to_string();
        let guard = Guard::tls(mr::auth::Token::new("t")).unwrap();
        let _task = crate::shuffle::serve(l, served.path().to_path_buf(), guard.clone());
        let wanted: Vec<MapOutput> = (0..30)
            .map(|m| MapOutput {
                map: m,
                attempt: Attempt(1),
                location: Location::Remote {
                    server: server.clone(),
                    name: intermediate_name(m, 0),
                },
            })
            .collect();
        let here = tempfile::tempdir().unwrap();
        let local = fetch_map_outputs(&wanted, None, here.path(), &guard)
            .await
            .unwrap();
        // At most one file per lane, not one per input.
        let files = std::fs::read_dir(here.path()).unwrap().count();
        assert!(files <= PARALLEL_FETCHES, "{files} files for 30 inputs");
        assert_eq!(local.inputs.len(), 30);
        for (m, input) in local.inputs.iter().enumerate() {
            assert_eq!(input.output.map, m as u32, "in map order");
            let Location::Path(path) = &input.output.location else {
                panic!("not local: {input:?}")
            };
            let (at, len) = input.range.expect("a range of a shared copy");
            let f = std::fs::File::open(path).unwrap();
            let mut r = Reader::new(mr::packed::Section::new(f, at, len)).unwrap();
            let (mut k, mut v, mut n) = (Vec::new(), Vec::new(), 0);
            while r.next_into(&mut k, &mut v).unwrap() {
                assert_eq!(v, format!("m{m}").as_bytes());
                n += 1;
            }
            assert_eq!(n, m, "map {m}'s records, checksum verified");
        }
        drop(local);
        assert_eq!(
            std::fs::read_dir(here.path()).unwrap().count(),
            0,
            "copies deleted"
        );
    }
}
