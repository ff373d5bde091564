//! The lab's namespace of names, and the guard every fault goes through.

use crate::error::{LabError, Result};

/// Every resource the lab creates starts with this.
pub const PREFIX: &str = "vigil-lab-";

/// A name proven to be inside the lab (`vigil-lab-<suffix>`, no path tricks).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LabName(String);

impl LabName {
    /// Accepts only `vigil-lab-` followed by `[a-z0-9-]`, so no `..`, `/` or spaces can
    /// smuggle a path outside the lab's cgroups or namespaces.
    pub fn parse(name: &str) -> Result<Self> {
        let ok = name.strip_prefix(PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 40
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(LabError::OutsideLab {
                target: name.to_string(),
            })
        }
    }

    /// `vigil-lab-<suffix>`.
    pub fn of(suffix: &str) -> Result<Self> {
        Self::parse(&format!("{PREFIX}{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LabName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_names_pass() {
        assert!(LabName::parse("vigil-lab-app1").is_ok());
        for bad in [
            "app1",
            "vigil-lab-",
            "vigil-lab-../memory",
            "vigil-lab-a/b",
            "kube-system",
            "vigil-lab-A",
            "xvigil-lab-a",
        ] {
            let err = LabName::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("vigil-lab-"), "{err}");
        }
    }
}
