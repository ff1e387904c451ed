//! Data-parallel training over MPI (cargo feature `mpi`): one process per device, each
//! computing the gradients of its shard of every global batch; one all-reduce over the flat
//! gradient buffer makes the update identical on every rank, so the ranks train one model
//! as if the whole batch ran in one process.
//!
//! The transport is MPI's (Open MPI / MPICH through rsmpi): collectives that are tuned for
//! the cluster's network, and a launcher (`mpirun`) that places processes and tears the
//! whole job down when one of them dies, so no rank is left waiting in a collective.

use std::cell::Cell;
use std::time::{Duration, Instant};

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::batch::{check_shards, Batch};
use crate::config::{ModelConfig, Reduction};
use crate::engine::{Engine, EngineKind, Grads, Outputs, Want};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimState};
use crate::params::ParamLayout;
use crate::train::Group;

/// The MPI job this process belongs to (also a job of one process when started without
/// `mpirun`). MPI is finalised when this is dropped, so it lives as long as `main`.
pub struct World {
    _universe: Universe,
    comm: SimpleCommunicator,
    local_rank: usize,
    /// all-reduces of gradients done and the time spent in them, for `bench`
    reduced: Cell<(u64, Duration)>,
}

impl World {
    /// Initialises MPI; an error when it is already initialised or cannot start.
    pub fn init() -> Result<World> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::config(
                "mpi",
                "init",
                "MPI could not be initialised (already initialised, or no MPI runtime); run under mpirun",
            )
        })?;
        let comm = universe.world();
        // processes that share memory are on one node: their rank among themselves picks
        // the node's GPU adapter
        let local_rank = comm.split_shared(comm.rank()).rank() as usize;
        Ok(World {
            _universe: universe,
            comm,
            local_rank,
            reduced: Cell::new((0, Duration::ZERO)),
        })
    }

    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// Rank among the processes on this node.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Sums `buf` element-wise over all ranks, in place.
    pub fn sum(&self, buf: &mut [f32], scratch: &mut Vec<f32>) {
        let start = Instant::now();
        scratch.clear();
        scratch.extend_from_slice(buf);
        self.comm.all_reduce_into(&scratch[..], buf, SystemOperation::sum());
        let (n, t) = self.reduced.get();
        self.reduced.set((n + 1, t + start.elapsed()));
    }

    /// Mean milliseconds of the gradient all-reduces so far (0 before the first).
    pub fn reduce_ms(&self) -> f64 {
        let (n, t) = self.reduced.get();
        t.as_secs_f64() * 1e3 / n.max(1) as f64
    }

    /// Every rank's `v`, in rank order.
    pub fn gather(&self, v: f64) -> Vec<f64> {
        let mut mine = vec![0.0f64; self.size()];
        mine[self.rank()] = v;
        let mut all = vec![0.0f64; self.size()];
        self.comm
            .all_reduce_into(&mine[..], &mut all[..], SystemOperation::sum());
        all
    }

    /// Rank 0's values of `buf` on every rank.
    pub fn broadcast(&self, buf: &mut [f32]) {
        self.comm.process_at_rank(0).broadcast_into(buf);
    }

    /// Whether every rank passed the same value.
    pub fn all_equal(&self, v: u64) -> bool {
        let mine = [v, !v];
        let mut most = [0u64; 2];
        self.comm
            .all_reduce_into(&mine[..], &mut most[..], SystemOperation::max());
        most == mine
    }

    /// Waits until every rank has called this.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Whether any rank passed true.
    pub fn any(&self, flag: bool) -> bool {
        let mut out = 0u32;
        self.comm
            .all_reduce_into(&(flag as u32), &mut out, SystemOperation::max());
        out != 0
    }

    /// Ends every process of the job: a rank that fails must not leave the others waiting in
    /// a collective.
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}

impl Group for World {
    fn leads(&self) -> bool {
        self.rank() == 0
    }
    fn stop_requested(&self, here: bool) -> bool {
        self.any(here)
    }
    fn verify(&self, engine: &mut dyn Engine, step: u64) -> Result<()> {
        if !self.all_equal(checksum(&engine.params()?)) {
            return Err(Error::config(
                "mpi",
                format!("step {step}"),
                "the ranks' weights differ (parameter checksums disagree); run the same binary and flags on every rank",
            ));
        }
        Ok(())
    }
}

/// FNV-1a over the bits of the parameters: equal on every rank exactly when the weights are.
pub fn checksum(params: &[f32]) -> u64 {
    params.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        v.to_bits()
            .to_le_bytes()
            .iter()
            .fold(h, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    })
}

