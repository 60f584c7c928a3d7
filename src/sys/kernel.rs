//! Facts about the running kernel and machine: version, transparent huge page mode,
//! whether soft-dirty tracking really works, and what the report should record (CPU
//! model, CPU time counters and load, cache size). Every `/proc` and `/sys` read about
//! the machine is here; those about this process are in [`super::process`].

use crate::error::{Error, Result};
use crate::sys::PAGE_SIZE;
use crate::sys::mem::Region;
use crate::sys::pagemap::Pagemap;

/// `uname -r`.
pub fn release() -> String {
    // SAFETY: a zeroed utsname is a valid output buffer.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: uname NUL-terminates the field.
    let cstr = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    cstr.to_string_lossy().into_owned()
}

/// `(major, minor)` of the running kernel.
pub fn version() -> (u32, u32) {
    let r = release();
    let mut it = r
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// The selected transparent huge page mode (`always`, `madvise`, `never`), or `unknown`.
pub fn thp_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .find(|w| w.starts_with('['))
                .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The value of a sysctl under `/proc/sys` (e.g. `vm/max_map_count`), if readable.
pub fn sysctl(path: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The CPU model name from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the CPU reports running under a hypervisor (`hypervisor` flag).
pub fn is_virtual_machine() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
        })
        .unwrap_or(false)
}

/// CPU time counters of the whole machine (`/proc/stat`'s `cpu` line), in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// All fields summed (user … steal, guests excluded: they are inside user).
    pub total: u64,
    /// Time the hypervisor ran something else while a virtual CPU wanted to run.
    pub steal: u64,
}

/// The CPU time, in clock ticks (`/proc/stat`'s unit), that the kernel threads named
/// `kdamond…` have used since they started: DAMON's monitors, which a machine may run
/// for proactive reclaim. Each sampling pass runs for milliseconds on whichever CPU it
/// lands, in front of whatever ran there (a mutator on its way to a safepoint). `None`
/// when no such thread runs. Readable without privileges (`/proc/<pid>/comm` and
/// `stat`), unlike DAMON's own settings under `/sys/kernel/mm/damon`.
pub fn kdamond_ticks() -> Option<u64> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let path = entry.path();
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let is_kdamond =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.starts_with("kdamond"));
        if !is_kdamond {
            continue;
        }
        let ticks = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|s| stat_cpu_ticks(&s))
            .unwrap_or(0);
        *found.get_or_insert(0) += ticks;
    }
    found
}

/// `utime + stime` of a `/proc/<pid>/stat` line: the 14th and 15th fields, counted
/// after the parenthesised name (which may hold spaces).
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut f = after_name.split_whitespace().skip(11);
    let (utime, stime) = (
        f.next()?.parse::<u64>().ok()?,
        f.next()?.parse::<u64>().ok()?,
    );
    Some(utime + stime)
}

/// Reads `/proc/stat`; zeroes when it cannot be read.
pub fn cpu_ticks() -> CpuTicks {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return CpuTicks::default();
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]
    CpuTicks {
        total: f.iter().take(8).sum(),
        steal: f.get(7).copied().unwrap_or(0),
    }
}

/// The 1-minute load average (`/proc/loadavg`), NaN when unreadable.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The size of the largest (last-level) CPU cache of CPU 0, from
/// `/sys/devices/system/cpu/cpu0/cache/index*/{level,size}`.
pub fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
    let mut best: Option<(u32, usize)> = None;
    for e in dir.flatten() {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
        let (Some(level), Some(size)) = (read("level"), read("size")) else {
            continue;
        };
        let Ok(level) = level.trim().parse::<u32>() else {
            continue;
        };
        let size = size.trim();
        let bytes = if let Some(k) = size.strip_suffix('K') {
            k.parse::<usize>().ok()? << 10
        } else if let Some(m) = size.strip_suffix('M') {
            m.parse::<usize>().ok()? << 20
        } else {
            size.parse().ok()?
        };
        if best.is_none_or(|b| (level, bytes) > b) {
            best = Some((level, bytes));
        }
    }
    best.map(|b| b.1)
}

