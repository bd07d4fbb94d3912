//! Memory policy for analytic queries.

/// Keeps memory a query frees inside the process for its next allocations.
///
/// A query allocates and frees large column buffers batch after batch. By default glibc
/// returns every buffer above its (adaptive) mmap threshold to the kernel on free, and
/// trims the heap as soon as 128 KiB at its top are free, so each new batch pays again for
/// fresh zeroed pages: a third of a grouped aggregate's CPU time went to page faults. Here
/// buffers up to 64 MiB come from the heap, and up to 256 MiB of free heap is kept. A query
/// holds at most its own peak; the process ends with the command.
pub fn keep_freed_memory_for_queries() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is called before the
    // runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
