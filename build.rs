//! `keelson demo` embeds example-repo/ (include_dir); a file added to it must rebuild the binary too.

fn main() {
    println!("cargo:rerun-if-changed=example-repo");
}
