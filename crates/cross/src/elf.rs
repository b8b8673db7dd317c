//! Checks that a binary will run in a scratch image on its target: whole (nothing the
//! loader maps lies past the end of the file), the right machine, and statically linked (no
//! program interpreter, no shared libraries).

use anyhow::Context;

use crate::error::bail;
use object::elf::{self, FileHeader32, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader, SectionHeader};
use object::{Endianness, FileKind};

use crate::target::{Abi, Target};

/// How a verified binary is linked, as `file` would put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linkage {
    /// A statically linked executable at a fixed address.
    Static,
    /// A static position-independent executable.
    StaticPie,
}

/// Checks that `bytes` are an ELF executable for `target` (its class, byte order, machine
/// and ABI flags: float ABI, EABI version, ELFv2, the ARM architecture version), statically
/// linked (no interpreter, no shared libraries), and says how.
pub fn verify(bytes: &[u8], target: Target) -> crate::Result<Linkage> {
    let bits = if target.is_64_bit() { 64 } else { 32 };
    match (FileKind::parse(bytes).ok(), bits) {
        (Some(FileKind::Elf64), 64) => verify_as::<FileHeader64<Endianness>>(bytes, target),
        (Some(FileKind::Elf32), 32) => verify_as::<FileHeader32<Endianness>>(bytes, target),
        (Some(FileKind::Elf64 | FileKind::Elf32), _) => bail!(
            "a {} ELF file, not the {bits}-bit executable {target} needs: it would fail with \
             \"exec format error\"",
            if bits == 64 { "32-bit" } else { "64-bit" }
        ),
        _ => bail!("not a {bits}-bit ELF executable"),
    }
}

