//! `relay-bridge URL USERNAME TRAIL KEY_FILE` (password in `RELAY_BRIDGE_PASSWORD`): re-verifies
//! a trail read from a relay's API. Exit 0 when it holds, 1 when broken, 2 on errors.

use std::process::ExitCode;

use relay_bridge::{RelayClient, key_ring_from_file, reverify};
use relay_domain::TrailId;

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, username, trail, key_file] = args.as_slice() else {
        return Err(
            "usage: relay-bridge URL USERNAME TRAIL KEY_FILE (password in RELAY_BRIDGE_PASSWORD)"
                .into(),
        );
    };
    let password = std::env::var("RELAY_BRIDGE_PASSWORD")
        .map_err(|_| "set RELAY_BRIDGE_PASSWORD to the account's password")?;
    let keys = key_ring_from_file(std::path::Path::new(key_file))?;
    let trail = TrailId::new(trail.as_str())?;
    let client = RelayClient::login(url, username, &password)?;
    let records = client.records(&trail)?;
    match reverify(&trail, &keys, &records) {
        Ok(summary) => {
            println!(
                "OK      {trail}: {} records re-verified independently",
                summary.records
            );
            Ok(true)
        }
        Err(failure) => {
            println!("BROKEN  {trail}: {failure}");
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("relay-bridge: error: {e}");
            ExitCode::from(2)
        }
    }
}
