fn main() {
    std::process::exit(fwguard::cli::index_tool::main());
}
