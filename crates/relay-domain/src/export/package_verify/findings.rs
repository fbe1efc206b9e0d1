//! What the checks found: the failures (one per file and check) and the checks that held, in
//! the order the checks ran.

use super::{Finding, PassedCheck};

/// The findings and passed checks of one verification, in check order.
#[derive(Default)]
pub(super) struct Findings {
    /// Checks that failed.
    pub(super) list: Vec<Finding>,
    /// Checks that held.
    pub(super) passed: Vec<PassedCheck>,
}

impl Findings {
    /// Records a failed check, unless this file already failed this check.
    pub(super) fn fail(
        &mut self,
        file: &str,
        row: Option<u64>,
        seq: Option<u64>,
        check: &'static str,
        detail: impl Into<String>,
    ) {
        // One finding per (file, check) is enough to name the fault; a hostile package could
        // otherwise make the report as large as itself.
        if self.list.iter().any(|f| f.file == file && f.check == check) {
            return;
        }
        self.list.push(Finding {
            file: file.to_owned(),
            row,
            seq,
            check,
            detail: detail.into(),
        });
    }

    /// Records a check that held.
    pub(super) fn pass(&mut self, check: &'static str, detail: impl Into<String>) {
        self.passed.push(PassedCheck {
            check,
            detail: detail.into(),
        });
    }

    /// Whether any check failed on `file`.
    pub(super) fn has(&self, file: &str) -> bool {
        self.list.iter().any(|f| f.file == file)
    }
}