/// An engine whose `train_step` runs this rank's shard of the global batch on the local
/// engine, sums loss and gradients over the ranks and applies the same update everywhere.
/// Everything else (evaluation, parameters, state) is the local engine's: the ranks hold
/// identical weights.
pub struct DistEngine<'w> {
    local: Box<dyn Engine>,
    world: &'w World,
    /// [grads…, loss], summed in one all-reduce
    buf: Vec<f32>,
    scratch: Vec<f32>,
    /// updates done
    step: u64,
}

impl<'w> DistEngine<'w> {
    /// Rank 0's parameters and optimiser state go to every rank, so a fresh start (each rank
    /// initialised from the same seed anyway) and a resume begin from identical weights.
    pub fn new(mut local: Box<dyn Engine>, world: &'w World) -> Result<Self> {
        let mut p = local.params()?;
        world.broadcast(&mut p);
        local.set_params(&p)?;
        let mut s = local.optim_state()?;
        for slot in &mut s.slots {
            world.broadcast(slot);
        }
        local.set_optim_state(&s)?;
        Ok(DistEngine {
            step: s.step,
            local,
            world,
            buf: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// This rank's sequences of a global batch of `b`.
    fn shard(&self, batch: &Batch<f32>) -> Result<Batch<f32>> {
        let (n, r, b) = (self.world.size(), self.world.rank(), batch.batch);
        check_shards(b, n)?;
        batch.validate(self.local.config())?;
        Ok(batch.rows(self.local.config(), r * b / n, b / n))
    }
}

impl Engine for DistEngine<'_> {
    fn describe(&self) -> String {
        format!("{} × {} MPI ranks", self.local.describe(), self.world.size())
    }
    fn kind(&self) -> EngineKind {
        self.local.kind()
    }
    fn config(&self) -> &ModelConfig {
        self.local.config()
    }
    fn layout(&self) -> &ParamLayout {
        self.local.layout()
    }
    fn optim_config(&self) -> &OptimConfig {
        self.local.optim_config()
    }

    fn train_step(&mut self, batch: &Batch<f32>, want_loss: bool) -> Result<Option<f32>> {
        let shard = self.shard(batch)?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        // A shard whose own loss is not finite still joins the all-reduce (NaN, no
        // gradient): every rank then sees the non-finite sum and stops at the same step,
        // instead of one rank leaving the others waiting.
        let loss = match self.local.loss_and_grads(&shard, Want::default()) {
            Ok((loss, grads)) => {
                buf.extend_from_slice(&grads.params);
                loss
            }
            Err(Error::NonFinite { .. }) => {
                buf.resize(self.local.layout().total, 0.0);
                f32::NAN
            }
            Err(e) => return Err(e),
        };
        buf.push(loss);
        self.world.sum(&mut buf, &mut self.scratch);
        // a mean over the global batch is the mean of the ranks' equal-sized shard means
        if self.local.config().reduction == Reduction::Mean {
            let inv = 1.0 / self.world.size() as f32;
            buf.iter_mut().for_each(|v| *v *= inv);
        }
        let loss = buf.pop().unwrap_or(f32::NAN);
        let result = if loss.is_finite() {
            self.local.apply_grads(&buf)
        } else {
            Err(Error::NonFinite {
                what: "loss".into(),
                step: self.step + 1,
            })
        };
        self.buf = buf;
        result?;
        self.step += 1;
        Ok(want_loss.then_some(loss))
    }

    fn apply_grads(&mut self, grads: &[f32]) -> Result<()> {
        self.local.apply_grads(grads)?;
        self.step += 1;
        Ok(())
    }

    fn loss_and_grads(&mut self, batch: &Batch<f32>, want: Want) -> Result<(f32, Grads<f32>)> {
        self.local.loss_and_grads(batch, want)
    }

    fn forward(&mut self, batch: &Batch<f32>) -> Result<Outputs> {
        self.local.forward(batch)
    }

    fn last_state(&mut self) -> Result<Vec<f32>> {
        self.local.last_state()
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.local.params()
    }
    fn set_params(&mut self, p: &[f32]) -> Result<()> {
        self.local.set_params(p)
    }
    fn optim_state(&mut self) -> Result<OptimState<f32>> {
        self.local.optim_state()
    }
    fn set_optim_state(&mut self, s: &OptimState<f32>) -> Result<()> {
        self.step = s.step;
        self.local.set_optim_state(s)
    }
}
