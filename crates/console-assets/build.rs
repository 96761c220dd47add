//! Embeds every file under the workspace's `console/` folder: generates
//! `$OUT_DIR/assets.rs` with one entry per file (its path below `console/`,
//! its bytes through `include_bytes!`, and a strong ETag from the SHA-256 of
//! the bytes, computed here once at build time).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    use sha2::Digest;
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../../console").canonicalize().unwrap();
    println!("cargo:rerun-if-changed={}", root.display());
    let mut paths = Vec::new();
    files(&root, &mut paths);
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        let hash = sha2::Sha256::digest(&bytes);
        let etag: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
        let name = path
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .expect("console/ file names are UTF-8")
            .replace('\\', "/");
        writeln!(
            code,
            "    Asset {{ path: {name:?}, bytes: include_bytes!({:?}), etag: \"\\\"{etag}\\\"\" }},",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(out, code).unwrap();
}
