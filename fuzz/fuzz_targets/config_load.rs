//! The configuration loaders of both binaries (`bins/relay-edge/src/config.rs` and
//! `bins/relay-server/src/config.rs`, compiled in unchanged): figment over a TOML file the
//! operator (or anyone who can write the file) wrote. The input is the file's bytes.
//!
//! Properties: no panic; a loaded configuration written back as TOML loads again to the same
//! value (what the relay runs with is what the file says, nothing lost on the way).
#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../bins/relay-edge/src/config.rs"]
mod edge_config;
#[allow(dead_code, clippy::all)]
#[path = "../../bins/relay-server/src/config.rs"]
mod server_config;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("relay-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the fuzz scratch directory can be created");
        dir
    });
    dir.join(name)
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("the fuzz scratch file can be written");
}

fuzz_target!(|data: &[u8]| {
    let file = scratch("relay.toml");
    write(&file, data);
    let cli = edge_config::CliOverrides::default();
    if let Ok(edge) = edge_config::load(Some(&file), &cli) {
        let text = toml::to_string(&edge).expect("a loaded edge configuration renders as TOML");
        let again_file = scratch("edge-again.toml");
        write(&again_file, text.as_bytes());
        let again = edge_config::load(Some(&again_file), &cli).unwrap_or_else(|e| {
            panic!("the rendered edge configuration does not load: {e}\n{text}")
        });
        assert_eq!(edge, again, "{text}");
    }
    if let Ok(server) = server_config::load(Some(&file)) {
        let text = toml::to_string(&server).expect("a loaded server configuration renders as TOML");
        let again_file = scratch("server-again.toml");
        write(&again_file, text.as_bytes());
        let again = server_config::load(Some(&again_file)).unwrap_or_else(|e| {
            panic!("the rendered server configuration does not load: {e}\n{text}")
        });
        assert_eq!(server, again, "{text}");
    }
});
