//! Options of the global allocator (mimalloc, set in `src/main.rs`).
//!
//! A migrate frees and re-allocates its batches over and over. By default mimalloc returns
//! freed memory to the OS after 10 ms and asks for transparent huge pages; every page
//! returned was then faulted in and zeroed again by the kernel. Keeping freed memory mapped
//! (purge delay −1) and not asking for huge pages made a 5M-row migrate 10–15 % faster
//! (system time 13–16 s → 5 s) for ≈ 100 MB more peak RSS (docs/performance.md, "Allocator
//! options"). An operator's own `MIMALLOC_PURGE_DELAY` / `MIMALLOC_ALLOW_THP` win.

/// `mi_option_purge_delay` (`mi_option_t` in the v3 `mimalloc.h` that libmimalloc-sys
/// 0.1.49 builds; Cargo.lock pins it, and a test checks the number).
pub const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// `mi_option_allow_thp` (as above).
pub const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Set the options this program runs best with, unless the environment sets them.
pub fn tune() {
    for (var, option, value) in [
        ("MIMALLOC_PURGE_DELAY", MI_OPTION_PURGE_DELAY, -1),
        ("MIMALLOC_ALLOW_THP", MI_OPTION_ALLOW_THP, 0),
    ] {
        if std::env::var_os(var).is_none() {
            // SAFETY: sets one of mimalloc's process-wide option values (an integer it
            // reads when it next decides); no memory is touched.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        disable_thp();
    }
}

/// Switch transparent huge pages off for the whole process. mimalloc acts on its
/// `allow_thp` option when it maps memory, and it mapped its first arena (asking the
/// kernel for huge pages on it) while the process loaded, before `main` could set the
/// option: each 2 MiB page of that arena was then faulted in and zeroed whole by the
/// kernel (`clear_page_erms` ≈ 4 % of a migrate's samples, docs/performance.md, "Session
/// 23"). The process-wide switch also covers memory already mapped.
fn disable_thp() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE sets a flag of this process's memory map; it takes no
    // pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Whether transparent huge pages are off for this process (always `false` off Linux).
pub fn thp_disabled() -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_GET_THP_DISABLE reads a flag of this process's memory map.
    return unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1;
    #[cfg(not(target_os = "linux"))]
    false
}

/// Run `free` (which drops a large structure) and give the memory it frees back to the
/// OS: with [`tune`]'s setting mimalloc keeps every freed page mapped for reuse, so
/// freeing only helps a later allocation on the same thread, and memory one pass freed on
/// some threads was mapped again by the next pass on others (the peak grew by what the
/// next pass needed). Purging is switched on while `free` runs and every thread's heap
/// (rayon's workers and the caller's) collects its empty pages; then the option is set
/// back. Does nothing but `free` when the operator set `MIMALLOC_PURGE_DELAY`.
pub fn release_after(free: impl FnOnce()) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        free();
        return;
    }
    let before = option(MI_OPTION_PURGE_DELAY);
    // SAFETY: sets one of mimalloc's process-wide option values; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    free();
    // SAFETY: `mi_collect` frees the calling thread's empty pages; it is called on each
    // thread for its own heap.
    rayon::broadcast(|_| unsafe { libmimalloc_sys::mi_collect(true) });
    unsafe { libmimalloc_sys::mi_collect(true) };
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, before) };
}

/// An option's current value.
pub fn option(option: libmimalloc_sys::mi_option_t) -> std::os::raw::c_long {
    // SAFETY: reads one of mimalloc's process-wide option values.
    unsafe { libmimalloc_sys::mi_option_get(option) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option numbers name the options: a child process of this test binary, started
    /// with the options' environment variables (mimalloc reads them when the process
    /// loads), reports the values under those numbers.
    #[test]
    fn option_numbers_are_the_options_their_names_say() {
        if std::env::var_os("VAXARC_ALLOCATOR_PROBE").is_some() {
            println!(
                "probe purge_delay={} allow_thp={}",
                option(MI_OPTION_PURGE_DELAY),
                option(MI_OPTION_ALLOW_THP)
            );
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "allocator::tests::option_numbers_are_the_options_their_names_say",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VAXARC_ALLOCATOR_PROBE", "1")
            .env("MIMALLOC_PURGE_DELAY", "4321")
            .env("MIMALLOC_ALLOW_THP", "2")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("probe purge_delay=4321 allow_thp=2"),
            "{text}"
        );
        // And `tune` sets them when the environment does not.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none()
            && std::env::var_os("MIMALLOC_ALLOW_THP").is_none()
        {
            tune();
            assert_eq!(option(MI_OPTION_PURGE_DELAY), -1);
            assert_eq!(option(MI_OPTION_ALLOW_THP), 0);
            #[cfg(target_os = "linux")]
            assert!(
                thp_disabled(),
                "tune switches huge pages off for the process"
            );
            // `release_after` runs its closure once, with purging on, and sets the option
            // back (here, in the same test: another test reading the option meanwhile
            // would see the temporary value).
            let mut seen = Vec::new();
            release_after(|| seen.push(option(MI_OPTION_PURGE_DELAY)));
            assert_eq!(seen, [0]);
            assert_eq!(option(MI_OPTION_PURGE_DELAY), -1);
        }
    }
}
