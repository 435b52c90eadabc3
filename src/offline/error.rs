//! What can go wrong reading the inputs of `kreflex test`.

use std::path::PathBuf;

/// An unusable event stream or object directory.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// A file or directory cannot be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A document of an event stream is not JSON.
    #[error("document #{index} is not valid JSON: {source}")]
    Json {
        /// Position of the document in the stream (0-based).
        index: usize,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A document of an event stream is JSON but not an event or an object.
    #[error("document #{index}: {reason}")]
    Event {
        /// Position of the document in the stream (0-based).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The stream holds no event.
    #[error("no events found")]
    NoEvents,
    /// A YAML or JSON document of an object file does not parse.
    #[error("{}: {source}", path.display())]
    Yaml {
        /// The file (empty for text not read from a file).
        path: PathBuf,
        /// The parser's error.
        source: serde_yaml::Error,
    },
}
