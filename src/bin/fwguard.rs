fn main() {
    std::process::exit(fwguard::cli::main());
}
