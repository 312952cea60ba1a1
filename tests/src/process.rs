//! Child processes of a test: the harness's [`switchyard_harness::Proc`] with the tests' policy
//! (PATH and HOME kept, a log file of its own under the temp dir, removed unless the test
//! panics) and a constructor that panics instead of returning an error.

use std::ops::Deref;
use std::path::Path;

use switchyard_harness::{Log, Spawn};

use crate::unique_name;

/// Variables of the test process every child keeps.
pub(crate) const INHERITED: &[&str] = &["PATH", "HOME"];

/// A child process in its own process group, with a clean environment (PATH and HOME kept),
/// whose stdout and stderr go to a log file; its group is SIGKILLed on drop if it still runs,
/// or by a watchdog if the test process dies first. The log is removed on drop unless the test
/// is panicking, in which case its tail is printed. Its methods are the harness's.
#[derive(Debug)]
pub struct Proc(switchyard_harness::Proc);

impl Proc {
    /// Spawns `program` with `args` and exactly the environment `env` plus PATH and HOME; `name`
    /// labels its log.
    pub fn spawn(name: &str, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let proc = spec(name, program)
            .args(args)
            .envs(env.iter().copied())
            .start()
            .unwrap_or_else(|e| panic!("{e}"));
        Self(proc)
    }
}

impl From<switchyard_harness::Proc> for Proc {
    fn from(proc: switchyard_harness::Proc) -> Self {
        Self(proc)
    }
}

impl Deref for Proc {
    type Target = switchyard_harness::Proc;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// How a test starts `program`: its own log under the temp dir, PATH and HOME kept.
pub(crate) fn spec(name: &str, program: &Path) -> Spawn {
    let log = std::env::temp_dir().join(format!("{}.log", unique_name(name)));
    Spawn::new(name, program, Log::Owned(log)).inherit(INHERITED)
}
