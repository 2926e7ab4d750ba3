//! The archive's lock object (`LOCK`): one migrate, purge, erase or rekey at a time.

use serde::{Deserialize, Serialize};

use super::store::{Store, StoreError};
use super::ArchiveError;

/// The lock object.
pub const LOCK: &str = "LOCK";

/// What the lock object says (no personal data).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockInfo {
    /// Command holding it.
    pub command: String,
    /// Operator id.
    pub operator: String,
    /// When it was taken (UTC).
    pub started: String,
    /// Process id.
    pub pid: u32,
    /// Host name, if known.
    pub host: String,
}

/// A held lock; removed when dropped (also on error paths).
pub struct Lock<'a> {
    store: &'a Store,
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        // Every version: on a versioned bucket a plain delete leaves the lock's versions
        // and a delete marker behind, once per run.
        let _ = self.store.delete_all_versions(LOCK);
    }
}

/// This machine's host name, if known (a lock names where its holder runs).
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Take the archive's lock, or refuse naming who holds it.
pub fn acquire_lock<'a>(
    store: &'a Store,
    command: &str,
    operator: &str,
    now: &str,
) -> Result<Lock<'a>, ArchiveError> {
    let info = LockInfo {
        command: command.into(),
        operator: operator.into(),
        started: now.into(),
        pid: std::process::id(),
        host: host_name(),
    };
    let bytes = serde_json::to_vec_pretty(&info).map_err(|e| ArchiveError::State(e.to_string()))?;
    match store.put_new(LOCK, bytes) {
        Ok(()) => Ok(Lock { store }),
        Err(StoreError::AlreadyExists { .. }) => {
            let held = store
                .get(LOCK)
                .ok()
                .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
                .map(|l| {
                    format!(
                        " (held by `{}` of operator {}, pid {} on {}, since {})",
                        l.command, l.operator, l.pid, l.host, l.started
                    )
                })
                .unwrap_or_default();
            Err(ArchiveError::State(format!(
                "archive `{}` is locked: object `{LOCK}` exists{held}; another migrate, purge, erase or rekey is running, or one was killed",
                store.location()
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// [`acquire_lock`] for a migration into a new location. Two migrations started into one
/// folder at once would both find it empty; the lock lets one through and refuses the
/// other. A lock left by a killed migration on this host (its process no longer runs) is
/// taken over, so that a rerun completes as before; any other lock refuses.
pub fn acquire_migrate_lock<'a>(store: &'a Store, now: &str) -> Result<Lock<'a>, ArchiveError> {
    match acquire_lock(store, "migrate", "-", now) {
        Err(ArchiveError::State(m)) if m.contains("is locked") => {
            let stale = store
                .get(LOCK)
                .ok()
                .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok())
                .is_some_and(|l| {
                    l.command == "migrate"
                        && l.host == host_name()
                        && l.pid != std::process::id()
                        && std::path::Path::new("/proc/self").exists()
                        && !running(l.pid)
                });
            if !stale {
                return Err(ArchiveError::State(m));
            }
            store.delete_all_versions(LOCK)?;
            acquire_lock(store, "migrate", "-", now)
        }
        other => other,
    }
}

/// Whether process `pid` runs on this host (Linux `/proc`): a zombie — killed, not yet
/// reaped by its parent, as right after `timeout -s KILL` — does not.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last `)` (comm may hold one).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process runs; a child killed and not yet reaped (a zombie) does not; one reaped
    /// does not.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_zombie_does_not_run() {
        assert!(running(std::process::id()));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(running(child.id()));
        child.kill().unwrap();
        // Until `wait`, the killed child is a zombie.
        let mut zombie = false;
        for _ in 0..100 {
            if !running(child.id()) {
                zombie = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(zombie);
        child.wait().unwrap();
        assert!(!running(child.id()));
    }

    #[test]
    fn a_lock_names_its_holder_refuses_a_second_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path().to_str().unwrap()).unwrap();
        let held = acquire_lock(&store, "rekey", "op-9", "2026-12-07T00:00:00Z").unwrap();
        let info: LockInfo = serde_json::from_slice(&store.get(LOCK).unwrap()).unwrap();
        assert_eq!(
            (info.command.as_str(), info.operator.as_str()),
            ("rekey", "op-9")
        );
        assert_eq!(info.pid, std::process::id());
        let e = acquire_lock(&store, "purge", "op-1", "2026-12-07T00:00:01Z")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("is locked") && e.contains("`rekey` of operator op-9"),
            "{e}"
        );
        drop(held);
        assert!(!store.exists(LOCK).unwrap());
        drop(acquire_lock(&store, "purge", "op-1", "2026-12-07T00:00:02Z").unwrap());
    }
}
