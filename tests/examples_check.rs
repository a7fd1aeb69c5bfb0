//! Every rinit config under `examples/` passes `rinit check`, including the
//! one inside the Kubernetes manifest's ConfigMap, and the Pod's probes and
//! grace period match that config.

#[path = "docker/examples.rs"]
mod examples;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use examples::{documents, get, kind, rinit_configs, yaml_files};
use serde_norway::Value;

const RINIT: &str = env!("CARGO_BIN_EXE_rinit");

/// A config written to a temp file, removed on drop.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(n: usize, text: &str) -> TempConfig {
        let path = std::env::temp_dir().join(format!(
            "rinit-examples-check-{}-{n}.yaml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write temp config");
        TempConfig(path)
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn duration(s: &str) -> Duration {
    humantime::parse_duration(s).unwrap_or_else(|e| panic!("duration {s:?}: {e}"))
}

#[test]
fn rinit_check_accepts_every_example_config() {
    let files = yaml_files();
    assert!(!files.is_empty(), "no examples/*.yaml");
    let mut checked = Vec::new();
    for file in &files {
        let configs = rinit_configs(file);
        assert!(
            !configs.is_empty(),
            "{}: neither a rinit config nor a manifest with a rinit.yaml ConfigMap",
            file.display()
        );
        for (label, text) in configs {
            let tmp = TempConfig::new(checked.len(), &text);
            let out = Command::new(RINIT)
                .arg("check")
                .arg(&tmp.0)
                .env_remove("RINIT_CONFIG")
                .output()
                .expect("run rinit check");
            assert!(
                out.status.success(),
                "rinit check {label}: {:?}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("is valid"),
                "{label}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
            checked.push(label);
        }
    }
    for wanted in ["demo.yaml", "devcontainer.yaml", "kubernetes.yaml"] {
        assert!(
            checked.iter().any(|l| l.contains(wanted)),
            "{wanted} not checked: {checked:?}"
        );
    }
}

#[test]
fn kubernetes_pod_matches_its_rinit_config() {
    let path = examples::examples_dir().join("kubernetes.yaml");
    let docs = documents(&path);
    let config: Value =
        serde_norway::from_str(&examples::kubernetes_config()).expect("ConfigMap rinit.yaml");
    let config_map = docs
        .iter()
        .find(|d| kind(d) == Some("ConfigMap"))
        .expect("a ConfigMap");
    let pod = docs.iter().find(|d| kind(d) == Some("Pod")).expect("a Pod");
    let str_at = |v: &Value, p: &[&str]| -> String {
        get(v, p)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{p:?} missing"))
            .to_string()
    };

    // Grace period: rinit's own cap (drain included) comes first, with a margin.
    let timeout = duration(&str_at(&config, &["shutdown", "timeout"]));
    let drain = duration(&str_at(&config, &["shutdown", "drain"]));
    assert!(
        drain < timeout,
        "drain {drain:?} is part of timeout {timeout:?}"
    );
    let grace = get(pod, &["spec", "terminationGracePeriodSeconds"])
        .and_then(Value::as_u64)
        .expect("terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(grace) > timeout,
        "terminationGracePeriodSeconds {grace} must exceed shutdown.timeout {timeout:?}"
    );
    assert!(
        Duration::from_secs(grace) <= timeout + Duration::from_secs(15),
        "terminationGracePeriodSeconds {grace} far beyond shutdown.timeout {timeout:?}"
    );

    // rinit is the entrypoint, reading the ConfigMap mounted as a directory
    // (a subPath mount never sees the ConfigMap's updates: no reload).
    let containers = get(pod, &["spec", "containers"])
        .and_then(Value::as_sequence)
        .expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let command = get(c, &["command"]).expect("command");
    assert_eq!(command.get(0).and_then(Value::as_str), Some("/sbin/rinit"));
    let mounts = get(c, &["volumeMounts"])
        .and_then(Value::as_sequence)
        .expect("volumeMounts");
    let config_mount = mounts
        .iter()
        .find(|m| m.get("mountPath").and_then(Value::as_str) == Some("/etc/rinit"))
        .expect("a mount at /etc/rinit");
    assert!(
        config_mount.get("subPath").is_none(),
        "a subPath is never updated"
    );
    let args = get(c, &["args"])
        .and_then(Value::as_sequence)
        .expect("args");
    assert_eq!(
        args.get(1).and_then(Value::as_str),
        Some("/etc/rinit/rinit.yaml"),
        "--config names the file in the mounted directory"
    );
    let volume_name = str_at(config_mount, &["name"]);
    let volumes = get(pod, &["spec", "volumes"])
        .and_then(Value::as_sequence)
        .expect("volumes");
    let volume = volumes
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(volume_name.as_str()))
        .expect("the config volume");
    assert_eq!(
        str_at(volume, &["configMap", "name"]),
        str_at(config_map, &["metadata", "name"])
    );

    // Probes: /startupz, /healthz and /readyz on the port rinit listens on, reachable
    // from the kubelet (not loopback).
    let listen: std::net::SocketAddr = str_at(&config, &["health", "listen"])
        .parse()
        .expect("health.listen");
    assert!(
        !listen.ip().is_loopback(),
        "the kubelet cannot reach {listen}"
    );
    let ports = get(c, &["ports"])
        .and_then(Value::as_sequence)
        .expect("ports");
    let port_number = |p: &Value| -> u64 {
        if let Some(n) = p.as_u64() {
            return n;
        }
        let name = p.as_str().expect("port name or number");
        ports
            .iter()
            .find(|q| q.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|q| q.get("containerPort"))
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no container port named {name}"))
    };
    for (probe, path) in [
        ("startupProbe", "/startupz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get_ = get(c, &[probe, "httpGet"]).unwrap_or_else(|| panic!("{probe}.httpGet"));
        assert_eq!(str_at(get_, &["path"]), path, "{probe}");
        let port = port_number(get_.get("port").expect("port"));
        assert_eq!(port, u64::from(listen.port()), "{probe} port");
    }
}
