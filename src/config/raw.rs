//! Serde types mirroring the YAML file (placeholder).