fn verify_as<H: FileHeader<Endian = Endianness>>(
    bytes: &[u8],
    target: Target,
) -> crate::Result<Linkage> {
    let header = H::parse(bytes).context("malformed ELF header")?;
    let endian = header.endian().context("malformed ELF header")?;
    let machine = header.e_machine(endian);
    if machine != target.elf_machine() {
        bail!(
            "built for {}, not {}: it would fail with \"exec format error\"",
            machine_name(machine),
            target.machine()
        );
    }
    if endian != Endianness::Little {
        bail!(
            "big-endian, not the little-endian {target}: it would fail with \"exec format error\""
        );
    }
    check_abi(header, endian, bytes, target)?;
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

/// The ABI the header's flags (and, for ARM, the `.ARM.attributes` section) declare must be
/// the target's: a soft-float or single-float binary, or one for a newer CPU, may start and
/// then crash or compute wrong results on the target's hardware.
fn check_abi<H: FileHeader<Endian = Endianness>>(
    header: &H,
    endian: Endianness,
    bytes: &[u8],
    target: Target,
) -> crate::Result<()> {
    let flags = header.e_flags(endian);
    let wrong = |found: &str, wanted: &str| -> crate::Result<()> {
        bail!("built for the {found}, not the {wanted} of {target} (ELF flags {flags:#x})")
    };
    match target.abi() {
        Abi::Plain => Ok(()),
        Abi::ArmHardFloat {
            min_cpu_arch,
            max_cpu_arch,
        } => {
            if flags & elf::EF_ARM_EABIMASK != elf::EF_ARM_EABI_VER5 {
                return wrong(
                    &format!("ARM EABI version {}", flags >> 24),
                    "ARM EABI version 5",
                );
            }
            if flags & elf::EF_ARM_ABI_FLOAT_HARD == 0 {
                return wrong("soft-float ABI", "hard-float ABI");
            }
            let arch = arm_cpu_arch(header, endian, bytes)?;
            if !(min_cpu_arch..=max_cpu_arch).contains(&arch) {
                bail!(
                    "built for {}, not {} ({target}): an arm/v6 and an arm/v7 binary are not \
                     interchangeable; build it for {target}",
                    arm_arch_name(arch),
                    arm_arch_name(min_cpu_arch)
                );
            }
            Ok(())
        }
        Abi::RiscvDouble => match flags & elf::EF_RISCV_FLOAT_ABI {
            elf::EF_RISCV_FLOAT_ABI_DOUBLE => Ok(()),
            elf::EF_RISCV_FLOAT_ABI_SOFT => wrong("soft-float ABI", "double-float ABI"),
            elf::EF_RISCV_FLOAT_ABI_SINGLE => wrong("single-float ABI", "double-float ABI"),
            _ => wrong("quad-float ABI", "double-float ABI"),
        },
        Abi::Ppc64ElfV2 => match flags & elf::EF_PPC64_ABI {
            2 => Ok(()),
            1 => wrong("ELFv1 ABI", "ELFv2 ABI"),
            _ => wrong("unspecified ABI", "ELFv2 ABI"),
        },
        Abi::LoongArchDouble => match flags & elf::EF_LARCH_ABI_MODIFIER_MASK {
            elf::EF_LARCH_ABI_DOUBLE_FLOAT => Ok(()),
            elf::EF_LARCH_ABI_SOFT_FLOAT => wrong("soft-float ABI", "double-float ABI"),
            _ => wrong("single-float ABI", "double-float ABI"),
        },
    }
}

/// `Tag_CPU_arch` of the `.ARM.attributes` section: the ARM architecture version the code
/// needs (6 for ARMv6, 10 for ARMv7-A, ...).
fn arm_cpu_arch<H: FileHeader<Endian = Endianness>>(
    header: &H,
    endian: Endianness,
    bytes: &[u8],
) -> crate::Result<u8> {
    let missing = "no ARM architecture version (.ARM.attributes Tag_CPU_arch): cannot tell \
                   arm/v6 from arm/v7; build it with `cargo xtask build`";
    let sections = header
        .section_headers(endian, bytes)
        .context("malformed section headers: the file is truncated or corrupt")?;
    let section = sections
        .iter()
        .find(|s| s.sh_type(endian) == elf::SHT_ARM_ATTRIBUTES)
        .with_context(|| missing.to_string())?;
    let data = section
        .data(endian, bytes)
        .map_err(|_| crate::Error::Other("malformed .ARM.attributes section".into()))?;
    Ok(tag_cpu_arch(data).with_context(|| missing.to_string())?)
}

/// `Tag_CPU_arch` (6) in the `aeabi` subsection's file attributes of an `.ARM.attributes`
/// section (ARM IHI 0045, build attributes).
fn tag_cpu_arch(data: &[u8]) -> Option<u8> {
    let mut rest = data.strip_prefix(b"A")?;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
        let sub = rest.get(4..len)?;
        rest = &rest[len..];
        let Some(sub) = sub.strip_prefix(b"aeabi\0") else {
            continue;
        };
        let mut items = sub;
        while items.len() >= 5 {
            let (tag, size) = (items[0], u32::from_le_bytes(items[1..5].try_into().ok()?));
            let body = items.get(5..size as usize)?;
            items = &items[size as usize..];
            // Tag_File: attributes of the whole file.
            if tag == 1 {
                return file_attribute(body, 6);
            }
        }
    }
    None
}

