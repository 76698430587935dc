//! Handing memory back to the kernel. After a burst (a thousand connections
//! that came and went) the allocator keeps the freed pages for reuse, so the
//! process's resident size stays at the burst's peak; on a 4 GB Pi shared
//! with the camera stack that is memory another process cannot have.
//! `malloc_trim` returns every free page, not only those at the top of the
//! heap. Large blocks (a password check's 19 MiB) are mapped alone so that
//! they go back as soon as they are freed. Only glibc has these; elsewhere
//! they do nothing.

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

/// Allocations at least this large are mapped on their own and unmapped
/// when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAP_ALONE_FROM: nix::libc::c_int = 16 << 20;

/// Makes every allocation of 16 MiB or more a mapping of its own, given back
/// to the kernel the moment it is freed. glibc does so from 128 KiB, but
/// raises that threshold to the size of any such block freed, after which
/// each password check's 19 MiB (argon2) would be kept in the heap of
/// whichever thread ran it: a burst of logins would leave the process at
/// its peak size. Setting the threshold fixes it at 16 MiB, above every
/// frame buffer (a 1080p frame is 3-4 MiB), so the frame path is untouched.
pub fn map_large_allocations_alone() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a tuning value of the allocator under its
        // own lock; it takes no pointer and frees nothing.
        let ok = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MAP_ALONE_FROM) };
        if ok != 1 {
            log::debug!("mallopt(M_MMAP_THRESHOLD) refused");
        }
    }
}
