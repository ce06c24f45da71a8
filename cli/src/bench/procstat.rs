//! CPU time and resident memory of processes, from /proc (Linux).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Clock ticks per second of /proc/<pid>/stat's times: USER_HZ, 100 on every Linux architecture
/// in common use.
const TICKS_PER_SECOND: u64 = 100;

/// The label of this process, the load generator: listed, not counted in the shop's total.
pub(crate) const GENERATOR: &str = "load generator";

/// A process's CPU time so far.
fn cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of proc(5); the first one here is field 3.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// A process's resident set, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// A process's proportional set, in MiB: its private pages plus its share of the pages it
/// shares (the `souk` binary's code, mapped by every service of `souk up`). Summed over
/// processes it counts shared pages once, where resident sets count them in each.
fn pss_mib(pid: u32) -> Option<f64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU times of labelled processes at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot(BTreeMap<String, (u32, Duration)>);

impl Snapshot {
    pub(crate) fn take(processes: &[(String, u32)]) -> Self {
        Self(
            processes
                .iter()
                .filter_map(|(label, pid)| Some((label.clone(), (*pid, cpu(*pid)?))))
                .collect(),
        )
    }
}

/// One process over a run.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub(crate) struct Usage {
    /// CPU used over the run, in percent of one core.
    pub(crate) cpu_percent: f64,
    /// Resident memory at the end of the run.
    pub(crate) rss_mib: f64,
    /// Proportional memory at the end of the run (shared pages split among their sharers).
    #[serde(default)]
    pub(crate) pss_mib: f64,
}

/// Per process, and `total` of those but the load generator (this process): CPU between the
/// snapshots over `wall`, and memory now. A process restarted in between (another pid) is left
/// out.
pub(crate) fn usage(
    before: &Snapshot,
    after: &Snapshot,
    wall: Duration,
) -> BTreeMap<String, Usage> {
    let mut out = BTreeMap::new();
    let (mut cpu_total, mut rss_total, mut pss_total) = (0.0, 0.0, 0.0);
    for (label, (pid, end)) in &after.0 {
        let Some((_, start)) = before.0.get(label).filter(|(p, _)| p == pid) else {
            continue;
        };
        let cpu_percent =
            end.saturating_sub(*start).as_secs_f64() / wall.as_secs_f64().max(0.001) * 100.0;
        let rss = rss_mib(*pid).unwrap_or(0.0);
        let pss = pss_mib(*pid).unwrap_or(0.0);
        if label != GENERATOR {
            cpu_total += cpu_percent;
            rss_total += rss;
            pss_total += pss;
        }
        out.insert(
            label.clone(),
            Usage {
                cpu_percent,
                rss_mib: rss,
                pss_mib: pss,
            },
        );
    }
    out.insert(
        "total".to_owned(),
        Usage {
            cpu_percent: cpu_total,
            rss_mib: rss_total,
            pss_mib: pss_total,
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let before = Snapshot::take(&[("me".to_owned(), me)]);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = Snapshot::take(&[("me".to_owned(), me)]);
        let usage = usage(&before, &after, Duration::from_secs(1));
        assert!(usage["me"].rss_mib > 1.0, "{usage:?}");
        assert!(usage["me"].pss_mib > 0.5, "{usage:?}");
        assert!(
            usage["me"].pss_mib <= usage["me"].rss_mib + 0.01,
            "{usage:?}"
        );
        assert_eq!(usage["total"], usage["me"]);
        let both = [("me".to_owned(), me), (GENERATOR.to_owned(), me)];
        let usage = super::usage(
            &Snapshot::take(&both),
            &Snapshot::take(&both),
            Duration::from_secs(1),
        );
        assert_eq!(
            usage["total"].rss_mib, usage["me"].rss_mib,
            "the generator is not the shop"
        );
    }
}
