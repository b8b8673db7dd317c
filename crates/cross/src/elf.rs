//! Checks that a binary will run in a scratch image on its target: whole (nothing the
//! loader maps lies past the end of the file), the right machine, and statically linked (no
//! program interpreter, no shared libraries).

use anyhow::Context;

use crate::error::bail;
use object::elf::{self, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use crate::target::Target;

/// How a verified binary is linked, as `file` would put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// A statically linked executable at a fixed address.
    Static,
    /// A static position-independent executable.
    StaticPie,
}

/// Checks that `bytes` are a 64-bit ELF executable for `target`, statically linked (no
/// interpreter, no shared libraries), and says how.
pub fn verify(bytes: &[u8], target: Target) -> crate::Result<Linkage> {
    if FileKind::parse(bytes).ok() != Some(FileKind::Elf64) {
        bail!("not a 64-bit ELF executable");
    }
    let header = FileHeader64::<Endianness>::parse(bytes).context("malformed ELF header")?;
    let endian = header.endian().context("malformed ELF header")?;
    let machine = header.e_machine(endian);
    if machine != target.elf_machine() {
        bail!(
            "built for {}, not {}: it would fail with \"exec format error\"",
            machine_name(machine),
            target.machine()
        );
    }
    let segments = header
        .program_headers(endian, bytes)
        .context("malformed program headers: the file is truncated or corrupt")?;
    check_whole(header, endian, segments, bytes.len() as u64)?;
    for segment in segments {
        if segment.p_type(endian) == elf::PT_INTERP {
            let interp = segment
                .data(endian, bytes)
                .ok()
                .map(|d| {
                    String::from_utf8_lossy(d)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_default();
            bail!(
                "dynamically linked (program interpreter {interp}): in a scratch image it would \
                 fail with \"no such file or directory\""
            );
        }
        let dynamic = segment
            .dynamic(endian, bytes)
            .context("malformed dynamic section")?;
        if let Some(entries) = dynamic {
            let needs_libraries = entries
                .iter()
                .any(|d| d.tag32(endian) == Some(elf::DT_NEEDED));
            if needs_libraries {
                bail!(
                    "needs shared libraries: in a scratch image it would fail with \"no such file \
                     or directory\""
                );
            }
        }
    }
    Ok(match header.e_type(endian) {
        elf::ET_DYN => Linkage::StaticPie,
        _ => Linkage::Static,
    })
}

/// A cut-off binary still has a valid header: the loader would map bytes that are not
/// there and the program would crash (SIGSEGV or SIGBUS) on first use of them.
fn check_whole(
    header: &FileHeader64<Endianness>,
    endian: Endianness,
    segments: &[elf::ProgramHeader64<Endianness>],
    len: u64,
) -> crate::Result<()> {
    let fix = "the file is truncated or corrupt: delete it and build again";
    for (i, segment) in segments.iter().enumerate() {
        if segment.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let (offset, size) = (segment.p_offset(endian), segment.p_filesz(endian));
        match offset.checked_add(size) {
            Some(end) if end <= len => {}
            _ => bail!(
                "not whole: loadable segment {i} (bytes {offset}..{}) ends past the end of the \
                 file ({len} bytes): {fix}",
                offset.saturating_add(size)
            ),
        }
    }
    let table = header.e_shoff(endian);
    if table != 0 {
        // With more sections than the header can count, the count is in the first entry:
        // that one entry must be there at least.
        let count = u64::from(header.e_shnum(endian)).max(1);
        let size = count * u64::from(header.e_shentsize(endian));
        match table.checked_add(size) {
            Some(end) if end <= len => {}
            _ => bail!(
                "not whole: the section header table (bytes {table}..{}) ends past the end of \
                 the file ({len} bytes): {fix}",
                table.saturating_add(size)
            ),
        }
    }
    Ok(())
}

fn machine_name(machine: u16) -> String {
    match machine {
        elf::EM_X86_64 => "x86_64".into(),
        elf::EM_AARCH64 => "aarch64".into(),
        elf::EM_RISCV => "riscv".into(),
        elf::EM_386 => "i386".into(),
        elf::EM_ARM => "arm".into(),
        other => format!("ELF machine {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHDR_SIZE: usize = 56;

    /// A little-endian ELF64 executable of `e_type` and `machine` with the given segments
    /// (`p_type`, contents), each placed after the program header table.
    fn elf(e_type: u16, machine: u16, segments: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let phoff = 64;
        let mut data_off = phoff + PHDR_SIZE * segments.len();
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // 64-bit
        out[5] = 1; // little-endian
        out[6] = 1; // version
        out[16..18].copy_from_slice(&e_type.to_le_bytes());
        out[18..20].copy_from_slice(&machine.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
        let mut payload: Vec<u8> = Vec::new();
        for (p_type, contents) in segments {
            let mut ph = vec![0u8; PHDR_SIZE];
            ph[..4].copy_from_slice(&p_type.to_le_bytes());
            ph[8..16].copy_from_slice(&(data_off as u64).to_le_bytes());
            ph[32..40].copy_from_slice(&(contents.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&(contents.len() as u64).to_le_bytes());
            out.extend(ph);
            payload.extend(contents);
            data_off += contents.len();
        }
        out.extend(payload);
        out
    }

    fn dynamic(tags: &[(u64, u64)]) -> Vec<u8> {
        tags.iter()
            .chain([&(elf::DT_NULL as u64, 0)])
            .flat_map(|(tag, val)| [tag.to_le_bytes(), val.to_le_bytes()].concat())
            .collect()
    }

    #[test]
    fn static_and_static_pie_binaries_pass() {
        let exec = elf(elf::ET_EXEC, elf::EM_AARCH64, &[(elf::PT_LOAD, vec![0; 8])]);
        assert_eq!(verify(&exec, Target::Aarch64Musl).unwrap(), Linkage::Static);
        let pie = elf(
            elf::ET_DYN,
            elf::EM_X86_64,
            &[(
                elf::PT_DYNAMIC,
                dynamic(&[(elf::DT_FLAGS_1 as u64, 0x0800_0000)]),
            )],
        );
        assert_eq!(
            verify(&pie, Target::X86_64Musl).unwrap(),
            Linkage::StaticPie
        );
    }

    #[test]
    fn the_wrong_machine_is_an_exec_format_error() {
        let bin = elf(elf::ET_EXEC, elf::EM_X86_64, &[]);
        let err = verify(&bin, Target::Aarch64Musl).unwrap_err().to_string();
        assert_eq!(
            err,
            "built for x86_64, not aarch64: it would fail with \"exec format error\""
        );
        let bin = elf(elf::ET_EXEC, elf::EM_RISCV, &[]);
        let err = verify(&bin, Target::X86_64Musl).unwrap_err().to_string();
        assert!(err.starts_with("built for riscv, not x86_64"), "{err}");
    }

    #[test]
    fn an_interpreter_means_dynamically_linked() {
        let bin = elf(
            elf::ET_DYN,
            elf::EM_X86_64,
            &[(elf::PT_INTERP, b"/lib64/ld-linux-x86-64.so.2\0".to_vec())],
        );
        let err = verify(&bin, Target::X86_64Musl).unwrap_err().to_string();
        assert!(
            err.starts_with("dynamically linked (program interpreter /lib64/ld-linux-x86-64.so.2)"),
            "{err}"
        );
        assert!(err.contains("no such file or directory"), "{err}");
    }

    #[test]
    fn needed_libraries_are_refused() {
        let bin = elf(
            elf::ET_DYN,
            elf::EM_AARCH64,
            &[(elf::PT_DYNAMIC, dynamic(&[(elf::DT_NEEDED as u64, 1)]))],
        );
        let err = verify(&bin, Target::Aarch64Musl).unwrap_err().to_string();
        assert!(err.starts_with("needs shared libraries"), "{err}");
    }

    /// Points the section header table at `offset` with `count` entries of 64 bytes.
    fn with_section_table(mut bin: Vec<u8>, offset: u64, count: u16) -> Vec<u8> {
        bin[40..48].copy_from_slice(&offset.to_le_bytes());
        bin[58..60].copy_from_slice(&64u16.to_le_bytes());
        bin[60..62].copy_from_slice(&count.to_le_bytes());
        bin
    }

    #[test]
    fn a_truncated_binary_is_not_whole() {
        let whole = elf(
            elf::ET_EXEC,
            elf::EM_X86_64,
            &[
                (elf::PT_LOAD, vec![0x90; 64]),
                (elf::PT_LOAD, vec![0xc3; 64]),
            ],
        );
        assert!(verify(&whole, Target::X86_64Musl).is_ok());
        for cut in [1, 64, 100] {
            let truncated = &whole[..whole.len() - cut];
            let err = verify(truncated, Target::X86_64Musl)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("not whole: loadable segment"),
                "cut {cut}: {err}"
            );
            assert!(err.contains("truncated or corrupt"), "{err}");
        }
        // Cut into the program header table itself.
        let err = verify(&whole[..100], Target::X86_64Musl).unwrap_err();
        assert!(
            format!("{err:#}").contains("truncated or corrupt"),
            "{err:#}"
        );
    }

    #[test]
    fn an_overflowing_segment_is_not_whole() {
        let mut bin = elf(elf::ET_EXEC, elf::EM_AARCH64, &[(elf::PT_LOAD, vec![0; 8])]);
        // p_filesz of the first segment: offset + size overflows u64.
        bin[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = verify(&bin, Target::Aarch64Musl).unwrap_err().to_string();
        assert!(err.starts_with("not whole: loadable segment 0"), "{err}");
    }

    #[test]
    fn the_section_header_table_must_be_inside_the_file() {
        let bin = elf(elf::ET_EXEC, elf::EM_X86_64, &[(elf::PT_LOAD, vec![0; 8])]);
        let len = bin.len() as u64;
        let mut inside = with_section_table(bin.clone(), len, 2);
        inside.extend([0u8; 128]);
        assert!(verify(&inside, Target::X86_64Musl).is_ok());
        let cut = with_section_table(bin.clone(), len, 2);
        let err = verify(&cut, Target::X86_64Musl).unwrap_err().to_string();
        assert!(
            err.starts_with("not whole: the section header table"),
            "{err}"
        );
        let far = with_section_table(bin, u64::MAX - 10, 0);
        assert!(verify(&far, Target::X86_64Musl).is_err());
    }

    #[test]
    fn non_elf_input_is_refused() {
        assert_eq!(
            verify(b"#!/bin/sh\n", Target::X86_64Musl)
                .unwrap_err()
                .to_string(),
            "not a 64-bit ELF executable"
        );
        let mut elf32 = elf(elf::ET_EXEC, elf::EM_ARM, &[]);
        elf32[4] = 1;
        assert!(verify(&elf32, Target::Aarch64Musl).is_err());
    }
}
