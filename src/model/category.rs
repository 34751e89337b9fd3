//! What happened to a write that the user's Stop did not reach: the finding categories.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened downstream of a tool call that the user's Stop did not reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The work was stopped before its commit point (a check of the client, a deadline, a
    /// cancel): the write did not land.
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
                "the work was stopped before its commit point (the server saw the client go, a deadline pass or a cancel) and rolled back: the write did not land"
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

    /// What to do about a finding of this category, in a few sentences (SARIF rules' help, the
    /// HTML report).
    pub fn help(self) -> &'static str {
        match self {
            Category::PreCommitAbort => {
                "Nothing landed: the work was stopped before its commit point, by the server's check of its client, a deadline it honoured or a cancel (the finding's prevention says which). Nothing to repair; keep that protocol in place."
            }
            Category::ClientGone => {
                "The write landed for a conversation the user had stopped, and the agent never learnt it. Reconcile it (refund, retract, undo), then send an idempotency key with the write and have the server check the client is still there before it commits, or make the tool call wait for the answer before the abort completes."
            }
            Category::LateQueued => {
                "The job was accepted before the Stop and a worker ran it afterwards. Reconcile what the worker wrote, then have the worker check whether its conversation was cancelled before it writes, or cancel queued jobs when the user stops."
            }
            Category::DispatchedAfterAbort => {
                "The agent runtime started the tool call, or its request, after the user stopped: the abort signal was not passed down or not checked. Reconcile the write, then pass the abort signal to the tool and its HTTP client and check it before each request."
            }
            Category::Unverified => {
                "The tool call was in flight at the Stop and nothing downstream of it is in the inputs. Export the downstream service's spans, or its vendor events, to tell whether it wrote."
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
