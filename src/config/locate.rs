//! Where things sit in the YAML text. serde_norway gives positions for
//! syntax errors only, so this module finds a key, a value or a list item
//! from its key path by scanning the text itself: indentation-based block
//! mappings and lists, and flow `{...}` / `[...]` collections, even when they
//! span lines. It never fails: what it cannot find falls back to the nearest
//! ancestor it did find, and to 1:1 at worst. `Report` turns key paths into
//! `ConfigError`s, naming the service when the path is inside one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::ConfigError;

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A piece of the document: lines of a block, a flow collection (byte
/// offsets of its opening and closing brackets) or a plain scalar.
#[derive(Clone, Copy, Debug)]
enum Node {
    Block { first: usize, end: usize },
    Flow { open: usize, close: usize },
    Scalar(usize),
}

/// A line: byte offsets of its start and end (newline excluded).
#[derive(Clone, Copy, Debug)]
struct Line {
    start: usize,
    end: usize,
}

/// The keys of one block mapping, each to the line it is first on.
type BlockKeys = HashMap<String, usize>;

pub struct Locator<'a> {
    text: &'a str,
    lines: Vec<Line>,
    /// The keys of each block mapping looked into, by its line range, to
    /// the line of their first occurrence; and the block under each key
    /// line. Both are built on first use: without them every error
    /// rescanned the file, and a config with an error per service took
    /// time quadratic in its size (2,000 such services: 15 s).
    keys: RefCell<HashMap<(usize, usize), Rc<BlockKeys>>>,
    below: RefCell<HashMap<usize, Node>>,
}

/// What a path walk found: the deepest key reached, and the value of the
/// last key when the whole path was found.
struct Walk {
    key: Option<usize>,
    value: Option<Node>,
}

