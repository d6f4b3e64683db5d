//! The policy file format (TOML) and reading a policy folder.
//!
//! A policy folder holds `*.toml` files (sub-folders allowed). Each file may hold one
//! `[organisation]` table (in exactly one file of the set), any number of `[[rule]]`
//! tables, and review routes (`[[route]]`, all in one file: `routes.toml`). Unknown fields are errors, so a misspelt key never silently disables a rule.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::detectors::DetectorKind;
use super::report::{PolicyFileError, Severity};

/// One policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileDef {
    #[serde(default)]
    pub organisation: Option<Spanned<OrgDef>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RuleDef>>,
    #[serde(default)]
    pub route: Vec<Spanned<super::routes::RouteDef>>,
}

/// The organisation's own contact points and accepted vocabulary.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrgDef {
    #[serde(default)]
    #[allow(dead_code)]
    pub name: Option<String>,
    /// Its own e-mail addresses (never reported).
    #[serde(default)]
    pub emails: Vec<String>,
    /// Domains any address of which is its own.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Its own phone numbers, in any usual format.
    #[serde(default)]
    pub phones: Vec<Spanned<String>>,
    /// Regions (ISO 3166 codes) phone numbers are read in; the first is the default.
    #[serde(default)]
    pub phone_regions: Vec<Spanned<String>>,
    /// Its own X handles.
    #[serde(default)]
    pub handles: Vec<String>,
    /// Its own link prefixes (a host, optionally with a path).
    #[serde(default)]
    pub links: Vec<String>,
    /// Words and names that no word or pattern rule reports (like Vale's accept list).
    #[serde(default)]
    pub accept: Vec<String>,
    /// Texts using the organisation's own contact points that no detector rule may report
    /// (checked at load, like rule examples).
    #[serde(default)]
    pub examples: Vec<Spanned<String>>,
}

/// The kinds of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RuleKind {
    Pattern,
    Terms,
    Detector,
    Require,
    Length,
}

impl RuleKind {
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Pattern => "pattern",
            RuleKind::Terms => "terms",
            RuleKind::Detector => "detector",
            RuleKind::Require => "require",
            RuleKind::Length => "length",
        }
    }
}

/// One `[[rule]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleDef {
    pub id: Spanned<String>,
    pub kind: Spanned<RuleKind>,
    pub category: Spanned<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    pub message: String,
    #[serde(default)]
    pub suggestion: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
    #[serde(default)]
    pub patterns: Vec<Spanned<String>>,
    #[serde(default)]
    pub whole_word: Option<bool>,
    #[serde(default)]
    pub case_sensitive: Option<bool>,
    #[serde(default)]
    pub terms: Vec<Spanned<String>>,
    #[serde(default)]
    pub detector: Option<Spanned<DetectorKind>>,
    #[serde(default)]
    pub when: Vec<Spanned<String>>,
    #[serde(default)]
    pub needs: Vec<Spanned<String>>,
    #[serde(default)]
    pub max: Option<usize>,
    /// A length rule's channel (`x`, the default, or `mastodon`): it applies to checks
    /// under that channel's length rule only.
    #[serde(default)]
    pub channel: Option<Spanned<String>>,
    #[serde(default)]
    pub exceptions: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow_organisation: Option<bool>,
    #[serde(default)]
    pub examples: Option<ExamplesDef>,
}

/// Texts a rule must report (`match`) and must not report (`no_match`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExamplesDef {
    #[serde(default, rename = "match")]
    pub matching: Vec<Spanned<String>>,
    #[serde(default)]
    pub no_match: Vec<Spanned<String>>,
}

/// A policy file read from disk.
pub(crate) struct SourceFile {
    pub rel: String,
    pub content: String,
}

impl SourceFile {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, byte: usize) -> usize {
        let end = byte.min(self.content.len());
        self.content.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// Line of the `[[rule]]` header of the rule whose id sits at `byte`.
    pub fn rule_line(&self, byte: usize) -> usize {
        let end = byte.min(self.content.len());
        match self.content[..end].rfind("[[rule]]") {
            Some(h) => self.line_of(h),
            None => self.line_of(byte),
        }
    }

    /// The id of the rule whose table contains `byte`, read from the text (used for TOML
    /// errors, when the file could not be parsed).
    pub fn rule_id_at(&self, byte: usize) -> Option<String> {
        let end = byte.min(self.content.len());
        let start = self.content.get(..end)?.rfind("[[rule]]")?;
        let rest = &self.content[start + "[[rule]]".len()..];
        let table_end = rest.find("\n[").unwrap_or(rest.len());
        for line in rest[..table_end].lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("id") {
                let v = v.trim_start();
                if let Some(v) = v.strip_prefix('=') {
                    let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
                    if !v.is_empty() {
                        return Some(v.to_string());
                    }
                }
            }
        }
        None
    }

    pub fn error(
        &self,
        byte: Option<usize>,
        rule: Option<String>,
        message: impl Into<String>,
    ) -> PolicyFileError {
        PolicyFileError {
            file: self.rel.clone(),
            line: byte.map(|b| self.line_of(b)),
            rule,
            message: message.into(),
        }
    }

    /// Parses the file.
    pub fn parse(&self) -> Result<FileDef, PolicyFileError> {
        toml::from_str::<FileDef>(&self.content).map_err(|e| {
            let start = e.span().map(|s| s.start);
            let rule = start.and_then(|b| self.rule_id_at(b));
            // The TOML parser leaves some messages empty (a stray carriage return, say).
            let message = match e.message().trim() {
                "" => "not valid TOML here".to_string(),
                m => m.to_string(),
            };
            self.error(start, rule, message)
        })
    }
}

fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&path, base, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            let rel = path
                .strip_prefix(base)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

/// Reads every `*.toml` file under `dir`, sorted by relative path.
pub(crate) fn read_folder(dir: &Path) -> Result<Vec<SourceFile>, PolicyFileError> {
    let folder_error = |message: String| PolicyFileError {
        file: dir.display().to_string(),
        line: None,
        rule: None,
        message,
    };
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths)
        .map_err(|e| folder_error(format!("cannot read the policy folder: {e}")))?;
    paths.sort();
    if paths.is_empty() {
        return Err(folder_error(
            "no policy files (*.toml) in the policy folder".into(),
        ));
    }
    let mut files = Vec::with_capacity(paths.len());
    for (rel, path) in paths {
        let content = std::fs::read_to_string(&path).map_err(|e| PolicyFileError {
            file: rel.clone(),
            line: None,
            rule: None,
            message: format!("cannot read the file: {e}"),
        })?;
        files.push(SourceFile { rel, content });
    }
    Ok(files)
}
