//! The three roles, each allowed everything the one before it is.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What a token may do. Ordered: a role permits whatever a smaller one does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads: incidents, evidence, diagnoses, the graph, actions, the audit log, MCP tools.
    Viewer,
    /// A viewer who may also approve or deny actions and judge diagnoses.
    Approver,
    /// Everything, including issuing and revoking tokens.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Approver => "approver",
            Self::Admin => "admin",
        }
    }

    /// Whether a holder of this role may do what needs `need`.
    pub fn permits(self, need: Role) -> bool {
        self >= need
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a role: viewer, approver or admin"))
    }
}
