//! The prober's configuration: typed, validated up front, with errors that name the file, the
//! key path and what was expected.
//!
//! Unknown keys are errors. Durations read like `500ms`, `5s`, `2m`, `1h`; sizes like `64KiB`,
//! `1MiB` or a plain byte count. `${VAR}` in any string is replaced by the environment variable
//! (`$$` is a literal `$`); a missing variable is an error naming the key. Header values and
//! URLs are [`Secret`]s / [`TargetUrl`]s, which never print their credentials.
//!
//! Each key is declared once, in `keys.rs`: that declaration reads it, lists it in unknown-key
//! hints and shows it in `check`. `schema.rs` walks the declarations, `parse.rs` reads single
//! values, and `yaml.rs` is the only place YAML is parsed.

mod keys;
mod parse;
mod schema;
mod types;
mod units;
pub mod yaml;

pub use keys::CANARY_KEYS;
pub use parse::ConfigError;
// One secret type for the workspace: the middleware's, redacted at the type level.
pub use types::*;
pub use units::{fmt_duration, parse_duration, parse_size};
pub use wsmon::Secret;