impl<'a> Locator<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for piece in text.split_inclusive('\n') {
            let body = piece.trim_end_matches('\n').trim_end_matches('\r');
            lines.push(Line {
                start,
                end: start + body.len(),
            });
            start += piece.len();
        }
        Locator {
            text,
            lines,
            keys: RefCell::default(),
            below: RefCell::default(),
        }
    }

    /// The position of the last key of `path` (or of its nearest ancestor).
    pub fn key(&self, path: &[&str]) -> Pos {
        self.pos(self.walk(path).key)
    }

    /// The position of the value of `path`: where it starts when it is on the
    /// key's line, else the key itself.
    pub fn value(&self, path: &[&str]) -> Pos {
        let walk = self.walk(path);
        match walk.value {
            Some(Node::Scalar(at)) => self.pos(Some(at)),
            Some(Node::Flow { open, .. }) => self.pos(Some(open)),
            _ => self.pos(walk.key),
        }
    }

    /// The position of item `index` of the list at `path`, else of the list.
    pub fn item(&self, path: &[&str], index: usize) -> Pos {
        let walk = self.walk(path);
        match walk.value.and_then(|node| self.find_item(node, index)) {
            Some(at) => self.pos(Some(at)),
            None => self.value(path),
        }
    }

    /// Where the second `key:` of the block mapping starting at `mark` is
    /// (serde_norway reports duplicate keys at the mapping's start).
    pub fn duplicate(&self, mark: Pos, key: &str) -> Option<Pos> {
        let first = mark.line.checked_sub(1)?;
        let mut seen = 0;
        for (i, line) in self.lines.iter().enumerate().skip(first) {
            let body = &self.text[line.start..line.end];
            let indent = indent_of(body);
            if i > first && !is_blank(body) && indent + 1 < mark.column {
                break;
            }
            if indent + 1 == mark.column && match_key(&body[indent..], key).is_some() {
                seen += 1;
                if seen == 2 {
                    return Some(self.pos(Some(line.start + indent)));
                }
            }
        }
        None
    }

    fn walk(&self, path: &[&str]) -> Walk {
        let mut node = Node::Block {
            first: 0,
            end: self.lines.len(),
        };
        let mut walk = Walk {
            key: None,
            value: None,
        };
        for key in path {
            match self.find_key(node, key) {
                Some((at, value)) => {
                    walk.key = Some(at);
                    node = value;
                }
                None => return walk,
            }
        }
        walk.value = Some(node);
        walk
    }

    fn pos(&self, at: Option<usize>) -> Pos {
        let Some(at) = at else {
            return Pos { line: 1, column: 1 };
        };
        let index = self.lines.partition_point(|l| l.start <= at).max(1) - 1;
        let start = self.lines.get(index).map_or(0, |l| l.start);
        let column = self.text.get(start..at).map_or(0, |s| s.chars().count());
        Pos {
            line: index + 1,
            column: column + 1,
        }
    }

    fn body(&self, index: usize) -> &'a str {
        self.lines
            .get(index)
            .map_or("", |l| &self.text[l.start..l.end])
    }

    fn find_key(&self, node: Node, key: &str) -> Option<(usize, Node)> {
        match node {
            Node::Block { first, end } => self.block_key(first, end, key),
            Node::Flow { open, close } => {
                self.flow_entries(open, close).into_iter().find_map(|at| {
                    let len = match_key(self.text.get(at..close)?, key)?;
                    Some((at, self.inline_value(at + len)))
                })
            }
            Node::Scalar(_) => None,
        }
    }

    fn block_key(&self, first: usize, end: usize, key: &str) -> Option<(usize, Node)> {
        let base = self.block_indent(first, end)?;
        let i = *self.block_keys(first, end, base).get(key)?;
        let body = self.body(i);
        let len = match_key(&body[base..], key)?;
        let at = self.lines[i].start + base;
        let rest = &body[base + len..];
        let value = if is_blank(rest) {
            self.block_below_cached(i, base)
        } else {
            self.inline_value(at + len)
        };
        Some((at, value))
    }

    /// The keys at indentation `base` in `first..end`, each to the line of
    /// its first occurrence (built once per block).
    fn block_keys(&self, first: usize, end: usize, base: usize) -> Rc<BlockKeys> {
        if let Some(found) = self.keys.borrow().get(&(first, end)) {
            return Rc::clone(found);
        }
        let mut keys = HashMap::new();
        for i in first..end {
            let body = self.body(i);
            if is_blank(body) || indent_of(body) != base {
                continue;
            }
            if let Some(key) = key_of(&body[base..]) {
                keys.entry(key).or_insert(i);
            }
        }
        let keys = Rc::new(keys);
        self.keys
            .borrow_mut()
            .insert((first, end), Rc::clone(&keys));
        keys
    }

    fn block_below_cached(&self, key_line: usize, indent: usize) -> Node {
        if let Some(&node) = self.below.borrow().get(&key_line) {
            return node;
        }
        let node = self.block_below(key_line, indent);
        self.below.borrow_mut().insert(key_line, node);
        node
    }

    /// The indentation of the first line with content in `first..end`.
    fn block_indent(&self, first: usize, end: usize) -> Option<usize> {
        (first..end)
            .map(|i| self.body(i))
            .find(|b| !is_blank(b) && !b.starts_with("---") && !b.starts_with('%'))
            .map(indent_of)
    }

    /// The block under the key on line `key_line` indented by `indent`:
    /// deeper lines, and `- ` items at the same indentation.
    fn block_below(&self, key_line: usize, indent: usize) -> Node {
        let mut end = key_line + 1;
        let mut last = key_line + 1;
        while end < self.lines.len() {
            let body = self.body(end);
            end += 1;
            if is_blank(body) {
                continue;
            }
            let deeper = indent_of(body) > indent;
            let item = indent_of(body) == indent && body[indent..].starts_with('-');
            if !deeper && !item {
                break;
            }
            last = end;
        }
        Node::Block {
            first: key_line + 1,
            end: last,
        }
    }

    /// The value starting at or after byte `at` on the same line.
    fn inline_value(&self, at: usize) -> Node {
        let rest = self.text.get(at..).unwrap_or("");
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let start = at + skipped;
        match self.text.as_bytes().get(start) {
            Some(b'{') | Some(b'[') => Node::Flow {
                open: start,
                close: self.matching_close(start),
            },
            _ => Node::Scalar(start),
        }
    }

    fn find_item(&self, node: Node, index: usize) -> Option<usize> {
        match node {
            Node::Flow { open, close } => self.flow_entries(open, close).get(index).copied(),
            Node::Block { first, end } => {
                let base = self.block_indent(first, end)?;
                (first..end)
                    .filter_map(|i| {
                        let body = self.body(i);
                        let dash = !is_blank(body) && indent_of(body) == base;
                        let rest = body.get(base..)?;
                        (dash && rest.starts_with('-')).then_some((i, rest))
                    })
                    .nth(index)
                    .map(|(i, rest)| {
                        let item = rest[1..].trim_start_matches([' ', '\t']);
                        self.lines[i].start + base + rest.len() - item.len()
                    })
            }
            Node::Scalar(_) => None,
        }
    }

    /// Byte offsets where each entry of a flow collection starts.
    fn flow_entries(&self, open: usize, close: usize) -> Vec<usize> {
        let bytes = self.text.as_bytes();
        let mut entries = Vec::new();
        let mut at = open + 1;
        while at < close {
            while at < close && bytes[at].is_ascii_whitespace() {
                at += 1;
            }
            if at >= close {
                break;
            }
            entries.push(at);
            at = self.scan(at, close, b',') + 1;
        }
        entries
    }

    fn matching_close(&self, open: usize) -> usize {
        self.scan(open + 1, self.text.len(), b'}')
    }

    /// The first byte in `from..to` at bracket depth 0 that is `stop` or a
    /// closing bracket, skipping quoted strings; `to` if there is none.
    fn scan(&self, from: usize, to: usize, stop: u8) -> usize {
        let bytes = self.text.as_bytes();
        let mut depth = 0usize;
        let mut at = from;
        while at < to {
            match bytes[at] {
                b'"' | b'\'' => at = skip_quoted(bytes, at),
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return at,
                b'}' | b']' => depth -= 1,
                c if c == stop && depth == 0 => return at,
                _ => {}
            }
            at += 1;
        }
        to
    }
}

