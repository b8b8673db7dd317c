//! Embeds the list of crates compiled into the binaries (see the `tiny-embed` crate): what
//! syft and `cargo audit bin` read, and what each image's SBOM is written from.

fn main() -> anyhow::Result<()> {
    tiny_embed::dependency_list()
}
