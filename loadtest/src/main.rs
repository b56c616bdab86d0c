use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(loadtest::cli::main(std::env::args_os()))
}
