//! Loading a TOML config file: the type defaults every field and refuses unknown ones
//! (serde), [`Validate`] checks what serde cannot, and every error names the file and field.

use std::path::Path;

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid")]
    Parse {
        path: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{origin}: config field `{field}` is invalid: {reason}")]
    Invalid {
        origin: String,
        field: &'static str,
        reason: String,
    },
}

impl ConfigError {
    pub fn invalid(origin: &str, field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            origin: origin.to_string(),
            field,
            reason: reason.into(),
        }
    }
}

/// Checks on values that deserialising cannot express.
pub trait Validate {
    /// `origin` names where the values came from (a file, "the command line") in errors.
    fn validate(&self, origin: &str) -> Result<(), ConfigError>;
}

/// Reads, parses and validates `path`.
pub fn from_file<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    from_toml(&text, &shown)
}

/// Parses and validates TOML text; `origin` names it in errors.
pub fn from_toml<T: DeserializeOwned + Validate>(
    text: &str,
    origin: &str,
) -> Result<T, ConfigError> {
    let config: T = toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: origin.to_string(),
        source,
    })?;
    config.validate(origin)?;
    Ok(config)
}

/// The error and its causes on one line, as `anyhow` shows them to a user.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        size: u32,
    }

    impl Validate for Sample {
        fn validate(&self, origin: &str) -> Result<(), ConfigError> {
            if self.size == 0 {
                return Err(ConfigError::invalid(origin, "size", "must be positive"));
            }
            Ok(())
        }
    }

    #[test]
    fn each_failure_names_file_and_field() {
        let typo = from_toml::<Sample>("sise = 1\n", "s.toml").expect_err("unknown field");
        assert!(error_chain(&typo).contains("s.toml") && error_chain(&typo).contains("sise"));
        let zero = from_toml::<Sample>("size = 0\n", "s.toml").expect_err("invalid value");
        assert_eq!(
            zero.to_string(),
            "s.toml: config field `size` is invalid: must be positive"
        );
        let missing = from_file::<Sample>(Path::new("/nonexistent/s.toml")).expect_err("no file");
        assert!(error_chain(&missing).contains("/nonexistent/s.toml"));
        assert_eq!(
            from_toml::<Sample>("size = 3\n", "s.toml")
                .map(|s| s.size)
                .ok(),
            Some(3)
        );
    }
}
