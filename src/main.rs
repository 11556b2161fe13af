fn main() -> std::process::ExitCode {
    noisefs::cli::main()
}
