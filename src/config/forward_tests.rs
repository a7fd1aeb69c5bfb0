//! The `forward` key (SPEC sections 4 and 6): what it accepts, and every
//! refusal with its position.

use std::path::Path;

use super::parse;
use crate::core::types::Forward;

fn forward_of(value: &str) -> Result<Forward, Vec<String>> {
    let text = format!("services:\n  web:\n    command: x\n    forward: {value}\n");
    match parse(Path::new("t.yaml"), &text, Path::new("/nonexistent")) {
        Ok(cfg) => Ok(cfg.services[0].policy.forward.clone()),
        Err(e) => Err(e
            .errors
            .iter()
            .map(|e| {
                let service = e.service.as_deref().unwrap_or("-");
                format!("{}:{} {service} {}", e.line, e.column, e.message)
            })
            .collect()),
    }
}

#[test]
fn all_none_and_lists_of_names() {
    assert_eq!(forward_of("all"), Ok(Forward::All));
    assert_eq!(forward_of("none"), Ok(Forward::Only(vec![])));
    assert_eq!(
        forward_of("[SIGHUP, usr1, WINCH, 12, SIGHUP]"),
        Ok(Forward::Only(vec![1, 10, 28, 12]))
    );
    assert_eq!(forward_of("[]"), Ok(Forward::Only(vec![])));
    let text = "services:\n  web:\n    command: x\n";
    let cfg = parse(Path::new("t.yaml"), text, Path::new("/nonexistent")).unwrap();
    assert_eq!(cfg.services[0].policy.forward, Forward::All, "the default");
}

#[test]
fn unknown_words_and_signals_are_refused_where_they_are() {
    let errs = forward_of("alll").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("4:14 web unknown `forward` value `alll` (did you mean `all`?)"),
        "{errs:?}"
    );
    let errs = forward_of("[SIGHUP, SIGFOO]").unwrap_err();
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("4:23 web unknown signal `SIGFOO` in `forward`"),
        "{errs:?}"
    );
}

#[test]
fn shutdown_signals_cannot_be_filtered_and_say_why() {
    let errs = forward_of("[HUP, SIGTERM, INT, QUIT]").unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with("4:20 web SIGTERM starts the shutdown"),
        "{errs:?}"
    );
    assert!(errs[0].contains("cannot filter it"), "{errs:?}");
    assert!(errs[1].starts_with("4:29 web SIGINT"), "{errs:?}");
    assert!(errs[2].starts_with("4:34 web SIGQUIT"), "{errs:?}");
    let errs = forward_of("[KILL, SIGSTOP, CHLD]").unwrap_err();
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].contains("SIGKILL is never forwarded"), "{errs:?}");
}

#[test]
fn a_wrongly_typed_forward_is_a_shape_error() {
    let errs = forward_of("{HUP: yes}").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("forward"), "{errs:?}");
}
