//! Resolving a service's `user:` against the image's own `<etc>/passwd` and
//! `<etc>/group`, read as plain files (no NSS, no libc lookups), so that the
//! child gets plain numbers and needs no lookup after fork. Accepted forms:
//! `name`, `uid`, `name:group`, `uid:gid` (and the mixed ones). Numeric ids
//! work even when the files lack them or are missing.

use std::path::Path;

use super::Identity;

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
    shell: String,
}

/// What a login would set for a user: the `HOME`, `USER`, `LOGNAME` and
/// `SHELL` a program expects when it runs as that user (SPEC section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// `None` for a numeric uid that is not in passwd.
    pub name: Option<String>,
    pub home: String,
    pub shell: Option<String>,
}

impl Account {
    /// The login variables, in a fixed order; an unknown uid gets
    /// `HOME=/` only, as Docker does.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut vars = vec![("HOME".to_string(), self.home.clone())];
        if let Some(name) = &self.name {
            vars.push(("USER".into(), name.clone()));
            vars.push(("LOGNAME".into(), name.clone()));
        }
        if let Some(shell) = &self.shell {
            vars.push(("SHELL".into(), shell.clone()));
        }
        vars
    }
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `spec` to numeric ids; the error is a message for the user.
pub fn resolve(spec: &str, etc: &Path) -> Result<Identity, String> {
    resolve_account(spec, etc).map(|(identity, _)| identity)
}

/// Resolves `spec` to numeric ids and the account they belong to.
pub fn resolve_account(spec: &str, etc: &Path) -> Result<(Identity, Account), String> {
    let spec = spec.trim();
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(format!("`{spec}` names no user"));
    }
    if group == Some("") {
        return Err(format!("`{spec}` names no group after `:`"));
    }
    let (entry, uid) = find_user(user, etc)?;
    let gid = match group {
        Some(g) => find_group(g, etc)?,
        None => entry.as_ref().map_or(uid, |e| e.gid),
    };
    let mut groups = vec![gid];
    if let Some(e) = &entry {
        // Supplementary groups are a bonus: a missing group file means none.
        let entries = read_group(etc).unwrap_or_default();
        for g in entries.iter().filter(|g| g.members.contains(&e.name)) {
            if !groups.contains(&g.gid) {
                groups.push(g.gid);
            }
        }
    }
    let account = match entry {
        Some(e) => Account {
            name: Some(e.name),
            home: if e.home.is_empty() {
                "/".into()
            } else {
                e.home
            },
            shell: Some(e.shell).filter(|s| !s.is_empty()),
        },
        None => Account {
            name: None,
            home: "/".into(),
            shell: None,
        },
    };
    Ok((Identity { uid, gid, groups }, account))
}

/// The user's passwd entry (when known) and uid.
fn find_user(user: &str, etc: &Path) -> Result<(Option<PasswdEntry>, u32), String> {
    if let Some(uid) = numeric(user)? {
        let entries = read_passwd(etc).unwrap_or_default();
        return Ok((entries.into_iter().find(|e| e.uid == uid), uid));
    }
    let entries = read_passwd(etc)?;
    match entries.into_iter().find(|e| e.name == user) {
        Some(e) => {
            let uid = e.uid;
            Ok((Some(e), uid))
        }
        None => Err(format!(
            "user `{user}` is not in {}",
            etc.join("passwd").display()
        )),
    }
}

fn find_group(group: &str, etc: &Path) -> Result<u32, String> {
    if let Some(gid) = numeric(group)? {
        return Ok(gid);
    }
    let entries = read_group(etc)?;
    match entries.into_iter().find(|e| e.name == group) {
        Some(e) => Ok(e.gid),
        None => Err(format!(
            "group `{group}` is not in {}",
            etc.join("group").display()
        )),
    }
}

/// `Some(id)` for an all-digit id, `None` for a name, an error for a number
/// out of range.
fn numeric(text: &str) -> Result<Option<u32>, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match parse_id(text) {
        Some(id) => Ok(Some(id)),
        None => Err(format!(
            "id `{text}` is out of range (0 to {})",
            u32::MAX - 1
        )),
    }
}

/// A uid or gid; `u32::MAX` is `(uid_t)-1`, which means "no change".
fn parse_id(text: &str) -> Option<u32> {
    text.parse::<u32>().ok().filter(|&id| id != u32::MAX)
}

