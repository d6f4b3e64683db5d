//! A broken policy set is refused with errors naming file, line and rule.

use std::path::{Path, PathBuf};

use countersign::policy::{PolicyLoadError, PolicySet};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("countersign-policy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
    fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.0.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(p, content).expect("write policy file");
        self
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = r#"
[[rule]]
id = "promise.guarantee"
kind = "terms"
category = "promise"
message = "Guarantee"
terms = ["guaranteed"]
examples.match = ["It's guaranteed"]
examples.no_match = ["It's fine"]
"#;

fn load_err(dir: &TempDir) -> PolicyLoadError {
    match PolicySet::load(dir.path()) {
        Ok(_) => panic!("the broken set loaded"),
        Err(e) => e,
    }
}

#[test]
fn a_good_set_loads() {
    let d = TempDir::new("good");
    d.write("promise.toml", GOOD);
    let set = PolicySet::load(d.path()).expect("good set loads");
    assert_eq!(set.rule_count(), 1);
    assert_eq!(set.files(), ["promise.toml"]);
    assert_eq!(set.version().len(), 64);
    assert!(set
        .version()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

#[test]
fn version_changes_with_any_file() {
    let d = TempDir::new("version");
    d.write("promise.toml", GOOD);
    let v1 = PolicySet::load(d.path())
        .expect("loads")
        .version()
        .to_string();
    d.write("promise.toml", &format!("{GOOD}\n# a comment\n"));
    let v2 = PolicySet::load(d.path())
        .expect("loads")
        .version()
        .to_string();
    assert_ne!(v1, v2);
    d.write("sub/other.toml", "# nothing yet\n");
    let set = PolicySet::load(d.path()).expect("loads");
    assert_ne!(set.version(), v2);
    assert_eq!(set.files(), ["promise.toml", "sub/other.toml"]);
}

#[test]
fn bad_toml_names_file_and_line() {
    let d = TempDir::new("badtoml");
    d.write("a.toml", GOOD);
    d.write(
        "b.toml",
        "[[rule]]\nid = \"x.y\"\nkind = \"terms\"\nterms = [\"a\"\n",
    );
    let e = load_err(&d);
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].file, "b.toml");
    assert!(e.errors[0].line.is_some(), "{e}");
    let shown = e.to_string();
    assert!(shown.starts_with("b.toml:"), "{shown}");
}

#[test]
fn bad_regex_names_file_line_and_rule() {
    let d = TempDir::new("badregex");
    d.write(
        "liability.toml",
        "# liability\n\n[[rule]]\nid = \"liability.fault\"\nkind = \"pattern\"\ncategory = \"liability\"\nmessage = \"Fault\"\npatterns = [\n  'our fault',\n  'we (were|are at fault',\n]\n",
    );
    let e = load_err(&d);
    let err = &e.errors[0];
    assert_eq!(err.file, "liability.toml");
    assert_eq!(err.line, Some(10), "{e}");
    assert_eq!(err.rule.as_deref(), Some("liability.fault"));
    assert!(err.message.contains("regular expression"), "{e}");
    assert!(
        e.to_string()
            .starts_with("liability.toml:10: liability.fault: "),
        "{e}"
    );
}

#[test]
fn unknown_field_names_file_line_and_rule() {
    let d = TempDir::new("unknown");
    d.write(
        "promise.toml",
        "[[rule]]\nid = \"promise.guarantee\"\nkind = \"terms\"\ncategory = \"promise\"\nmessage = \"Guarantee\"\nterms = [\"guaranteed\"]\nwhole_words = true\n",
    );
    let e = load_err(&d);
    let err = &e.errors[0];
    assert_eq!(err.file, "promise.toml");
    assert_eq!(err.line, Some(7), "{e}");
    assert_eq!(err.rule.as_deref(), Some("promise.guarantee"));
    assert!(err.message.contains("whole_words"), "{e}");
}

#[test]
fn failing_example_names_file_line_and_rule() {
    let d = TempDir::new("example");
    d.write(
        "promise.toml",
        "[[rule]]\nid = \"promise.guarantee\"\nkind = \"terms\"\ncategory = \"promise\"\nmessage = \"Guarantee\"\nterms = [\"guaranteed\"]\nexamples.match = [\"It's guaranteed\", \"We promise\"]\nexamples.no_match = [\"Fully guaranteed\"]\n",
    );
    let e = load_err(&d);
    assert_eq!(e.errors.len(), 2, "{e}");
    for err in &e.errors {
        assert_eq!(err.file, "promise.toml");
        assert_eq!(err.rule.as_deref(), Some("promise.guarantee"));
    }
    assert_eq!(e.errors[0].line, Some(7));
    assert!(e.errors[0].message.contains("We promise"), "{e}");
    assert_eq!(e.errors[1].line, Some(8));
    assert!(e.errors[1].message.contains("Fully guaranteed"), "{e}");
}

#[test]
fn duplicate_rule_id_is_refused() {
    let d = TempDir::new("dup");
    d.write("a.toml", GOOD);
    d.write("b.toml", &format!("# copy\n{GOOD}"));
    let e = load_err(&d);
    let err = &e.errors[0];
    assert_eq!(err.file, "b.toml");
    assert_eq!(err.line, Some(3), "{e}");
    assert_eq!(err.rule.as_deref(), Some("promise.guarantee"));
    assert!(err.message.contains("duplicate"), "{e}");
    assert!(err.message.contains("a.toml:2"), "{e}");
}

#[test]
fn other_mistakes_are_refused() {
    let cases = [
        // unknown kind
        ("[[rule]]\nid = \"a.b\"\nkind = \"regex\"\ncategory = \"promise\"\nmessage = \"m\"\n", "regex"),
        // unknown severity
        ("[[rule]]\nid = \"a.b\"\nkind = \"terms\"\ncategory = \"promise\"\nseverity = \"high\"\nmessage = \"m\"\nterms = [\"x\"]\n", "high"),
        // unknown category without severity
        ("[[rule]]\nid = \"a.b\"\nkind = \"terms\"\ncategory = \"tone\"\nmessage = \"m\"\nterms = [\"x\"]\n", "severity"),
        // field of another kind
        ("[[rule]]\nid = \"a.b\"\nkind = \"terms\"\ncategory = \"promise\"\nmessage = \"m\"\nterms = [\"x\"]\nmax = 3\n", "max"),
        // unknown detector
        ("[[rule]]\nid = \"a.b\"\nkind = \"detector\"\ndetector = \"passport\"\ncategory = \"pii.card\"\nmessage = \"m\"\n", "passport"),
        // bad organisation phone
        ("[organisation]\nphones = [\"12\"]\n", "phone"),
        // a region with no numbering plan: two letters, but no country
        ("[organisation]\nphone_regions = [\"US\", \"XX\"]\n", "unknown phone region `XX`"),
        // not a region code at all
        ("[organisation]\nphone_regions = [\"USA\"]\n", "unknown phone region `USA`"),
        // missing message
        ("[[rule]]\nid = \"a.b\"\nkind = \"terms\"\ncategory = \"promise\"\nterms = [\"x\"]\n", "message"),
    ];
    for (i, (content, needle)) in cases.iter().enumerate() {
        let d = TempDir::new(&format!("other{i}"));
        d.write("p.toml", content);
        let e = load_err(&d);
        assert!(e.to_string().contains(needle), "case {i}: {e}");
        assert!(
            e.errors
                .iter()
                .all(|x| x.file == "p.toml" && x.line.is_some()),
            "case {i}: {e}"
        );
    }
}

#[test]
fn missing_folder_is_an_error() {
    let e = match PolicySet::load(Path::new("/nonexistent/countersign/policies")) {
        Ok(_) => panic!("loaded a missing folder"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("policy folder"), "{e}");
}

#[test]
fn shipped_sets_load() {
    for dir in ["policies", "examples/real-replay/policies"] {
        let set = PolicySet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
            .unwrap_or_else(|e| panic!("{dir}:\n{e}"));
        assert!(set.rule_count() >= 13, "{dir}");
        assert!(set.files().iter().any(|f| f == "organisation.toml"));
    }
}
