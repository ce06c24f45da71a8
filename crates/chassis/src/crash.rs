//! Named crash points: places in a service where a test may make the process die on purpose, as
//! abruptly as SIGKILL, to prove that whatever it leaves half done is recovered.
//!
//! A service marks a dangerous moment with one call, `crash::point("orders.after-commit-before-publish")`.
//! It does nothing unless the process was started with [`POINTS_VAR`] naming that point:
//!
//! - `SOUK_CRASH_POINTS=a,b@3` arms point `a` (it fires the first time it is reached) and `b` (it
//!   fires the third time). Counting starts afresh with every process: a restarted process re-arms
//!   its points.
//! - A point that fires writes one line to stderr and calls [`std::process::abort`]: no destructor
//!   runs, nothing buffered is flushed, no transaction in flight commits.
//! - With [`SPENT_DIR_VAR`] naming a directory, a point fires at most once across every process
//!   that shares that directory: before aborting it creates a file named after itself there, and
//!   a point whose file exists is spent and lets the process go on. That is how a supervised
//!   process, restarted with the same environment, crashes once and then recovers instead of
//!   crashing at every start. Without it, a point fires in every process that reaches it.
//!
//! The variable is read once, at the first point reached; afterwards an unarmed process pays one
//! atomic load per point. Names are `<service>.<moment>`; the list, and the harness that arms
//! them, are in `services/orders/README.md` ("Crash safety").

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The comma-separated points to arm, each `name` or `name@N` (fire on the N-th hit, N ≥ 1).
pub const POINTS_VAR: &str = "SOUK_CRASH_POINTS";

/// A directory where each point that fires leaves a file of its name, so that it never fires
/// again in any process that shares the directory.
pub const SPENT_DIR_VAR: &str = "SOUK_CRASH_SPENT_DIR";

/// Crashes the process here if `name` is armed and this is its hit; otherwise does nothing.
pub fn point(name: &str) {
    let armed = ARMED.get_or_init(Armed::from_env);
    if armed.points.is_empty() {
        return;
    }
    armed.reach(name);
}

static ARMED: OnceLock<Armed> = OnceLock::new();

/// The points this process was started with.
#[derive(Debug, Default)]
struct Armed {
    points: Vec<ArmedPoint>,
    spent_dir: Option<PathBuf>,
}

#[derive(Debug)]
struct ArmedPoint {
    name: String,
    at: u64,
    hits: AtomicU64,
    spent: AtomicBool,
}

impl Armed {
    fn from_env() -> Self {
        let Ok(spec) = std::env::var(POINTS_VAR) else {
            return Self::default();
        };
        let (points, errors) = parse(&spec);
        for error in errors {
            eprintln!("souk: {POINTS_VAR}: {error}; that entry is ignored");
        }
        Self {
            points: points
                .into_iter()
                .map(|(name, at)| ArmedPoint {
                    name,
                    at,
                    hits: AtomicU64::new(0),
                    spent: AtomicBool::new(false),
                })
                .collect(),
            spent_dir: std::env::var_os(SPENT_DIR_VAR).map(PathBuf::from),
        }
    }

    fn reach(&self, name: &str) {
        let Some(point) = self.points.iter().find(|p| p.name == name) else {
            return;
        };
        let hit = point.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if hit != point.at || point.spent.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(dir) = &self.spent_dir
            && !claim(dir, name)
        {
            return;
        }
        eprintln!(
            "souk: crash point {name} reached (hit {hit}, pid {}): aborting",
            std::process::id()
        );
        std::process::abort();
    }
}

/// Takes the point's file in `dir`: `true` if this process is the one to crash for it.
fn claim(dir: &std::path::Path, name: &str) -> bool {
    let created = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(name))
    });
    match created {
        Ok(_) => true,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(err) => {
            // Crashing without the file would crash again at every start: do not crash.
            eprintln!(
                "souk: crash point {name} not fired: cannot write its file in {}: {err}",
                dir.display()
            );
            false
        }
    }
}

/// Reads `a,b@3`: each point's name and the hit it fires on, and a message for each bad entry.
fn parse(spec: &str) -> (Vec<(String, u64)>, Vec<String>) {
    let mut points = Vec::new();
    let mut errors = Vec::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, at) = match entry.split_once('@') {
            None => (entry, Some(1)),
            Some((name, n)) => (name.trim(), n.trim().parse::<u64>().ok().filter(|&n| n > 0)),
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        match at {
            Some(at) if valid_name => points.push((name.to_owned(), at)),
            Some(_) => errors.push(format!(
                "{entry:?} is not a point name (letters, digits, '.', '-', '_')"
            )),
            None => errors.push(format!(
                "{entry:?}: the hit after '@' must be a whole number from 1"
            )),
        }
    }
    (points, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> Vec<(String, u64)> {
        let (points, errors) = parse(spec);
        assert!(errors.is_empty(), "{errors:?}");
        points
    }

    #[test]
    fn a_list_of_names_arms_each_at_its_first_hit() {
        assert_eq!(
            names("orders.after-commit-before-publish, payments.after-charge-before-record"),
            [
                ("orders.after-commit-before-publish".to_owned(), 1),
                ("payments.after-charge-before-record".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn a_hit_number_after_the_at_sign_delays_the_crash() {
        assert_eq!(
            names("a@3,b@1, c_d @ 12 "),
            [
                ("a".to_owned(), 3),
                ("b".to_owned(), 1),
                ("c_d".to_owned(), 12)
            ]
        );
    }

    #[test]
    fn empty_entries_are_nothing() {
        assert_eq!(names(""), []);
        assert_eq!(names(" , ,"), []);
        assert_eq!(names("a,,b,"), [("a".to_owned(), 1), ("b".to_owned(), 1)]);
    }

    #[test]
    fn bad_entries_are_reported_and_the_rest_kept() {
        let (points, errors) = parse("a@0,b@x,@3,c d,e@-1,ok@2,f@");
        assert_eq!(points, [("ok".to_owned(), 2)]);
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[0].contains("a@0"), "{errors:?}");
    }

    #[test]
    fn a_spent_file_lets_a_point_fire_once_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let spent = dir.path().join("spent");
        // The first claim (made just before aborting) wins; every later one, in this process
        // or a restarted one, finds the file and lets the process go on.
        assert!(claim(&spent, "x.y"));
        assert!(!claim(&spent, "x.y"));
        assert!(spent.join("x.y").exists());
        assert!(claim(&spent, "x.z"));
    }

    #[test]
    fn unarmed_and_unlisted_points_do_nothing() {
        // The test process has no SOUK_CRASH_POINTS: every point passes.
        point("orders.after-commit-before-publish");
        let armed = Armed {
            points: vec![ArmedPoint {
                name: "a".into(),
                at: 2,
                hits: AtomicU64::new(0),
                spent: AtomicBool::new(false),
            }],
            spent_dir: None,
        };
        armed.reach("b");
        armed.reach("a"); // the first hit of a point armed for its second: no crash
        assert_eq!(armed.points[0].hits.load(Ordering::Relaxed), 1);
    }
}
