#![allow(clippy::print_stdout)] // the rebuild and checksum commands answer on stdout

use std::process::ExitCode;

use chatsdk_platform::service::Service;
use projector::{Application, Config, rebuild};

const USAGE: &str = "usage: projector [--config PATH]                      run the projector service
       projector rebuild --database-url URL [--config PATH]   replay the whole log into an empty database
       projector checksum --database-url URL [--config PATH]  print a digest of a database's read models
       projector rebuild-search [--index-dir DIR] [--config PATH]  rebuild the search index from offset 0 and swap it in";

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some(command @ ("rebuild" | "checksum" | "rebuild-search")) => tool(command, &arguments[1..]).await,
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => chatsdk_platform::service::main::<Application>().await,
    }
}

/// `rebuild` and `checksum`: the checksum on stdout, logs on stderr.
async fn tool(command: &str, arguments: &[String]) -> ExitCode {
    let option =
        |name: &str| arguments.iter().position(|argument| argument == name).and_then(|index| arguments.get(index + 1));
    let url = option("--database-url");
    if url.is_none() && command != "rebuild-search" {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let config = match Config::load(option("--config").map(std::path::Path::new)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("projector: {error}");
            return ExitCode::from(2);
        }
    };
    chatsdk_platform::telemetry::init_for_tool(Application::log_config(&config));
    let outcome = match (command, url) {
        ("rebuild", Some(url)) => rebuild::rebuild(&config, url).await,
        ("checksum", Some(url)) => rebuild::checksum(&config, url).await,
        _ => {
            let target =
                option("--index-dir").map_or_else(|| config.search.index_dir.clone(), std::path::PathBuf::from);
            rebuild::rebuild_search(&config, &target).await
        }
    };
    match outcome {
        Ok(digest) => {
            println!("{digest}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("projector {command}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
