#![allow(clippy::print_stdout)] // the admin commands answer on stdout

use std::process::ExitCode;

use chatsdk_client::token::{Claims, mint};
use chatsdk_platform::service::Service;
use chatsdk_schemas::ids::{AppId, UserId};
use command_api::apps::{app_secret, apply_migrations, create_app};
use command_api::{Application, Config};

const USAGE: &str = "usage: command-api [--config PATH]        run the command API
       command-api admin create-app APP_ID [--config PATH]
           create an app; prints its id, api_key and api_secret (the secret is shown once)
       command-api admin token --app APP_ID --user USER_ID [--ttl-secs N] [--scope \"chat:write ...\"] [--config PATH]
           mint a user token signed with the app's secret (development; production backends sign their own)";

#[tokio::main]
async fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some("admin") => admin(&arguments[1..]).await,
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => chatsdk_platform::service::main::<Application>().await,
    }
}

async fn admin(arguments: &[String]) -> ExitCode {
    let option =
        |name: &str| arguments.iter().position(|argument| argument == name).and_then(|index| arguments.get(index + 1));
    let config = match Config::load(option("--config").map(std::path::Path::new)) {
        Ok(config) => config,
        Err(error) => return fail(&error.to_string(), 2),
    };
    chatsdk_platform::telemetry::init_for_tool(Application::log_config(&config));
    let pool = match config.postgres.pool() {
        Ok(pool) => pool,
        Err(error) => return fail(&format!("{error:#}"), 1),
    };
    match arguments.first().map(String::as_str) {
        Some("create-app") => {
            let Some(app_id) = arguments.get(1).and_then(|value| value.parse::<AppId>().ok()) else {
                return fail(&format!("a valid APP_ID is needed\n{USAGE}"), 2);
            };
            if let Err(error) = apply_migrations(&pool).await {
                return fail(&error.to_string(), 1);
            }
            match create_app(&pool, &app_id).await {
                Ok(credentials) => {
                    println!("{}", serde_json::to_string_pretty(&credentials).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error.to_string(), 1),
            }
        }
        Some("token") => {
            let app = option("--app").and_then(|value| value.parse::<AppId>().ok());
            let user = option("--user").and_then(|value| value.parse::<UserId>().ok());
            let ttl = option("--ttl-secs").map_or(Some(3600), |value| value.parse::<i64>().ok());
            let (Some(app), Some(user), Some(ttl)) = (app, user, ttl) else {
                return fail(&format!("--app, --user (valid ids) and a numeric --ttl-secs are needed\n{USAGE}"), 2);
            };
            let secret = match app_secret(&pool, &app).await {
                Ok(Some(secret)) => secret,
                Ok(None) => return fail(&format!("no app {app}"), 1),
                Err(error) => return fail(&error.to_string(), 1),
            };
            let mut claims = Claims::new(&user, chrono::Utc::now().timestamp(), ttl);
            if let Some(scope) = option("--scope") {
                claims = claims.with_scope(scope.clone());
            }
            println!("{}", mint(&secret, &claims));
            ExitCode::SUCCESS
        }
        _ => fail(USAGE, 2),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("command-api admin: {message}");
    ExitCode::from(code)
}
