//! The compliance policy engine: loads a folder of TOML policy files, compiles every rule
//! once, and checks drafts against them, giving the report of `checks.md`.
//!
//! ```no_run
//! use countersign::policy::PolicySet;
//! let set = PolicySet::load(std::path::Path::new("policies")).expect("valid policies");
//! let report = set.check("Your money back, guaranteed.");
//! println!("{}", serde_json::to_string(&report).unwrap_or_default());
//! ```
//!
//! The language is described for compliance officers in `docs/policies.md`.

mod char_table;
mod config;
mod detectors;
mod engine;
mod length;
mod normalize;
mod org;
pub mod preview;
mod report;
pub mod routes;

use std::path::Path;

use sha2::{Digest, Sha256};

pub use detectors::DetectorKind;
pub use length::weighted_length;
pub use report::{
    CheckReport, Finding, LengthRule, PolicyFileError, PolicyLoadError, Severity, Verdict,
};

use config::{read_folder, SourceFile};
use engine::Engine;

/// A loaded, compiled and verified policy set. Cheap to share between threads (`Send +
/// Sync`); nothing is compiled when checking.
#[derive(Debug)]
pub struct PolicySet {
    version: String,
    files: Vec<String>,
    /// Each file's name and text, as loaded (recorded in the audit log when the set comes
    /// into force).
    texts: Vec<(String, String)>,
    engine: Engine,
    routes: routes::Routes,
}

/// The policy version: lowercase hex SHA-256 over the sorted files, each framed as
/// its name's length (8 bytes, big-endian), the name, its content's length and the content.
fn version_of(files: &[SourceFile]) -> String {
    let mut h = Sha256::new();
    h.update(b"countersign-policy-set-v1\n");
    for f in files {
        h.update((f.rel.len() as u64).to_be_bytes());
        h.update(f.rel.as_bytes());
        h.update((f.content.len() as u64).to_be_bytes());
        h.update(f.content.as_bytes());
    }
    hex::encode(h.finalize())
}

