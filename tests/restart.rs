//! Coordinator crash and restart: SIGKILL the coordinator during the map phase and
//! during the reduce phase, start the same command again; the job picks up from the
//! journal, the output is correct, and no map task whose output was intact runs twice.

use coordinator::journal::Record;
use mr::ids::TaskKind;
use mr_tests::{wait_until, Dir, Exit};
use std::collections::BTreeSet;
use std::time::Duration;

/// The journal's records (a line cut short by the kill is not one).
fn records(d: &Dir) -> Vec<Record> {
    d.journal()
}

/// The map tasks the journal records as done.
fn maps_done(d: &Dir) -> BTreeSet<u32> {
    let mut done = BTreeSet::new();
    for record in records(d) {
        match record {
            Record::Done { task, .. } if task.kind == TaskKind::Map => {
                done.insert(task.index);
            }
            Record::Reopened { task } => {
                done.remove(&task.index);
            }
            _ => {}
        }
    }
    done
}

/// Runs the 8 books through `testlib_slow` with two workers (env `env`), kills the
/// coordinator once `kill_when(maps done)` holds, restarts it, and checks the outcome.
/// Returns the maps that were done at the kill and the maps the restarted coordinator
/// handed out (from the journal: the Assigned records after its Start record).
fn crash_and_resume(
    env: &[(&str, &str)],
    kill_when: impl Fn(usize) -> bool,
) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let d = Dir::new();
    let inputs = d.copy_books();
    let want = d.expected("testlib_slow", &inputs);
    let mut args = vec!["--task-timeout", "30"];
    args.extend(inputs.iter().map(String::as_str));

    let mut first = d.coordinator(&args);
    let mut workers: Vec<_> = (0..2).map(|_| d.worker("testlib_slow", env)).collect();
    wait_until(Duration::from_secs(60), "the kill point", || {
        kill_when(maps_done(&d).len())
    });
    first.kill();
    let before = maps_done(&d);

    let mut again = vec!["--report", "report.json"];
    again.extend(&args);
    let mut second = d.coordinator(&again);
    second.assert_exit(Duration::from_secs(90), Exit::Code(0));
    for w in &mut workers {
        w.assert_exit(Duration::from_secs(20), Exit::Code(0));
    }
    // Resumed, not started afresh: the journal goes on with a second incarnation (a
    // fresh start would have replaced it with a first).
    let records = records(&d);
    let restart = records
        .iter()
        .position(|r| matches!(r, Record::Start { incarnation: 2 }))
        .unwrap_or_else(|| panic!("no resume; the journal:\n{records:?}"));
    let assigned_after: BTreeSet<u32> = records[restart..]
        .iter()
        .filter_map(|r| match r {
            Record::Assigned { task, .. } if task.kind == TaskKind::Map => Some(task.index),
            _ => None,
        })
        .collect();
    mr_tests::assert_same_lines(&d.output_lines(), &want);
    // Each worker registered with the new coordinator once: its heartbeat and its task
    // loop both heard "register again", and only one of them did.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["workers"],
        2,
        "ghost workers after the restart:\n{log}",
        log = second.stderr()
    );
    assert!(
        d.temp_leftovers().is_empty(),
        "temp files left: {:?}",
        d.temp_leftovers()
    );
    (before, assigned_after)
}

#[test]
fn coordinator_killed_in_the_map_phase_resumes_without_rerunning_done_maps() {
    let (before, after) =
        crash_and_resume(&[("MR_SLOW_MAP_MS", "700")], |done| (2..8).contains(&done));
    assert!(
        !before.is_empty() && before.len() < 8,
        "killed with {before:?} done"
    );
    let rerun: BTreeSet<u32> = after.intersection(&before).copied().collect();
    assert!(
        rerun.is_empty(),
        "maps {rerun:?} were done before the crash but ran again (after the restart: {after:?})"
    );
    assert!(
        !after.is_empty(),
        "the unfinished maps ran after the restart"
    );
}

#[test]
fn coordinator_killed_in_the_reduce_phase_runs_no_map_again() {
    let (before, again) =
        crash_and_resume(&[("MR_SLOW_FIRST_REDUCE_MS", "3000")], |done| done == 8);
    assert_eq!(before.len(), 8);
    assert!(
        again.is_empty(),
        "maps {again:?} ran again after a crash in the reduce phase"
    );
}
