//! How one declaration per key drives reading, unknown-key hints and `check` output.
//!
//! Each mapping in the file is a [`Section`]: a table of [`Key`]s (declared in `keys.rs`). The
//! table's order is the order keys are read in, listed in unknown-key hints, and shown by
//! `check`, so adding a key is one entry in one table.

use super::parse::{join, ConfigError, Cx};
use super::yaml::Node;

/// Reads a key's value into the value being built; the `&str` is the key's path, for errors.
pub(super) type Read<T> = for<'a> fn(&Cx<'a>, &Node, &str, &mut T) -> Result<(), ConfigError>;

/// The key's value as `check` shows it, or `None` to leave the key out.
pub(super) type Show<T> = fn(&T) -> Option<String>;

/// A rule across keys, run once every key of the section was read.
pub(super) type Check<T> =
    for<'a, 'n> fn(&Cx<'a>, &Fields<'n, T>, &mut T) -> Result<(), ConfigError>;

/// What an absent (or `null`) key means.
pub(super) enum Absent<T> {
    /// The start value stands: a default, or what the canary inherits.
    Keep,
    /// An error: the key must be given; the text says what is expected.
    Required(&'static str),
    /// Derived from keys read before it, as `heartbeat.timeout` from `heartbeat.every`.
    Derive(fn(&mut T)),
}

/// One key of a mapping, declared once.
pub(super) struct Key<T: 'static> {
    pub(super) name: &'static str,
    pub(super) absent: Absent<T>,
    pub(super) read: Read<T>,
    pub(super) show: Show<T>,
}

/// One kind of mapping in the file: its keys, in documentation order, and its cross-key rules.
pub(super) struct Section<T: 'static> {
    pub(super) keys: &'static [Key<T>],
    /// Keys of which exactly one must be given, as `publish`'s `http` and `ws`; checked before
    /// any key is read, since the others' meaning can depend on which one it is.
    pub(super) one_of: &'static [&'static str],
    pub(super) check: Option<Check<T>>,
}

/// The names of `keys`, in order, at compile time.
pub(super) const fn names<T, const N: usize>(keys: &[Key<T>]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = keys[i].name;
        i += 1;
    }
    out
}

/// A mapping whose keys were checked against its section.
pub(super) struct Fields<'n, T: 'static> {
    pub(super) node: &'n Node,
    pub(super) path: String,
    entries: &'n [(String, Node)],
    section: &'static Section<T>,
}

impl<'n, T> Fields<'n, T> {
    /// The value of a declared key and its path; `null` counts as absent.
    pub(super) fn get(&self, key: &str) -> Option<(&'n Node, String)> {
        debug_assert!(
            self.section.keys.iter().any(|k| k.name == key),
            "{key} is not declared in this section"
        );
        self.entries
            .iter()
            .find(|(k, v)| k == key && !matches!(v, Node::Null))
            .map(|(_, v)| (v, join(&self.path, key)))
    }
}

impl Cx<'_> {
    /// `node` as a mapping of `section`'s keys; an unknown key is an error listing them all.
    pub(super) fn fields<'n, T>(
        &self,
        node: &'n Node,
        path: &str,
        section: &'static Section<T>,
    ) -> Result<Fields<'n, T>, ConfigError> {
        let Node::Map(entries) = node else {
            return Err(self.invalid(
                if path.is_empty() { "(top level)" } else { path },
                "a mapping",
                node,
            ));
        };
        for (k, _) in entries {
            if !section.keys.iter().any(|key| key.name == k) {
                let allowed: Vec<&str> = section.keys.iter().map(|key| key.name).collect();
                return Err(ConfigError::UnknownKey {
                    file: self.file.to_path_buf(),
                    key: join(path, k),
                    allowed: allowed.join(", "),
                });
            }
        }
        Ok(Fields {
            node,
            path: path.to_string(),
            entries,
            section,
        })
    }

    /// Reads `node` as `section` into `start`, key by key in table order.
    pub(super) fn section<T>(
        &self,
        node: &Node,
        path: &str,
        section: &'static Section<T>,
        mut start: T,
    ) -> Result<T, ConfigError> {
        let f = self.fields(node, path, section)?;
        if !section.one_of.is_empty() {
            let expected = format!("one of {}", section.one_of.join(" or "));
            let mut given = section.one_of.iter().filter_map(|k| f.get(k));
            match (given.next(), given.next()) {
                (None, _) => return Err(self.missing(&join(path, section.one_of[0]), &expected)),
                (Some(_), Some((n, k))) => {
                    return Err(self.invalid(&k, format!("{expected}, not both"), n))
                }
                (Some(_), None) => {}
            }
        }
        for key in section.keys {
            match (f.get(key.name), &key.absent) {
                (Some((n, k)), _) => (key.read)(self, n, &k, &mut start)?,
                (None, Absent::Keep) => {}
                (None, Absent::Required(expected)) => {
                    return Err(self.missing(&join(path, key.name), expected))
                }
                (None, Absent::Derive(derive)) => derive(&mut start),
            }
        }
        if let Some(check) = section.check {
            check(self, &f, &mut start)?;
        }
        Ok(start)
    }
}

/// `{ key: value, ... }` over the keys `check` shows.
pub(super) fn flow<T>(section: &Section<T>, value: &T) -> String {
    let parts: Vec<String> = section
        .keys
        .iter()
        .filter_map(|k| (k.show)(value).map(|v| format!("{}: {v}", k.name)))
        .collect();
    format!("{{ {} }}", parts.join(", "))
}

/// One `key: value` line per shown key, at `indent`. A value that is a block of its own
/// (from [`block`]) starts with a newline and goes below its key.
pub(super) fn block<T>(section: &Section<T>, value: &T, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let lines: Vec<String> = section
        .keys
        .iter()
        .filter_map(|k| {
            let v = (k.show)(value)?;
            let sep = if v.starts_with('\n') { "" } else { " " };
            Some(format!("{pad}{}:{sep}{v}", k.name))
        })
        .collect();
    lines.join("\n")
}

/// A [`Key`] whose value is one field: read with `Cx::$read(node, path, args..)`, shown with
/// `$show(&field)`.
macro_rules! field {
    ($name:literal, $absent:expr, $field:ident, $read:ident($($arg:expr),*), $show:path) => {
        Key {
            name: $name,
            absent: $absent,
            read: |cx, n, k, t| {
                t.$field = cx.$read(n, k $(, $arg)*)?;
                Ok(())
            },
            show: |t| $show(&t.$field),
        }
    };
}

/// A [`Key`] for an optional field: absent is `None`, and `check` leaves it out.
macro_rules! optional_field {
    ($name:literal, $field:ident, $read:ident($($arg:expr),*), $show:path) => {
        Key {
            name: $name,
            absent: Absent::Keep,
            read: |cx, n, k, t| {
                t.$field = Some(cx.$read(n, k $(, $arg)*)?);
                Ok(())
            },
            show: |t| t.$field.as_ref().and_then(|v| $show(v)),
        }
    };
}

pub(super) use {field, optional_field};
