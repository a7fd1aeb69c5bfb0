//! Finding where a key sits in the YAML text (placeholder).
