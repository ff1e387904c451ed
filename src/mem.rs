//! The host-memory probe, shared by the input reader (a file larger than memory is refused
//! before it is read) and the training size checks.

/// MemAvailable from /proc/meminfo, in bytes; None where the kernel does not report it.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