/// The offset of the closing quote of the string opening at `at`.
fn skip_quoted(bytes: &[u8], at: usize) -> usize {
    let quote = bytes[at];
    let mut i = at + 1;
    while i < bytes.len() {
        if quote == b'"' && bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if bytes[i] == quote {
            if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return i;
        }
        i += 1;
    }
    bytes.len().saturating_sub(1)
}

fn indent_of(body: &str) -> usize {
    body.len() - body.trim_start_matches(' ').len()
}

/// Empty, or only a comment.
fn is_blank(body: &str) -> bool {
    let t = body.trim();
    t.is_empty() || t.starts_with('#')
}

/// The key that `text` starts with (`key:`, `"key":` or `'key':`), as
/// `match_key` would accept it.
fn key_of(text: &str) -> Option<String> {
    let key = match text.as_bytes().first()? {
        &q @ (b'"' | b'\'') => {
            let close = text[1..].find(char::from(q))? + 1;
            &text[1..close]
        }
        _ => {
            let bytes = text.as_bytes();
            let colon = (0..bytes.len()).find(|&i| {
                bytes[i] == b':'
                    && matches!(
                        bytes.get(i + 1),
                        None | Some(b' ' | b'\t' | b'\r' | b'\n' | b',' | b'}')
                    )
            })?;
            text[..colon].trim_end_matches([' ', '\t'])
        }
    };
    match_key(text, key).map(|_| key.to_string())
}

/// If `text` starts with `key:` (plain or quoted) followed by a space or the
/// end of the entry, the length up to and including the colon.
fn match_key(text: &str, key: &str) -> Option<usize> {
    let quoted = [format!("\"{key}\""), format!("'{key}'"), key.to_string()];
    quoted.iter().find_map(|k| {
        let rest = text.strip_prefix(k.as_str())?;
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let after = trimmed.strip_prefix(':')?;
        let ends = after.is_empty() || after.starts_with([' ', '\t', '\r', '\n', ',', '}']);
        ends.then_some(text.len() - after.len())
    })
}

/// Collects errors, placing each from its key path.
pub struct Report<'a> {
    locator: Locator<'a>,
    pub errors: Vec<ConfigError>,
}

impl<'a> Report<'a> {
    pub fn new(text: &'a str) -> Self {
        Report {
            locator: Locator::new(text),
            errors: Vec::new(),
        }
    }

