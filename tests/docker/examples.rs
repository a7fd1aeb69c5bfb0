//! The rinit configs under `examples/`, shared by `tests/examples_check.rs`
//! and `tests/docker_e2e.rs` (included with `#[path]`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_norway::Value;

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every `*.yaml` file under `examples/`, sorted.
pub fn yaml_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("read examples/")
        .map(|e| e.expect("examples/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// The YAML documents of a file (`---` separated).
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read example");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

pub fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

pub fn kind(doc: &Value) -> Option<&str> {
    doc.get("kind").and_then(Value::as_str)
}

/// The rinit configs a file holds, as (label, YAML text): the file itself
/// when it is a rinit config, or the `rinit.yaml` key of each Kubernetes
/// ConfigMap in it.
pub fn rinit_configs(path: &Path) -> Vec<(String, String)> {
    let docs = documents(path);
    if docs.iter().any(|d| kind(d).is_some()) {
        docs.iter()
            .filter(|d| kind(d) == Some("ConfigMap"))
            .filter_map(|d| {
                let name = get(d, &["metadata", "name"])?.as_str()?;
                let text = get(d, &["data", "rinit.yaml"])?.as_str()?;
                Some((
                    format!("{} (ConfigMap {name}, rinit.yaml)", path.display()),
                    text.to_string(),
                ))
            })
            .collect()
    } else {
        let text = std::fs::read_to_string(path).expect("read example");
        vec![(path.display().to_string(), text)]
    }
}

/// The rinit config of `examples/kubernetes.yaml`.
pub fn kubernetes_config() -> String {
    let path = examples_dir().join("kubernetes.yaml");
    let mut configs = rinit_configs(&path);
    assert_eq!(
        configs.len(),
        1,
        "one ConfigMap with rinit.yaml in {}",
        path.display()
    );
    configs.remove(0).1
}
