//! What happened to a write that the user's Stop did not reach: the finding categories.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened downstream of a tool call that the user's Stop did not reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The server gave up before its commit point: the write did not land.
    PreCommitAbort,
    /// The server committed after the abort and answered nobody.
    ClientGone,
    /// The request was queued; a worker ran it after the abort.
    LateQueued,
    /// The tool call, or its request, started after the abort: the signal was ignored.
    DispatchedAfterAbort,
    /// In flight at the abort with no downstream evidence: nobody can tell whether it wrote.
    Unverified,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::PreCommitAbort,
        Category::ClientGone,
        Category::LateQueued,
        Category::DispatchedAfterAbort,
        Category::Unverified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::PreCommitAbort => "pre_commit_abort",
            Category::ClientGone => "client_gone",
            Category::LateQueued => "late_queued",
            Category::DispatchedAfterAbort => "dispatched_after_abort",
            Category::Unverified => "unverified",
        }
    }

    /// What a finding of this category means, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Category::PreCommitAbort => {
                "the server noticed the closed connection before its commit point and rolled back: the write did not land"
            }
            Category::ClientGone => "the server committed after the abort and answered nobody",
            Category::LateQueued => {
                "the request was queued (202, a producer span, an accepted event); a worker ran it after the abort"
            }
            Category::DispatchedAfterAbort => {
                "the tool call, or its request, started after the abort: the abort signal was ignored"
            }
            Category::Unverified => {
                "in flight at the abort, and nothing downstream of it is known: nobody can tell whether it wrote"
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether findings of this category are writes that landed after the user stopped.
    pub fn is_late(self) -> bool {
        matches!(
            self,
            Category::ClientGone | Category::LateQueued | Category::DispatchedAfterAbort
        )
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
