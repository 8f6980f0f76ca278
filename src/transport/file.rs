use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::data::Batch;
use crate::rt::BoxFuture;

use super::{SendError, Transport};

/// Appends each item as one JSON line to a file (created if missing).
#[derive(Debug)]
pub struct FileTransport {
    path: PathBuf,
    file: Mutex<File>,
}

impl FileTransport {
    /// Opens `path` for appending.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FileTransport {
            path,
            file: Mutex::new(file),
        })
    }
}

impl Transport for FileTransport {
    fn send(&self, batch: Batch) -> BoxFuture<'_, Result<(), SendError>> {
        Box::pin(async move {
            let text = batch.to_ndjson();
            let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(text.as_bytes())
                .and_then(|_| f.flush())
                .map_err(|e| SendError::retry(format!("appending to {}: {e}", self.path.display())))
        })
    }
}
