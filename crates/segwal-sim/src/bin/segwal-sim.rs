//! `segwal-sim [--seeds N] [--from S] [--ops K]`: runs seeds S..S+N and prints totals;
//! `SEED=x segwal-sim` (or `--seed x`) replays one seed and prints its failure in full.
//! Exit status 1 if any seed failed.

use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<u64> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ops = arg(&args, "--ops").unwrap_or(segwal_sim::Config::default().ops as u64) as usize;
    // `--strict`: also the checks of defects known to be open (segwal_sim::KNOWN_OPEN);
    // `--check TAG`: also that one (e.g. `--check '#5'` once the lead has fixed it).
    let check: Vec<&String> = args.windows(2).filter(|w| w[0] == "--check").map(|w| &w[1]).collect();
    let allow = if args.iter().any(|a| a == "--strict") {
        Vec::new()
    } else {
        segwal_sim::KNOWN_OPEN
            .iter()
            .copied()
            .filter(|t| !check.iter().any(|c| c.as_str() == *t))
            .collect()
    };
    let cfg = segwal_sim::Config { ops, allow };
    let one = arg(&args, "--seed").or_else(|| std::env::var("SEED").ok().and_then(|s| s.parse().ok()));
    let (from, n) = match one {
        Some(s) => (s, 1),
        None => (
            arg(&args, "--from").unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
                    << 20
            }),
            arg(&args, "--seeds").unwrap_or(1000),
        ),
    };
    let started = Instant::now();
    let mut total = segwal_sim::Outcome::default();
    let mut failed = Vec::new();
    for seed in from..from + n {
        match segwal_sim::run(seed, &cfg) {
            Ok(o) => {
                total.ops += o.ops;
                total.steps += o.steps;
                total.crashes += o.crashes;
                total.reopens += o.reopens;
                total.faults += o.faults;
            }
            Err(why) => {
                eprintln!("FAILED {why}\n  replay: SEED={seed} npm run test:sim\n");
                failed.push(seed);
            }
        }
    }
    println!(
        "segwal-sim: seeds {from}..{} ({n}), {} failed; {} operations, {} writer rounds, {} crashes, {} reopens, {} faults; {:.1}s",
        from + n,
        failed.len(),
        total.ops,
        total.steps,
        total.crashes,
        total.reopens,
        total.faults,
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failed seeds: {failed:?}");
        std::process::exit(1);
    }
}
