//! The configuration directory a mesh's control plane watches: one file per resource, named
//! by kind, namespace and name, so that applying a resource again replaces it, as
//! `kubectl apply` does.

use std::path::{Path, PathBuf};

use trellis_api::Resource;

use crate::Error;

/// The file a resource is kept in.
pub fn file_of(dir: &Path, resource: &Resource) -> PathBuf {
    let meta = resource.meta();
    dir.join(format!(
        "{}.{}.{}.json",
        resource.kind().name(),
        meta.namespace,
        meta.name
    ))
}

/// Writes (or replaces) a resource; whether it was there before.
pub fn write(dir: &Path, resource: &Resource) -> Result<bool, Error> {
    let file = file_of(dir, resource);
    let existed = file.exists();
    let text = serde_json::to_string_pretty(&resource.to_value()).expect("resources serialise");
    // Written aside and renamed: the control plane never reads half a file.
    let partial = dir.join(".partial");
    std::fs::write(&partial, text + "\n")
        .and_then(|()| std::fs::rename(&partial, &file))
        .map_err(|e| Error::io(format!("writing {}", file.display()), e))?;
    Ok(existed)
}

/// Removes a resource; whether it was there.
pub fn remove(dir: &Path, resource: &Resource) -> Result<bool, Error> {
    let file = file_of(dir, resource);
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("removing {}", file.display()), e)),
    }
}
