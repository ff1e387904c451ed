//! The processes that train one model together. A single process by default; data-parallel
//! training (`dist`, feature `mpi`) runs one per device, all executing the same loop.

use crate::engine::Engine;
use crate::error::Result;

pub trait Group {
    /// Whether this process validates, reports, samples and writes files (one of them does).
    fn leads(&self) -> bool;
    /// Whether any process was asked to stop. Every process calls this at the same point of
    /// every step, so they all stop after the same step, whichever received the signal.
    fn stop_requested(&self, here: bool) -> bool;
    /// Errors unless every process holds the same weights (called at each validation).
    fn verify(&self, engine: &mut dyn Engine, step: u64) -> Result<()>;
}

/// One process training alone.
pub struct Solo;

impl Group for Solo {
    fn leads(&self) -> bool {
        true
    }
    fn stop_requested(&self, here: bool) -> bool {
        here
    }
    fn verify(&self, _: &mut dyn Engine, _: u64) -> Result<()> {
        Ok(())
    }
}
