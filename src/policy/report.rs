//! The check report of `checks.md`, and the load errors of a policy set.

use serde::{Deserialize, Serialize};

/// The verdict of a check: `block` if any finding blocks, else `escalate` if any
/// escalates, else `pass`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Escalate,
    Block,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Escalate => "escalate",
            Verdict::Block => "block",
        }
    }
}

/// The severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The draft cannot be submitted, approved or posted.
    Block,
    /// The draft needs two approvals from two reviewers other than its author.
    Escalate,
    /// Shown to agent and reviewer; one approval suffices.
    Warn,
}

impl Severity {
    /// The severity a category has when its rule names none (the table of `checks.md`).
    pub fn default_for(category: &str) -> Option<Severity> {
        Some(match category {
            "pii.card" | "pii.ssn" | "pii.iban" | "pii.email" | "pii.phone" | "credentials"
            | "profanity" | "length" => Severity::Block,
            "promise" | "liability" | "financial_advice" | "health" | "disclosure" => {
                Severity::Escalate
            }
            "links" => Severity::Warn,
            _ => return None,
        })
    }

    /// The verdict a finding of this severity gives on its own.
    pub fn verdict(self) -> Verdict {
        match self {
            Severity::Block => Verdict::Block,
            Severity::Escalate => Verdict::Escalate,
            Severity::Warn => Verdict::Pass,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Block => "block",
            Severity::Escalate => "escalate",
            Severity::Warn => "warn",
        }
    }
}

/// One thing a rule found in a draft. `start` and `end` are offsets in Unicode scalar values
/// into the original text, `end` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Whose length rule a check applies (checks.md "Categories", `length`): X's weighted
/// count (also when no channel is given), or Mastodon's.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LengthRule {
    /// 280 by twitter-text v3's weighted count (URLs 23, CJK and emoji 2, NFC first).
    #[default]
    X,
    /// 500 characters (grapheme clusters, as Mastodon counts), a URL 23, a mention
    /// `@user@domain` by its `@user`.
    Mastodon,
}

impl LengthRule {
    pub fn as_str(self) -> &'static str {
        match self {
            LengthRule::X => "x",
            LengthRule::Mastodon => "mastodon",
        }
    }
}

/// A draft is checked under its inbound message's channel: Mastodon's rule on Mastodon,
/// X's on X and on the log channel (which has no limit of its own).
impl From<crate::domain::inbound::Channel> for LengthRule {
    fn from(channel: crate::domain::inbound::Channel) -> LengthRule {
        match channel {
            crate::domain::inbound::Channel::Mastodon => LengthRule::Mastodon,
            crate::domain::inbound::Channel::X | crate::domain::inbound::Channel::Log => {
                LengthRule::X
            }
        }
    }
}

impl std::str::FromStr for LengthRule {
    type Err = String;
    fn from_str(s: &str) -> Result<LengthRule, String> {
        match s {
            "x" => Ok(LengthRule::X),
            "mastodon" => Ok(LengthRule::Mastodon),
            other => Err(format!(
                "unknown channel {other:?} for the length rule (channels: x, mastodon)"
            )),
        }
    }
}

/// The report of one check, exactly as `checks.md` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckReport {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    pub verdict: Verdict,
    /// The length by `length_rule`'s count.
    pub weighted_length: usize,
    /// Reports stored before channels had their own rule were all X's.
    #[serde(default)]
    pub length_rule: LengthRule,
    pub policy_version: String,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// True when some finding has this category.
    pub fn has_category(&self, category: &str) -> bool {
        self.findings.iter().any(|f| f.category == category)
    }

    /// True when some finding comes from this rule.
    pub fn has_rule(&self, rule: &str) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }
}

/// One problem in one policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PolicyFileError {
    /// Path of the file relative to the policy folder.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The rule id, when the problem belongs to a rule.
    pub rule: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, ": {rule}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A policy set that could not be loaded: every problem found, one per line in `Display`.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PolicyLoadError {
    pub errors: Vec<PolicyFileError>,
}

impl std::fmt::Display for PolicyLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