    pub fn locator(&self) -> &Locator<'a> {
        &self.locator
    }

    /// An error about a key itself (unknown, missing, conflicting).
    pub fn at_key(&mut self, path: &[&str], message: impl Into<String>) {
        let pos = self.locator.key(path);
        self.push(pos, path, message.into());
    }

    /// An error about the value of a key.
    pub fn at_value(&mut self, path: &[&str], message: impl Into<String>) {
        let pos = self.locator.value(path);
        self.push(pos, path, message.into());
    }

    /// An error about one item of a list.
    pub fn at_item(&mut self, path: &[&str], index: usize, message: impl Into<String>) {
        let pos = self.locator.item(path, index);
        self.push(pos, path, message.into());
    }

    pub fn at_pos(&mut self, pos: Pos, service: Option<String>, message: String) {
        self.errors.push(ConfigError {
            line: pos.line,
            column: pos.column,
            service,
            message,
        });
    }

    fn push(&mut self, pos: Pos, path: &[&str], message: String) {
        let service = match path {
            ["services", name, ..] => Some((*name).to_string()),
            _ => None,
        };
        self.at_pos(pos, service, message);
    }

    /// The errors in file order (stable: same place keeps report order).
    pub fn into_errors(self) -> Vec<ConfigError> {
        // One key for (line, column): both are far below 2^32.
        crate::core::types::sorted_by_key(self.errors, |e| {
            (e.line.min(u32::MAX as usize) << 32) | e.column.min(u32::MAX as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
health:
  listen: \"0.0.0.0:9090\"
services:
  db:
    command: [\"postgres\", \"-D\", \"/data\"]
    env: { PGTZ: UTC, \"LANG\": C }
    ready: {tcp: \"127.0.0.1:5432\",
            interval: 1s}
  web:
    command: exec /app/server   # trailing comment
    depends_on:
    - db
    - 'cache'
    success_codes:
      - 0
      -   143
  'quoted':
    command:
";

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn finds_block_keys_and_values() {
        let l = Locator::new(DOC);
        assert_eq!(l.key(&["health"]), at(2, 1));
        assert_eq!(l.key(&["health", "listen"]), at(3, 3));
        assert_eq!(l.value(&["health", "listen"]), at(3, 11));
        assert_eq!(l.key(&["services", "web", "command"]), at(11, 5));
        assert_eq!(l.value(&["services", "web", "command"]), at(11, 14));
        assert_eq!(l.key(&["services", "quoted", "command"]), at(19, 5));
    }

    #[test]
    fn finds_flow_keys_even_across_lines() {
        let l = Locator::new(DOC);
        assert_eq!(l.key(&["services", "db", "env", "PGTZ"]), at(7, 12));
        assert_eq!(l.value(&["services", "db", "env", "PGTZ"]), at(7, 18));
        assert_eq!(l.key(&["services", "db", "env", "LANG"]), at(7, 23));
        assert_eq!(l.key(&["services", "db", "ready", "interval"]), at(9, 13));
        assert_eq!(l.value(&["services", "db", "ready", "interval"]), at(9, 23));
    }

    #[test]
    fn finds_list_items() {
        let l = Locator::new(DOC);
        assert_eq!(l.item(&["services", "db", "command"], 2), at(6, 33));
        assert_eq!(l.item(&["services", "web", "depends_on"], 0), at(13, 7));
        assert_eq!(l.item(&["services", "web", "depends_on"], 1), at(14, 7));
        assert_eq!(l.item(&["services", "web", "success_codes"], 1), at(17, 11));
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let l = Locator::new(DOC);
        assert_eq!(l.key(&["services", "web", "nope"]), at(10, 3));
        assert_eq!(l.value(&["services", "web", "depends_on"]), at(12, 5));
        assert_eq!(l.item(&["services", "web", "depends_on"], 9), at(12, 5));
        assert_eq!(l.key(&["nothing"]), at(1, 1));
    }

    #[test]
    fn finds_the_second_of_duplicate_keys() {
        let l = Locator::new("services:\n  a:\n    x: 1\n  b: {}\n  a: {}\n");
        assert_eq!(l.duplicate(at(2, 3), "a"), Some(at(5, 3)));
        assert_eq!(l.duplicate(at(2, 3), "b"), None);
    }

    #[test]
    fn reads_the_key_a_line_starts_with() {
        assert_eq!(key_of("web:").as_deref(), Some("web"));
        assert_eq!(key_of("web : {a: 1}").as_deref(), Some("web"));
        assert_eq!(key_of("\"a b\": 1").as_deref(), Some("a b"));
        assert_eq!(key_of("'q': x").as_deref(), Some("q"));
        assert_eq!(key_of("http://x: 1").as_deref(), Some("http://x"));
        assert_eq!(key_of("- item"), None);
        assert_eq!(key_of("no colon"), None);
    }

    #[test]
    fn a_key_found_twice_is_the_first_and_lookups_repeat() {
        let l = Locator::new("a: 1\nb:\n  c: 2\na: 3\n");
        assert_eq!(l.key(&["a"]), at(1, 1));
        assert_eq!(l.value(&["b", "c"]), at(3, 6));
        assert_eq!(l.value(&["b", "c"]), at(3, 6));
    }

    #[test]
    fn counts_columns_in_characters() {
        let l = Locator::new("é: {ü: 1, k: 2}\n");
        assert_eq!(l.key(&["é", "k"]), at(1, 11));
    }

    #[test]
    fn report_names_the_service() {
        let mut r = Report::new(DOC);
        r.at_value(&["services", "web", "command"], "bad");
        r.at_key(&["health"], "worse");
        let errors = r.into_errors();
        assert_eq!((errors[0].line, errors[0].column), (2, 1));
        assert_eq!(errors[0].service, None);
        assert_eq!(errors[1].service.as_deref(), Some("web"));
    }
}