/// The value of integer attribute `wanted` in a list of (tag, value) pairs.
fn file_attribute(mut body: &[u8], wanted: u64) -> Option<u8> {
    fn uleb(data: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = data.split_first()?;
            *data = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn string(data: &mut &[u8]) -> Option<()> {
        let end = data.iter().position(|&b| b == 0)?;
        *data = &data[end + 1..];
        Some(())
    }
    while !body.is_empty() {
        let tag = uleb(&mut body)?;
        match tag {
            // Tag_CPU_raw_name, Tag_CPU_name, Tag_conformance: strings.
            4 | 5 | 67 => string(&mut body)?,
            // Tag_compatibility: a number and a string.
            32 => {
                uleb(&mut body)?;
                string(&mut body)?;
            }
            // Tag_nodefaults takes a number; above 32, odd tags are strings.
            t if t > 32 && t % 2 == 1 => string(&mut body)?,
            t => {
                let value = uleb(&mut body)?;
                if t == wanted {
                    return u8::try_from(value).ok();
                }
            }
        }
    }
    None
}

fn arm_arch_name(tag_cpu_arch: u8) -> String {
    match tag_cpu_arch {
        6 => "ARMv6 (arm/v6)".into(),
        7 => "ARMv6KZ (arm/v6)".into(),
        8 => "ARMv6T2".into(),
        9 => "ARMv6K (arm/v6)".into(),
        10 => "ARMv7 (arm/v7)".into(),
        14 => "ARMv8".into(),
        other => format!("ARM architecture {other}"),
    }
}

/// A cut-off binary still has a valid header: the loader would map bytes that are not
/// there and the program would crash (SIGSEGV or SIGBUS) on first use of them.
fn check_whole<H: FileHeader<Endian = Endianness>>(
    header: &H,
    endian: Endianness,
    segments: &[H::ProgramHeader],
    len: u64,
) -> crate::Result<()> {
    let fix = "the file is truncated or corrupt: delete it and build again";
    for (i, segment) in segments.iter().enumerate() {
        if segment.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let (offset, size) = (
            segment.p_offset(endian).into(),
            segment.p_filesz(endian).into(),
        );
        match offset.checked_add(size) {
            Some(end) if end <= len => {}
            _ => bail!(
                "not whole: loadable segment {i} (bytes {offset}..{}) ends past the end of the \
                 file ({len} bytes): {fix}",
                offset.saturating_add(size)
            ),
        }
    }
    let table: u64 = header.e_shoff(endian).into();
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
        elf::EM_PPC64 => "ppc64".into(),
        elf::EM_LOONGARCH => "loongarch".into(),
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

    /// A little-endian ELF32 ARM executable with `flags` and an `.ARM.attributes` section
    /// naming `cpu_arch` (none when `None`).
    fn arm(flags: u32, cpu_arch: Option<u8>) -> Vec<u8> {
        let attributes: Vec<u8> = match cpu_arch {
            Some(arch) => {
                // Tag_CPU_name "7-A", Tag_CPU_arch, Tag_ABI_VFP_args 1.
                let attrs = [&[5u8][..], b"7-A\0", &[6, arch, 28, 1]].concat();
                let file = [&[1u8][..], &(5 + attrs.len() as u32).to_le_bytes(), &attrs].concat();
                let sub = [b"aeabi\0".as_slice(), &file].concat();
                [b"A".as_slice(), &(4 + sub.len() as u32).to_le_bytes(), &sub].concat()
            }
            None => Vec::new(),
        };
        let mut attributes = attributes;
        attributes.resize(attributes.len().next_multiple_of(4), 0);
        let shoff = 52 + attributes.len();
        let mut out = vec![0u8; 52];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 1; // 32-bit
        out[5] = 1; // little-endian
        out[6] = 1;
        out[16..18].copy_from_slice(&elf::ET_EXEC.to_le_bytes());
        out[18..20].copy_from_slice(&elf::EM_ARM.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[32..36].copy_from_slice(&(shoff as u32).to_le_bytes());
        out[36..40].copy_from_slice(&flags.to_le_bytes());
        out[40..42].copy_from_slice(&52u16.to_le_bytes());
        out[42..44].copy_from_slice(&32u16.to_le_bytes());
        out[46..48].copy_from_slice(&40u16.to_le_bytes());
        out[48..50].copy_from_slice(&2u16.to_le_bytes());
        out.extend(&attributes);
        out.extend([0u8; 40]);
        let mut section = [0u8; 40];
        let kind = if cpu_arch.is_some() {
            elf::SHT_ARM_ATTRIBUTES
        } else {
            elf::SHT_PROGBITS
        };
        section[4..8].copy_from_slice(&kind.to_le_bytes());
        section[16..20].copy_from_slice(&52u32.to_le_bytes());
        section[20..24].copy_from_slice(&(attributes.len() as u32).to_le_bytes());
        out.extend(section);
        out
    }

    const EABI5_HARD: u32 = elf::EF_ARM_EABI_VER5 | elf::EF_ARM_ABI_FLOAT_HARD;

    #[test]
    fn arm_v7_and_v6_binaries_pass_in_their_own_folder_only() {
        let v7 = arm(EABI5_HARD, Some(10));
        let v6 = arm(EABI5_HARD, Some(6));
        assert_eq!(
            verify(&v7, Target::Armv7Musleabihf).unwrap(),
            Linkage::Static
        );
        assert_eq!(verify(&v6, Target::ArmMusleabihf).unwrap(), Linkage::Static);
        let err = verify(&v6, Target::Armv7Musleabihf)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "built for ARMv6 (arm/v6), not ARMv7 (arm/v7) (armv7-unknown-linux-musleabihf): an \
             arm/v6 and an arm/v7 binary are not interchangeable; build it for \
             armv7-unknown-linux-musleabihf"
        );
        let err = verify(&v7, Target::ArmMusleabihf).unwrap_err().to_string();
        assert!(
            err.starts_with("built for ARMv7 (arm/v7), not ARMv6 (arm/v6)"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        // 64-bit targets refuse 32-bit files before looking further.
        let err = verify(&v7, Target::Aarch64Musl).unwrap_err().to_string();
        assert!(
            err.starts_with("a 32-bit ELF file, not the 64-bit"),
            "{err}"
        );
    }

    #[test]
    fn arm_soft_float_old_eabi_and_unlabelled_binaries_are_refused() {
        let soft = arm(elf::EF_ARM_EABI_VER5, Some(10));
        let err = verify(&soft, Target::Armv7Musleabihf)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("built for the soft-float ABI, not the hard-float ABI"),
            "{err}"
        );
        let eabi4 = arm(0x0400_0000 | elf::EF_ARM_ABI_FLOAT_HARD, Some(10));
        let err = verify(&eabi4, Target::Armv7Musleabihf)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("built for the ARM EABI version 4"), "{err}");
        let unlabelled = arm(EABI5_HARD, None);
        let err = verify(&unlabelled, Target::ArmMusleabihf)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("no ARM architecture version"), "{err}");
    }

    #[test]
    fn float_abis_are_checked() {
        let with_flags = |machine: u16, flags: u32| {
            let mut bin = elf(elf::ET_EXEC, machine, &[]);
            bin[48..52].copy_from_slice(&flags.to_le_bytes());
            bin
        };
        let rvc_double = elf::EF_RISCV_RVC | elf::EF_RISCV_FLOAT_ABI_DOUBLE;
        assert!(
            verify(
                &with_flags(elf::EM_RISCV, rvc_double),
                Target::Riscv64gcMusl
            )
            .is_ok()
        );
        let err = verify(
            &with_flags(elf::EM_RISCV, elf::EF_RISCV_RVC),
            Target::Riscv64gcMusl,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("built for the soft-float ABI, not the double-float ABI"),
            "{err}"
        );
        assert!(verify(&with_flags(elf::EM_PPC64, 2), Target::Powerpc64leMusl).is_ok());
        let err = verify(&with_flags(elf::EM_PPC64, 1), Target::Powerpc64leMusl)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("built for the ELFv1 ABI, not the ELFv2 ABI"),
            "{err}"
        );
        assert!(
            verify(
                &with_flags(elf::EM_LOONGARCH, 0x43),
                Target::Loongarch64Musl
            )
            .is_ok()
        );
        assert!(
            verify(
                &with_flags(elf::EM_LOONGARCH, 0x41),
                Target::Loongarch64Musl
            )
            .is_err()
        );
    }
}
