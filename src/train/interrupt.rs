//! Ctrl-C, SIGTERM and SIGHUP during training: one handler for all three (the handler
//! cannot tell them apart), so every stop signal saves and exits with 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Sets a flag on the first signal (the loop finishes its step, saves and stops) and exits
/// at once with 130 on the second; checkpoint writes are atomic, so that leaves nothing
/// corrupt behind, and the temporary file of a write in progress and the output locks are
/// removed.
pub fn install_interrupt() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            crate::fsio::cleanup_before_exit();
            std::process::exit(130);
        }
    })
    .map_err(|e| Error::config("ctrl-c", e, "cannot install the interrupt handler"))?;
    Ok(flag)
}