/// The TLB shootdown interrupts received so far, summed over every CPU: the `TLB:` row of
/// `/proc/interrupts` (x86). A shootdown is the interrupt a CPU sends another that may
/// cache a translation the first one just changed (a protection change in a process with
/// a thread running there). The count is system-wide: other processes add to it, so read
/// a difference over a span as a rate. `None` where the file has no such row.
pub fn tlb_shootdowns() -> Option<u64> {
    tlb_shootdowns_by_cpu().map(|s| s.total())
}

/// The TLB shootdown interrupts each CPU has received so far ([`tlb_shootdowns`] before
/// the sum). Per CPU, a count says who was shot at, not who shot: with two threads pinned
/// to two CPUs, what one CPU received the other thread's protection changes (or its
/// faults) sent, give or take other processes.
pub fn tlb_shootdowns_by_cpu() -> Option<Shootdowns> {
    tlb_shootdowns_in(&std::fs::read_to_string("/proc/interrupts").ok()?)
}

/// TLB shootdown interrupts received, per CPU: a reading of `/proc/interrupts`, or the
/// difference of two ([`Shootdowns::since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shootdowns {
    /// (CPU number, interrupts), in the file's column order.
    by_cpu: Vec<(usize, u64)>,
}

impl Shootdowns {
    /// Summed over every CPU.
    pub fn total(&self) -> u64 {
        self.by_cpu.iter().map(|&(_, n)| n).sum()
    }

    /// Received by CPU `cpu`; `None` for a CPU the file had no column for.
    pub fn on(&self, cpu: usize) -> Option<u64> {
        self.by_cpu
            .iter()
            .find(|&&(c, _)| c == cpu)
            .map(|&(_, n)| n)
    }

    /// The interrupts received since `before`, CPU by CPU (a CPU missing from `before`,
    /// brought online meanwhile, counts from 0).
    pub fn since(&self, before: &Shootdowns) -> Shootdowns {
        Shootdowns {
            by_cpu: self
                .by_cpu
                .iter()
                .map(|&(cpu, n)| (cpu, n.saturating_sub(before.on(cpu).unwrap_or(0))))
                .collect(),
        }
    }
}

/// Runs `f` and returns its result with the TLB shootdowns counted meanwhile, per CPU
/// (see [`tlb_shootdowns_by_cpu`]; `None` where they cannot be counted).
pub fn counting_tlb_shootdowns<T>(f: impl FnOnce() -> T) -> (T, Option<Shootdowns>) {
    let before = tlb_shootdowns_by_cpu();
    let out = f();
    let n = tlb_shootdowns_by_cpu()
        .zip(before)
        .map(|(after, before)| after.since(&before));
    (out, n)
}

/// The `TLB:` row of an `/proc/interrupts` text, by CPU: its columns follow the header's
/// `CPU<n>` names (only online CPUs have one).
fn tlb_shootdowns_in(text: &str) -> Option<Shootdowns> {
    let mut lines = text.lines();
    let cpus: Vec<usize> = lines
        .next()?
        .split_whitespace()
        .map(|w| w.strip_prefix("CPU")?.parse().ok())
        .collect::<Option<_>>()?;
    let row = lines.find(|l| l.trim_start().starts_with("TLB:"))?;
    let counts = row
        .split_whitespace()
        .skip(1)
        .map_while(|w| w.parse::<u64>().ok());
    Some(Shootdowns {
        by_cpu: cpus.into_iter().zip(counts).collect(),
    })
}

/// Number of online CPUs.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// What the kernel configuration says about an option, if the configuration is readable
/// (`/proc/config.gz` needs decompression, so only `/boot/config-$(uname -r)` is read).
pub fn config_option(name: &str) -> Option<bool> {
    let text = std::fs::read_to_string(format!("/boot/config-{}", release())).ok()?;
    for line in text.lines() {
        if line.starts_with(&format!("{name}=")) {
            return Some(true);
        }
        if line == format!("# {name} is not set") {
            return Some(false);
        }
    }
    None
}

