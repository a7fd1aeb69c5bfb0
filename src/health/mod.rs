//! The HTTP health server (placeholder).
