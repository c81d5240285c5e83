use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = examroom::cli::Cli::parse();
    match examroom::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("examroom: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
