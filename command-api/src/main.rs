use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    chatsdk_platform::service::main::<command_api::Application>().await
}