fn read(etc: &Path, file: &str) -> Result<String, String> {
    let path = etc.join(file);
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn read_passwd(etc: &Path) -> Result<Vec<PasswdEntry>, String> {
    read(etc, "passwd").map(|text| parse_passwd(&text))
}

fn read_group(etc: &Path) -> Result<Vec<GroupEntry>, String> {
    read(etc, "group").map(|text| parse_group(&text))
}

/// `name:password:uid:gid:gecos:home:shell`; malformed lines are skipped.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    records(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: parse_id(f.get(2)?)?,
                gid: parse_id(f.get(3)?)?,
                home: f.get(5).copied().unwrap_or("").to_string(),
                shell: f.get(6).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// `name:password:gid:member,member`; malformed lines are skipped.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    records(text)
        .filter_map(|f| {
            let members = f.get(3).copied().unwrap_or("");
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: parse_id(f.get(2)?)?,
                members: members
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// The colon-separated fields of each line that is not blank or a comment.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.first().is_some_and(|n| !n.is_empty()))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A temporary etc directory with fixture files, removed on drop.
    pub struct FakeEtc(pub PathBuf);

    impl FakeEtc {
        pub fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "rinit-users-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("passwd"),
                "root:x:0:0:root:/root:/bin/sh\n\
                 # comment\n\
                 postgres:x:70:70::/var/lib/postgresql:/bin/sh\n\
                 broken line\n\
                 app:x:1000:1000:App:/home/app:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(
                dir.join("group"),
                "root:x:0:\n\
                 postgres:x:70:\n\
                 app:x:1000:\n\
                 audio:x:29:app,postgres\n\
                 video:x:44: app \n\
                 ssl:x:101:postgres\n",
            )
            .unwrap();
            FakeEtc(dir)
        }
    }

    impl Drop for FakeEtc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn id(uid: u32, gid: u32, groups: &[u32]) -> Identity {
        Identity {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn resolves_names_with_their_groups() {
        let etc = FakeEtc::new("names");
        assert_eq!(resolve("postgres", &etc.0), Ok(id(70, 70, &[70, 29, 101])));
        assert_eq!(resolve("app", &etc.0), Ok(id(1000, 1000, &[1000, 29, 44])));
        assert_eq!(resolve("root", &etc.0), Ok(id(0, 0, &[0])));
    }

    #[test]
    fn resolves_numbers_known_or_not() {
        let etc = FakeEtc::new("numbers");
        assert_eq!(resolve("1000", &etc.0), Ok(id(1000, 1000, &[1000, 29, 44])));
        assert_eq!(resolve("4242", &etc.0), Ok(id(4242, 4242, &[4242])));
        assert_eq!(resolve("4242:7", &etc.0), Ok(id(4242, 7, &[7])));
        let nowhere = etc.0.join("missing");
        assert_eq!(resolve("4242:7", &nowhere), Ok(id(4242, 7, &[7])));
    }

    #[test]
    fn resolves_explicit_groups() {
        let etc = FakeEtc::new("groups");
        assert_eq!(
            resolve("app:ssl", &etc.0),
            Ok(id(1000, 101, &[101, 29, 44]))
        );
        assert_eq!(resolve("postgres:0", &etc.0), Ok(id(70, 0, &[0, 29, 101])));
        assert_eq!(resolve("70:audio", &etc.0), Ok(id(70, 29, &[29, 101])));
    }

    #[test]
    fn accounts_give_the_login_variables() {
        let etc = FakeEtc::new("account");
        let (_, app) = resolve_account("app", &etc.0).unwrap();
        let vars = |a: &Account| {
            a.env()
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            vars(&app),
            ["HOME=/home/app", "USER=app", "LOGNAME=app", "SHELL=/bin/sh"]
        );
        let (_, by_uid) = resolve_account("1000:29", &etc.0).unwrap();
        assert_eq!(by_uid, app);
        let (_, unknown) = resolve_account("4242", &etc.0).unwrap();
        assert_eq!(vars(&unknown), ["HOME=/"]);
    }

    #[test]
    fn refuses_unknown_names_and_bad_forms() {
        let etc = FakeEtc::new("errors");
        let err = resolve("nobody", &etc.0).unwrap_err();
        assert!(
            err.contains("user `nobody` is not in") && err.ends_with("passwd"),
            "{err}"
        );
        let err = resolve("app:wheel", &etc.0).unwrap_err();
        assert!(err.contains("group `wheel` is not in"), "{err}");
        assert!(resolve(":1", &etc.0).unwrap_err().contains("names no user"));
        assert!(resolve("app:", &etc.0).unwrap_err().contains("no group"));
        assert!(resolve("4294967295", &etc.0)
            .unwrap_err()
            .contains("out of range"));
        let nowhere = etc.0.join("missing");
        assert!(resolve("app", &nowhere)
            .unwrap_err()
            .contains("cannot read"));
    }
}
