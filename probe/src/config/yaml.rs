//! The only place YAML is parsed: `serde_yaml` is frozen upstream, so it stays behind this
//! module and everything else reads the [`Node`] tree.

use std::fmt;

/// A YAML document as a plain tree; mapping order is kept so errors and `check` follow the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    /// What this node is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::Float(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// A syntax error with its position in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Parses one YAML document. An empty document is [`Node::Null`].
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        // serde_yaml appends "at line X column Y"; the position is reported separately.
        let message = e.to_string();
        let message = match message.find(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        SyntaxError {
            line,
            column,
            message,
        }
    })?;
    convert(value)
}

fn convert(value: serde_yaml::Value) -> Result<Node, SyntaxError> {
    use serde_yaml::Value;
    Ok(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Node::Int(i),
            None => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Node::String(s),
        Value::Sequence(items) => {
            Node::Seq(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        Value::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(SyntaxError {
                            line: 0,
                            column: 0,
                            message: format!("mapping keys must be strings, found {other:?}"),
                        })
                    }
                };
                entries.push((key, convert(v)?));
            }
            Node::Map(entries)
        }
        Value::Tagged(tagged) => convert(tagged.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_keep_file_order() {
        let node = parse("b: 1\na: [x, 2.5]\n").unwrap();
        assert_eq!(
            node,
            Node::Map(vec![
                ("b".into(), Node::Int(1)),
                (
                    "a".into(),
                    Node::Seq(vec![Node::String("x".into()), Node::Float(2.5)])
                ),
            ])
        );
    }

    #[test]
    fn syntax_errors_carry_the_position() {
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(err.line >= 1, "{err:?}");
        assert!(!err.message.contains(" at line "), "{err:?}");
    }
}
