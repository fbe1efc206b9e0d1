//! CPU used by this process, its children or the whole machine, read from `/proc`, and the
//! "CPU X s = Y of N cores busy" note the report's rows carry (a miss with the cores busy is
//! CPU-bound; one with cores idle is bound by a single thread or by waiting).

use std::time::Duration;

/// CPU seconds (user + system) used so far by this process (`children: false`) or by its
/// waited-for children (`children: true`), from `/proc/self/stat`; 0 where unreadable.
pub(crate) fn cpu_seconds(children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // utime, stime, cutime, cstime are fields 14-17 of the line: 11-14 after the name.
    let at = if children { 13 } else { 11 };
    let ticks: f64 = fields.get(at..at + 2).map_or(0.0, |v| {
        v.iter().filter_map(|f| f.parse::<f64>().ok()).sum()
    });
    // The kernel reports USER_HZ ticks, 100 per second on Linux.
    ticks / 100.0
}

/// CPU seconds (all states but idle and iowait) the whole machine has used so far, over every
/// core, from `/proc/stat`: what a run costs together with a database server of its own.
pub(crate) fn machine_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum();
    busy / 100.0
}

/// "CPU X s = Y of N cores busy" for `cpu` seconds of CPU over `wall`.
pub(crate) fn cpu_note(cpu: f64, wall: Duration) -> String {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    format!(
        "CPU {cpu:.1} s = {:.1} of {cores} cores busy",
        cpu / wall.as_secs_f64().max(1e-9)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_divides_cpu_by_wall_time_and_process_cpu_only_grows() {
        let note = cpu_note(3.0, Duration::from_secs(2));
        assert!(note.starts_with("CPU 3.0 s = 1.5 of "), "{note}");
        assert!(note.ends_with(" cores busy"), "{note}");
        let before = cpu_seconds(false);
        // Work the kernel must account (USER_HZ ticks of 10 ms): loop until it shows, bounded.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while cpu_seconds(false) <= before && start.elapsed() < Duration::from_secs(5) {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(false) > before);
        assert!(machine_cpu_seconds() > 0.0);
    }
}