impl PolicySet {
    /// Loads every `*.toml` file under `dir`, compiles the rules and checks every rule's
    /// examples. Any problem (bad TOML, unknown field, bad regex, duplicate rule id, failing
    /// example...) refuses the whole set, naming file, line and rule.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyLoadError> {
        let sources = read_folder(dir).map_err(|e| PolicyLoadError { errors: vec![e] })?;
        Self::compile(sources)
    }

    /// The same from files in memory, `(name, text)`: a proposed set sent for a preview.
    /// Names are relative paths ending in `.toml` (`a/b.toml`), without `..`; a bad or
    /// repeated name is an error naming it, like any other error of the set.
    pub fn from_files(files: Vec<(String, String)>) -> Result<PolicySet, PolicyLoadError> {
        let mut errors = Vec::new();
        let mut sources: Vec<SourceFile> = Vec::new();
        for (rel, content) in files {
            let bad = !rel.ends_with(".toml")
                || rel.len() > 200
                || rel.starts_with('/')
                || rel.contains('\\')
                || rel
                    .split('/')
                    .any(|part| part.is_empty() || part == "." || part == "..");
            if bad || sources.iter().any(|s| s.rel == rel) {
                errors.push(PolicyFileError {
                    file: rel.chars().take(200).collect(),
                    line: None,
                    rule: None,
                    message: if bad {
                        "a policy file's name is a relative path ending in .toml, without ..".into()
                    } else {
                        "two files have this name".into()
                    },
                });
                continue;
            }
            sources.push(SourceFile { rel, content });
        }
        if sources.is_empty() && errors.is_empty() {
            errors.push(PolicyFileError {
                file: String::new(),
                line: None,
                rule: None,
                message: "no policy files (*.toml)".into(),
            });
        }
        if !errors.is_empty() {
            return Err(PolicyLoadError { errors });
        }
        // The order of a folder's files, so the version is the folder's.
        sources.sort_by(|a, b| a.rel.cmp(&b.rel));
        Self::compile(sources)
    }

    fn compile(sources: Vec<SourceFile>) -> Result<PolicySet, PolicyLoadError> {
        let mut errors = Vec::new();
        let mut defs = Vec::new();
        let mut route_defs = Vec::new();
        for (i, src) in sources.iter().enumerate() {
            match src.parse() {
                Ok(mut def) => {
                    route_defs.push((i, std::mem::take(&mut def.route)));
                    defs.push((i, def));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(PolicyLoadError { errors });
        }
        let (engine, examples) =
            Engine::compile(&sources, defs).map_err(|errors| PolicyLoadError { errors })?;
        for ex in &examples {
            let src = &sources[ex.file];
            let (_, findings) = engine.check(&ex.text, ex.length_rule, &[]);
            match ex.rule {
                Some(ri) => {
                    let rule = &engine.rules[ri];
                    let found = findings.iter().any(|f| f.rule == rule.id);
                    if found != ex.should_match {
                        let message = if ex.should_match {
                            format!("example should match but does not: {:?}", ex.text)
                        } else {
                            format!("example should not match but does: {:?}", ex.text)
                        };
                        errors.push(src.error(Some(ex.byte), Some(rule.id.clone()), message));
                    }
                }
                None => {
                    for f in findings.iter().filter(|f| engine.is_detector_rule(&f.rule)) {
                        errors.push(src.error(
                            Some(ex.byte),
                            None,
                            format!(
                                "organisation example is reported by {} ({}): {:?}",
                                f.rule, f.message, ex.text
                            ),
                        ));
                    }
                }
            }
        }
        let rule_ids: Vec<&str> = engine.rules.iter().map(|r| r.id.as_str()).collect();
        let categories: Vec<&str> = engine.rules.iter().map(|r| r.category.as_str()).collect();
        let routes = match routes::compile(&sources, route_defs, &rule_ids, &categories) {
            Ok(r) => r,
            Err(mut e) => {
                errors.append(&mut e);
                routes::Routes::default()
            }
        };
        if !errors.is_empty() {
            return Err(PolicyLoadError { errors });
        }
        Ok(PolicySet {
            routes,
            version: version_of(&sources),
            files: sources.iter().map(|s| s.rel.clone()).collect(),
            texts: sources.into_iter().map(|s| (s.rel, s.content)).collect(),
            engine,
        })
    }

    /// The policy version (lowercase hex SHA-256 of the whole set).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Checks one draft under X's length rule (the rule when no channel is given). The
    /// report's `id` is `None`.
    pub fn check(&self, text: &str) -> CheckReport {
        self.check_for(text, LengthRule::X)
    }

    /// Checks one draft under `length_rule` (its channel's). The report's `id` is `None`.
    pub fn check_for(&self, text: &str, length_rule: LengthRule) -> CheckReport {
        self.check_reply(text, length_rule, None)
    }

    /// Checks a reply under `length_rule`, with `mention` (the customer's fediverse handle,
    /// `user@domain`) allowed as `@user@domain`: on Mastodon a reply names its customer so,
    /// and that is not an e-mail address. Any other address is still reported.
    pub fn check_reply(
        &self,
        text: &str,
        length_rule: LengthRule,
        mention: Option<&str>,
    ) -> CheckReport {
        let mentions: Vec<String> = mention.map(|m| m.to_lowercase()).into_iter().collect();
        let (weighted, findings) = self.engine.check(text, length_rule, &mentions);
        let verdict = findings
            .iter()
            .map(|f| f.severity.verdict())
            .max()
            .unwrap_or(Verdict::Pass);
        CheckReport {
            id: None,
            verdict,
            weighted_length: weighted,
            length_rule,
            policy_version: self.version.clone(),
            findings,
        }
    }

    /// Number of rules in the set.
    pub fn rule_count(&self) -> usize {
        self.engine.rules.len()
    }

    /// Relative paths of the policy files, sorted.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Each file's name (relative to the folder) and text, in version order.
    pub fn texts(&self) -> &[(String, String)] {
        &self.texts
    }

    /// The review routes, in order (`routes.toml`).
    pub fn routes(&self) -> &routes::Routes {
        &self.routes
    }

    /// Ids of the rules, in file order (for `countersign policy test` and listings).
    pub fn rule_ids(&self) -> Vec<&str> {
        self.engine.rules.iter().map(|r| r.id.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn policy_set_is_send_and_sync() {
        assert_send_sync::<PolicySet>();
    }

    #[test]
    fn verdict_order() {
        assert!(Verdict::Block > Verdict::Escalate && Verdict::Escalate > Verdict::Pass);
    }
}
