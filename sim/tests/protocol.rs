//! The protocol under the simulator and the model checker, as part of the test suite.
//! More seeds: `cargo run --release -p sim -- --seeds 1000000`; a long soak runs with
//! `MR_SIM_SEEDS`.

use std::time::Instant;

#[test]
fn the_simulator_finds_no_broken_rule_in_ten_thousands_of_seeds() {
    let n: u64 = std::env::var("MR_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = sim::scratch().unwrap();
    let started = Instant::now();
    // Two threads: CI machines have two cores.
    let half = n / 2;
    let (a, b) = std::thread::scope(|s| {
        let d = dir.path();
        let a = s.spawn(move || sim::run_seeds(0, half, d));
        let b = s.spawn(move || sim::run_seeds(half, n - half, d));
        (a.join().unwrap(), b.join().unwrap())
    });
    for r in [&a, &b] {
        if let Err(v) = r {
            panic!("{v}\n--- trace ---\n{}", v.trace);
        }
    }
    let (a, b) = (a.unwrap(), b.unwrap());
    eprintln!(
        "{n} seeds in {:.1?}: {} events, {} coordinator restarts, {} messages dropped, {} duplicated, {} reports refused, {} stale loss reports, {} doubted, {} false loss reports of which {} re-ran a map",
        started.elapsed(),
        a.events + b.events,
        a.restarts + b.restarts,
        a.dropped + b.dropped,
        a.duplicated + b.duplicated,
        a.refused + b.refused,
        a.stale_losses + b.stale_losses,
        a.doubted + b.doubted,
        a.false_reports + b.false_reports,
        a.believed + b.believed,
    );
    // The faults were really met, not just planned.
    assert!(
        u64::from(a.restarts + b.restarts) > n / 4,
        "coordinator restarts"
    );
    assert!(a.stale_losses + b.stale_losses > 0, "stale loss reports");
    assert!(a.refused + b.refused > n / 10, "late reports");
    assert!(a.excluded + b.excluded > 0, "workers excluded");
    // A reducer that cannot reach anyone is mostly doubted, not believed.
    let (false_reports, believed) = (a.false_reports + b.false_reports, a.believed + b.believed);
    assert!(
        believed * 10 < false_reports,
        "{believed} of {false_reports} false loss reports re-ran a map"
    );
}

#[test]
fn a_seed_replays_exactly() {
    let dir = sim::scratch().unwrap();
    for seed in [3, 77, 1234] {
        let a = sim::run_seed(seed, dir.path(), true).unwrap();
        let b = sim::run_seed(seed, dir.path(), true).unwrap();
        assert_eq!(a.events, b.events, "seed {seed}");
        assert_eq!(a.sim_time, b.sim_time, "seed {seed}");
    }
}

#[test]
fn the_model_check_proves_every_invariant_for_small_jobs() {
    // 2 maps, 1 reduce: the whole state space. 2 maps, 2 reduces: every path of up to
    // 18 steps (the whole space is too big for the suite; MR_MODEL_FULL=1 explores it).
    let full = std::env::var_os("MR_MODEL_FULL").is_some();
    for (maps, reduces, depth) in [(2, 1, None), (2, 2, (!full).then_some(18))] {
        let started = Instant::now();
        let c = sim::model::check_to(sim::model::Mr::new(maps, reduces, 2), depth);
        eprintln!(
            "model check, {maps} maps, {reduces} reduces, 2 workers, depth {depth:?}: {} states in {:.1?}; proved: {:?}",
            c.states,
            started.elapsed(),
            c.proved
        );
        assert!(c.failed.is_empty(), "{:?}", c.failed);
        assert_eq!(c.proved.len(), 5, "{:?}", c.proved);
    }
}
