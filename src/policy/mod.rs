//! TEMPORARY scaffold with the policy engine's public API, so the service compiles while the
//! engine is written; replaced wholesale by the real engine (src/policy/).
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Escalate,
    Block,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Block,
    Escalate,
    Warn,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub category: String,
    pub severity: Severity,
    pub start: usize,
    pub end: usize,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub suggestion: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    pub verdict: Verdict,
    pub weighted_length: usize,
    pub policy_version: String,
    pub findings: Vec<Finding>,
}
#[derive(Debug, Clone, Serialize)]
pub struct PolicyFileError {
    pub file: String,
    pub line: Option<usize>,
    pub rule: Option<String>,
    pub message: String,
}
#[derive(Debug)]
pub struct PolicyLoadError {
    pub errors: Vec<PolicyFileError>,
}
impl std::fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.errors {
            writeln!(
                f,
                "{}:{}: {}: {}",
                e.file,
                e.line.unwrap_or(0),
                e.rule.clone().unwrap_or_default(),
                e.message
            )?;
        }
        Ok(())
    }
}
impl std::error::Error for PolicyLoadError {}
pub struct PolicySet {
    version: String,
    files: Vec<String>,
}
impl PolicySet {
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyLoadError> {
        if !dir.is_dir() {
            return Err(PolicyLoadError {
                errors: vec![PolicyFileError {
                    file: dir.display().to_string(),
                    line: None,
                    rule: None,
                    message: "not a folder".into(),
                }],
            });
        }
        Ok(PolicySet {
            version: "0".repeat(64),
            files: vec![],
        })
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn check(&self, text: &str) -> CheckReport {
        let n = text.chars().count();
        let mut findings = vec![];
        if text.contains("password") {
            findings.push(Finding {
                rule: "credentials.ask".into(),
                category: "credentials".into(),
                severity: Severity::Block,
                start: 0,
                end: n,
                message: "asks for a password".into(),
                suggestion: None,
            });
        }
        if text.contains("guaranteed") {
            findings.push(Finding {
                rule: "promise.guarantee".into(),
                category: "promise".into(),
                severity: Severity::Escalate,
                start: 0,
                end: n,
                message: "promise".into(),
                suggestion: None,
            });
        }
        let verdict = if findings.iter().any(|f| f.severity == Severity::Block) {
            Verdict::Block
        } else if findings.iter().any(|f| f.severity == Severity::Escalate) {
            Verdict::Escalate
        } else {
            Verdict::Pass
        };
        CheckReport {
            id: None,
            verdict,
            weighted_length: n,
            policy_version: self.version.clone(),
            findings,
        }
    }
    pub fn rule_count(&self) -> usize {
        0
    }
    pub fn files(&self) -> &[String] {
        &self.files
    }
}
pub fn weighted_length(text: &str) -> usize {
    text.chars().count()
}
