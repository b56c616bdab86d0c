use std::process::ExitCode;

fn main() -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: cannot start the runtime: {e}");
            return ExitCode::from(loadtest::EXIT_USAGE);
        }
    };
    ExitCode::from(rt.block_on(loadtest::cli::run_cli(std::env::args_os())))
}