/// The outcome of the soft-dirty check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDirtyCheck {
    /// Pages written after `clear_refs`.
    pub written: usize,
    /// Of those, how many had pagemap bit 55 set.
    pub seen_dirty: usize,
}

impl SoftDirtyCheck {
    /// Soft-dirty works when every written page shows the bit.
    pub fn works(&self) -> bool {
        self.written > 0 && self.seen_dirty == self.written
    }
}

/// Checks soft-dirty for real: clears the bits with `echo 4 > /proc/self/clear_refs`,
/// writes some pages of a fresh mapping, and counts how many show pagemap bit 55.
pub fn check_soft_dirty() -> Result<SoftDirtyCheck> {
    const PAGES: usize = 32;
    let region = Region::new(PAGES * PAGE_SIZE)?;
    let base = region.base() as *mut u8;
    for i in 0..PAGES {
        // SAFETY: inside the fresh, writable mapping.
        unsafe { base.add(i * PAGE_SIZE).write_volatile(1) };
    }
    std::fs::write("/proc/self/clear_refs", "4").map_err(|e| {
        Error::from_errno(
            "write(/proc/self/clear_refs)",
            None,
            e.raw_os_error().unwrap_or(0),
        )
    })?;
    for i in 0..PAGES {
        // SAFETY: as above.
        unsafe { base.add(i * PAGE_SIZE).write_volatile(2) };
    }
    let mut pagemap = Pagemap::open(1)?;
    let mut seen_dirty = 0;
    for i in 0..PAGES {
        if pagemap.entry(region.base() + i * PAGE_SIZE)?.soft_dirty() {
            seen_dirty += 1;
        }
    }
    Ok(SoftDirtyCheck {
        written: PAGES,
        seen_dirty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_level_cache_is_found() {
        if std::path::Path::new("/sys/devices/system/cpu/cpu0/cache/index0").exists() {
            let llc = last_level_cache_bytes().expect("a cache size");
            assert!(llc >= 64 << 10, "{llc}");
        }
    }

    #[test]
    fn the_tlb_row_is_summed_over_the_cpus_and_its_label_left_out() {
        let text = "           CPU0       CPU1\n  0:         17          0   IO-APIC   2-edge      timer\n \
                    TLB:     812345     123455   TLB shootdowns\nERR:          0\n";
        let counted = tlb_shootdowns_in(text).expect("a TLB row");
        assert_eq!(counted.total(), 935_800);
        assert_eq!(
            (counted.on(0), counted.on(1), counted.on(2)),
            (Some(812_345), Some(123_455), None)
        );
        assert_eq!(tlb_shootdowns_in("  0: 1 2 timer\n"), None);
        assert_eq!(tlb_shootdowns_in("CPU0 CPU1\n  0: 1 2 timer\n"), None);
    }

    #[test]
    fn tlb_columns_follow_the_cpus_the_header_names() {
        // CPU1 offline: the second column is CPU2's.
        let before = "     CPU0  CPU2\nTLB:  10  20  TLB shootdowns\n";
        let after = "     CPU0  CPU2\nTLB:  15  27  TLB shootdowns\n";
        let (b, a) = (
            tlb_shootdowns_in(before).unwrap(),
            tlb_shootdowns_in(after).unwrap(),
        );
        let d = a.since(&b);
        assert_eq!(
            (d.on(0), d.on(1), d.on(2), d.total()),
            (Some(5), None, Some(7), 12)
        );
    }

    #[test]
    fn a_stat_lines_cpu_ticks_are_read_after_its_name() {
        let line = "107 (kdamond.0) S 2 0 0 0 -1 2129984 0 0 0 0 40 6900 0 0 20 0 1 0 0";
        assert_eq!(stat_cpu_ticks(line), Some(6940));
        let spaced = "9 (a name) with) R 1 1 1 0 -1 0 0 0 0 0 3 4 0 0";
        assert_eq!(
            stat_cpu_ticks(spaced),
            Some(7),
            "the last ')' ends the name"
        );
        assert_eq!(stat_cpu_ticks("9 (x) R 1"), None);
    }
}
