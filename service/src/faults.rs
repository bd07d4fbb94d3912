//! Test-only fault points: with [`FAULT_ENV`] set to a point's name, the process kills
//! itself there, so tests/faults.rs can check that every named-table step survives a crash
//! at every point.

/// The environment variable of the test-only fault points: set to a point's name (e.g.
/// `drop:marked`), the process kills itself (`SIGKILL`) when it gets there. For the fault
/// tests (tests/faults.rs); never set it in production.
pub const FAULT_ENV: &str = "TARN_TEST_FAULT";

/// The fault points, in the order the steps reach them.
pub const FAULT_POINTS: &[&str] = &[
    "create:reserved",
    "create:files",
    "create:commit-ack-lost",
    "create:committed",
    "drop:marked",
    "drop:half-deleted",
    "drop:files-deleted",
];

/// Whether the test-only fault `point` is asked for (see [`FAULT_ENV`]).
pub(crate) fn fault_asked(point: &str) -> bool {
    std::env::var_os(FAULT_ENV).is_some_and(|v| v == point)
}

/// Test-only: dies here, as `kill -9` would, if [`FAULT_ENV`] names `point`.
pub(crate) fn fault(point: &str) {
    if fault_asked(point) {
        eprintln!("{FAULT_ENV}: killing this process at `{point}` (test only)");
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}
