//! Handing memory back to the kernel. After a burst (a thousand connections
//! that came and went) the allocator keeps the freed pages for reuse, so the
//! process's resident size stays at the burst's peak; on a 4 GB Pi shared
//! with the camera stack that is memory another process cannot have.
//! `malloc_trim` returns every free page, not only those at the top of the
//! heap. Only glibc has it; elsewhere this does nothing.

/// Returns the allocator's free pages to the kernel.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks the allocator's own free lists under
        // its locks; it takes no pointer from us and frees nothing in use.
        let released = unsafe { nix::libc::malloc_trim(0) };
        log::debug!("malloc_trim: released memory: {}", released != 0);
    }
}
