use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    chatsdk_platform::service::main::<query_api::Application>().await
}
