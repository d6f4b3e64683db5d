use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = countersign::cli::Cli::parse();
    match countersign::cli::run(cli) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("countersign: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
