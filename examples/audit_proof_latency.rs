//! Latency of `countersign::db::audit::inclusion_proof` for random entries of an existing
//! log (docs/perf-audit-draft.md).
//!
//! ```text
//! audit_proof_latency URL [COUNT] [SIZE]
//! ```
//! COUNT random leaf indexes (default 1,000, fixed seed) in the tree of SIZE entries
//! (default: the head), each proof timed on its own. Every proof is then checked against
//! the root from `root_at`, outside the timing. Prints p50 / p90 / p99 / max in ms, the
//! first call's time (cold statement cache), and the proofs' mean length.

use countersign::audit::proof::{self, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .ok_or_else(|| anyhow::anyhow!("usage: audit_proof_latency URL [COUNT] [SIZE]"))?;
    let count: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let db = countersign::db::Db::connect(url, 1)?;
    let mut conn = db.conn()?;
    let head = countersign::db::audit::head_size(&mut conn)? as u64;
    let size: u64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(head);
    anyhow::ensure!(size >= 1 && size <= head, "size must be 1 to {head}");
    let mut rng = StdRng::seed_from_u64(7);
    let indexes: Vec<u64> = (0..count).map(|_| rng.gen_range(0..size)).collect();

    let mut ms = Vec::with_capacity(count);
    let mut proofs = Vec::with_capacity(count);
    let t_all = Instant::now();
    for &i in &indexes {
        let t = Instant::now();
        let p = countersign::db::audit::inclusion_proof(&mut conn, i, size)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        proofs.push(p);
    }
    let total = t_all.elapsed().as_secs_f64();
    let first = ms[0];

    // Check every proof (not timed).
    let root = countersign::db::audit::root_at(&mut conn, size)?;
    let mut len = 0usize;
    for (&i, p) in indexes.iter().zip(&proofs) {
        let leaf = countersign::db::audit::node(&mut conn, NodeId { level: 0, index: i })?;
        proof::verify_inclusion(i, size, &leaf, p, &root)
            .map_err(|e| anyhow::anyhow!("proof of leaf {i} does not verify: {e}"))?;
        len += p.len();
    }

    let mut sorted = ms.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "inclusion_proof, tree size {size} (head {head}), {count} random leaves: \
         p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms, mean {:.3} ms; first call {:.3} ms; \
         mean proof length {:.1} hashes; all {count} proofs verify against root_at({size})",
        pct(&sorted, 0.5),
        pct(&sorted, 0.9),
        pct(&sorted, 0.99),
        sorted[sorted.len() - 1],
        total * 1e3 / count as f64,
        first,
        len as f64 / count as f64,
    );
    Ok(())
}
