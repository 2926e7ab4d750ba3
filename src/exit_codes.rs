//! Exit codes, the same for every command (documented in `docs/cli.md`).

/// Process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// The command did what was asked (quarantined rows are reported, not failures).
    Success = 0,
    /// A check ran and found problems (verify, audit verify, certificate verify).
    CheckFailed = 1,
    /// The command refused or failed: bad arguments, pipeline, input, keys, storage.
    Error = 2,
}

impl ExitCode {
    /// The worse of two codes.
    pub fn merge(self, other: ExitCode) -> ExitCode {
        if (other as i32) > (self as i32) {
            other
        } else {
            self
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_the_worst() {
        assert_eq!(
            ExitCode::Success.merge(ExitCode::CheckFailed),
            ExitCode::CheckFailed
        );
        assert_eq!(
            ExitCode::Error.merge(ExitCode::CheckFailed),
            ExitCode::Error
        );
        assert_eq!(
            ExitCode::Success.merge(ExitCode::Success),
            ExitCode::Success
        );
    }
}
