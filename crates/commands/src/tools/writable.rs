//! Whether a folder a command will write can be made, checked before anything is built and
//! without leaving anything behind.

use anyhow::bail;
use cargo_metadata::camino::Utf8Path;

/// Checks that `dir` is a folder, or can be made as one, that this process can write into;
/// `flag` names the option that chose it, for the fix.
pub fn check(dir: &Utf8Path, flag: &str) -> anyhow::Result<()> {
    let fix = format!("give {flag} a folder you can write");
    let Some(existing) = dir
        .ancestors()
        .find(|a| a.as_str().is_empty() || a.exists())
    else {
        return Ok(());
    };
    let existing = match existing.as_str() {
        "" => Utf8Path::new("."),
        _ => existing,
    };
    if !existing.is_dir() {
        bail!("{dir} cannot be a folder: {existing} is a file; {fix}");
    }
    // Writing is the only sure test (permissions, read-only mounts, /proc): a file made and
    // removed at once.
    let probe = existing.join(format!(".xtask-write-test-{}", std::process::id()));
    match std::fs::File::create_new(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!("{dir} cannot be written: {existing} refuses new files ({e}); {fix}"),
    }
}

#[cfg(test)]
mod tests {
    use cargo_metadata::camino::Utf8PathBuf;

    use super::*;

    #[test]
    fn a_folder_under_a_file_or_a_read_only_place_is_refused_and_nothing_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().to_owned()).unwrap();
        check(&root.join("new/deeper"), "--out").unwrap();
        check(&root, "--out").unwrap();
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        std::fs::write(root.join("file"), "").unwrap();
        let err = check(&root.join("file/sub"), "--out")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a file; give --out a folder"), "{err}");
        let err = check(Utf8Path::new("/proc/xtask"), "--layout")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc refuses new files"), "{err}");
    }
}
