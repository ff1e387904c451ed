//! How this process takes part in a command: alone, or as one rank of an MPI job
//! (`mpirun -np N wgrnn train …`, cargo feature `mpi`). The commands ask the job for the
//! device index, the engine wrapper and the training group, so they need no MPI code.

use wgrnn::engine::Engine;
use wgrnn::train::{Group, Solo};
use wgrnn::{Error, Result};

#[cfg(feature = "mpi")]
use wgrnn::dist::{DistEngine, World};

pub struct Job {
    #[cfg(feature = "mpi")]
    world: Option<World>,
}

impl Job {
    /// Joins the MPI job when the process was started by an MPI launcher, else runs alone.
    pub fn start() -> Result<Job> {
        #[cfg(feature = "mpi")]
        {
            // Open MPI, MPICH and PMIx launchers all set one of these
            let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
            let world = if launched { Some(World::init()?) } else { None };
            Ok(Job {
                world: world.filter(|w| w.size() > 1),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Ok(Job {})
    }

    pub fn ranks(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w.size();
        }
        1
    }

    /// Which of a node's equally good GPUs this process takes: its rank on the node.
    pub fn gpu_index(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w.local_rank();
        }
        0
    }

    pub fn group(&self) -> &dyn Group {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            return w;
        }
        &Solo
    }

    /// Refuses what data-parallel training does not support, before any rank does work.
    pub fn check_train(&self, batch: usize, stateful: bool) -> Result<()> {
        let n = self.ranks();
        if n == 1 {
            return Ok(());
        }
        let verdict = if stateful {
            Err(Error::config(
                "stateful",
                "true",
                format!("--stateful is not supported with MPI ({n} ranks): each rank would carry only its own streams; drop --stateful or run one process"),
            ))
        } else {
            wgrnn::batch::check_shards(batch, n)
        };
        self.agree(verdict)
    }

    /// `bench`'s version of `check_train`: forward-only runs are not split over ranks, so
    /// their "global" throughput would be one rank's.
    pub fn check_bench(&self, batch: usize, infer: bool) -> Result<()> {
        let n = self.ranks();
        if n > 1 && infer {
            return self.agree(Err(Error::config(
                "infer",
                "true",
                format!("--infer is not split over the {n} MPI ranks; time inference as one process"),
            )));
        }
        self.check_train(batch, false)
    }

    /// A verdict every rank reaches alike (it depends only on flags, data and the job): in
    /// an MPI job a refusal is printed once, by rank 0, and every rank exits after it.
    fn agree(&self, verdict: Result<()>) -> Result<()> {
        #[cfg(feature = "mpi")]
        if let (Err(e), Some(w)) = (&verdict, &self.world) {
            if w.rank() == 0 {
                wgrnn::fsio::stderr_line(&format!("error: {e}"));
            }
            // nobody exits (which makes the launcher end the job) before rank 0 has printed
            w.barrier();
            std::process::exit(1);
        }
        verdict
    }

    /// The engine this process trains with: `local` itself, or, in an MPI job, `local`
    /// running this rank's shard and summing gradients with the other ranks.
    pub fn engine<'a>(&'a self, local: Box<dyn Engine>) -> Result<Box<dyn Engine + 'a>> {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            // `--device auto` may find a GPU on some nodes only; the two paths round
            // differently, so the replicas would drift apart
            let same = w.all_equal(local.kind() as u64);
            self.agree(if same {
                Ok(())
            } else {
                Err(Error::config(
                    "device",
                    "mixed",
                    "some MPI ranks run on a GPU and others on the CPU path; pass --device gpu or --device cpu so that all take the same path",
                ))
            })?;
            return Ok(Box::new(DistEngine::new(local, w)?));
        }
        Ok(local)
    }

    /// What a data-parallel `bench` adds to its report: every rank's median step time, the
    /// global tokens/s at the slowest rank's pace and the mean all-reduce time. `None` for a
    /// single process. Every rank must call this (it gathers).
    pub fn bench_extras(&self, step_ms: f64, tokens_per_step: f64) -> Option<serde_json::Value> {
        #[cfg(feature = "mpi")]
        if let Some(w) = &self.world {
            let per_rank = w.gather(step_ms);
            let slowest = per_rank.iter().copied().fold(0.0f64, f64::max);
            return Some(serde_json::json!({
                "ranks": w.size(),
                "per_rank_step_ms": per_rank,
                "global_tokens_per_s": tokens_per_step / (slowest * 1e-3),
                "allreduce_ms_per_step": w.reduce_ms(),
            }));
        }
        let _ = (step_ms, tokens_per_step);
        None
    }

    /// Hands a command's result back to `main`, except for a failure in an MPI job: that
    /// process exits here, without finalising MPI (the other ranks may be waiting in a
    /// collective, and the launcher ends them when one rank exits non-zero). A non-finite
    /// step is met by every rank alike (`DistEngine` sums before it judges) and is printed
    /// by rank 0 only; any other failure may be one rank's own (a file missing on its node,
    /// its device), so every rank prints it, naming itself.
    pub fn finish<T>(&self, result: Result<T>) -> Result<T> {
        #[cfg(feature = "mpi")]
        if let (Err(e), Some(w)) = (&result, &self.world) {
            let alike = matches!(e, Error::NonFinite { .. } | Error::Stopped { .. });
            if w.rank() == 0 {
                wgrnn::fsio::stderr_line(&format!("error: {e}"));
            } else if !alike {
                wgrnn::fsio::stderr_line(&format!("error: rank {}: {e}", w.rank()));
            }
            std::process::exit(if matches!(e, Error::Interrupted) { 130 } else { 1 });
        }
        result
    }
}
