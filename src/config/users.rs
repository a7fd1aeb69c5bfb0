//! /etc/passwd and /etc/group lookups (placeholder).
