//! `mr-sim`: runs the deterministic simulator over a range of seeds, or replays one seed
//! with its trace.
//!
//! ```text
//! mr-sim                       # seeds 0..10000
//! mr-sim --seeds 100000 --from 5
//! mr-sim --seed 1234 --trace   # replay one seed, printing every step
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut from = 0u64;
    let mut n = 10_000u64;
    let mut one = None;
    let mut trace = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |flag: &str| -> Option<u64> {
            let v = it.next().and_then(|v| v.parse().ok());
            if v.is_none() {
                eprintln!("mr-sim: {flag} needs a number");
            }
            v
        };
        match a.as_str() {
            "--from" => match num("--from") {
                Some(v) => from = v,
                None => return ExitCode::from(2),
            },
            "--seeds" => match num("--seeds") {
                Some(v) => n = v,
                None => return ExitCode::from(2),
            },
            "--seed" => match num("--seed") {
                Some(v) => one = Some(v),
                None => return ExitCode::from(2),
            },
            "--trace" => trace = true,
            "--model" => {
                let depth = it.next().and_then(|v| v.parse().ok());
                for (maps, reduces) in [(2, 1), (2, 2)] {
                    let started = std::time::Instant::now();
                    let c = sim::model::check_to(sim::model::Mr::new(maps, reduces, 2), depth);
                    println!(
                        "model check, {maps} maps, {reduces} reduces, 2 workers: {} states in {:.1?}; proved {:?}; failed {:?}",
                        c.states,
                        started.elapsed(),
                        c.proved,
                        c.failed
                    );
                }
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!(
                    "mr-sim: unknown argument {other}; use --seeds N, --from S, --seed S, --trace"
                );
                return ExitCode::from(2);
            }
        }
    }
    let dir = match sim::scratch() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mr-sim: cannot create a scratch directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(seed) = one {
        println!("plan: {:?}", sim::Plan::of(seed));
        return match sim::run_seed(seed, dir.path(), trace) {
            Ok(s) => {
                if trace {
                    // A passing seed's trace is printed by re-running it traced.
                }
                println!("seed {seed}: ok {s:?}");
                ExitCode::SUCCESS
            }
            Err(v) => {
                print!("{}", v.trace);
                eprintln!("{v}");
                ExitCode::FAILURE
            }
        };
    }
    let started = std::time::Instant::now();
    match sim::run_seeds(from, n, dir.path()) {
        Ok(s) => {
            println!(
                "{n} seeds from {from}: ok in {:.1?} ({} events, {} coordinator restarts, {} messages dropped, {} duplicated, {} reports refused, {} stale loss reports, {} loss reports doubted, {} false loss reports of which {} re-ran a map, {} workers excluded, {} backups started of which {} won, {} attempts abandoned when told)",
                started.elapsed(),
                s.events,
                s.restarts,
                s.dropped,
                s.duplicated,
                s.refused,
                s.stale_losses,
                s.doubted,
                s.false_reports,
                s.believed,
                s.excluded,
                s.backups,
                s.backups_won,
                s.abandoned
            );
            ExitCode::SUCCESS
        }
        Err(v) => {
            print!("{}", v.trace);
            eprintln!("{v}");
            ExitCode::FAILURE
        }
    }
}
