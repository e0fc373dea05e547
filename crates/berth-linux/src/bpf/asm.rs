//! A tiny eBPF assembler: just the instructions berth's socket programs
//! use, with named labels so no jump offset is counted by hand. Pure: the
//! bytes it produces are checked by unit tests and, for real, by the
//! kernel's verifier when they are loaded.
//!
//! Encoding (include/uapi/linux/bpf.h, `struct bpf_insn`): 8 bytes per
//! instruction — opcode, dst register (low nibble) and src register (high
//! nibble), a signed 16-bit offset, a signed 32-bit immediate. A 64-bit
//! immediate load (`ld_imm64`) takes two slots.

/// Registers: r0 return value, r1–r5 helper arguments (clobbered by calls),
/// r6–r9 kept across calls, r10 the read-only frame pointer.
pub type Reg = u8;
pub const R0: Reg = 0;
pub const R1: Reg = 1;
pub const R2: Reg = 2;
pub const R3: Reg = 3;
pub const R4: Reg = 4;
pub const R6: Reg = 6;
pub const R7: Reg = 7;
pub const R8: Reg = 8;
pub const R9: Reg = 9;
pub const FP: Reg = 10;

/// Memory access sizes.
#[derive(Clone, Copy)]
pub enum Size {
    B = 0x10,
    H = 0x08,
    W = 0x00,
    DW = 0x18,
}

const LDX: u8 = 0x61; // BPF_LDX | BPF_MEM, OR'ed with a size
const STX: u8 = 0x63; // BPF_STX | BPF_MEM
const ST: u8 = 0x62; // BPF_ST | BPF_MEM

/// The helper functions the programs call (enum bpf_func_id).
pub const MAP_LOOKUP_ELEM: i32 = 1;
pub const MAP_UPDATE_ELEM: i32 = 2;
pub const GET_SOCKET_COOKIE: i32 = 46;
pub const GET_NETNS_COOKIE: i32 = 122;

/// `ld_imm64` with src = BPF_PSEUDO_MAP_FD: the immediate is a map's fd,
/// which the kernel swaps for the map's address at load time.
const PSEUDO_MAP_FD: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn { code, regs: dst | (src << 4), off, imm }
    }

    pub fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// Conditional jumps (BPF_JMP class, against an immediate or a register).
#[derive(Clone, Copy)]
pub enum Cond {
    Eq = 0x10,
    Ne = 0x50,
}

/// Builds a program. Jumps name a label; `finish` resolves them.
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<(&'static str, usize)>,
    fixups: Vec<(usize, &'static str)>,
}

impl Asm {
    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }

    /// `dst = src` (64-bit).
    pub fn mov(&mut self, dst: Reg, src: Reg) -> &mut Self {
        self.push(Insn::new(0xbf, dst, src, 0, 0))
    }

    /// `dst = imm` (64-bit, sign-extended).
    pub fn mov_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(0xb7, dst, 0, 0, imm))
    }

    /// `dst += imm`.
    pub fn add_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(0x07, dst, 0, 0, imm))
    }

    /// `dst &= imm`.
    pub fn and_imm(&mut self, dst: Reg, imm: i32) -> &mut Self {
        self.push(Insn::new(0x57, dst, 0, 0, imm))
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) -> &mut Self {
        self.push(Insn::new(LDX | size as u8, dst, src, off, 0))
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) -> &mut Self {
        self.push(Insn::new(STX | size as u8, dst, src, off, 0))
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) -> &mut Self {
        self.push(Insn::new(ST | size as u8, dst, 0, off, imm))
    }

    /// `dst = imm64`.
    pub fn ld_imm64(&mut self, dst: Reg, imm: u64) -> &mut Self {
        self.push(Insn::new(0x18, dst, 0, 0, imm as u32 as i32));
        self.push(Insn::new(0, 0, 0, 0, (imm >> 32) as u32 as i32))
    }

    /// `dst = &map` (the map given by its fd).
    pub fn ld_map(&mut self, dst: Reg, map_fd: i32) -> &mut Self {
        self.push(Insn::new(0x18, dst, PSEUDO_MAP_FD, 0, map_fd));
        self.push(Insn::new(0, 0, 0, 0, 0))
    }

    /// `r2 = fp + off`: the address of a stack slot, as helpers take it.
    pub fn stack_ptr(&mut self, dst: Reg, off: i32) -> &mut Self {
        self.mov(dst, FP).add_imm(dst, off)
    }

    /// Calls a kernel helper: arguments in r1–r5, result in r0.
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(Insn::new(0x85, 0, 0, 0, helper))
    }

    /// `if dst <cond> imm goto label`.
    pub fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(Insn::new(0x05 | cond as u8, dst, 0, 0, imm))
    }

    /// `goto label`.
    pub fn goto(&mut self, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(Insn::new(0x05, 0, 0, 0, 0))
    }

    /// `if dst <cond> src goto label`.
    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(Insn::new(0x0d | cond as u8, dst, src, 0, 0))
    }

    /// Marks where the next instruction is.
    pub fn label(&mut self, name: &'static str) -> &mut Self {
        assert!(self.labels.iter().all(|(n, _)| *n != name), "label {name} defined twice");
        self.labels.push((name, self.insns.len()));
        self
    }

    /// `return r0`.
    pub fn exit(&mut self) -> &mut Self {
        self.push(Insn::new(0x95, 0, 0, 0, 0))
    }

    /// The program with every jump resolved. Panics on an unknown label or
    /// a backward jump (the programs are straight-line code with forward
    /// branches only, which is what makes them trivially terminate).
    pub fn finish(&mut self) -> Vec<Insn> {
        let mut out = self.insns.clone();
        for (at, name) in &self.fixups {
            let target = self.labels.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("unknown label {name}")).1;
            assert!(target > *at, "backward jump to {name}");
            out[*at].off = (target - at - 1) as i16;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_kernel_headers() {
        // Compared with what clang emits for the same instructions.
        assert_eq!(Insn::new(0xbf, R6, R1, 0, 0).bytes(), [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
        let mut a = Asm::default();
        a.load(Size::W, R1, R6, 36).store(Size::H, FP, -4, R8).store_imm(Size::W, FP, -8, 0).load(Size::DW, R1, R6, 64);
        let p = a.finish();
        assert_eq!(p[0].bytes(), [0x61, 0x61, 36, 0, 0, 0, 0, 0]);
        assert_eq!(p[1].bytes(), [0x6b, 0x8a, 0xfc, 0xff, 0, 0, 0, 0]);
        assert_eq!(p[2].bytes(), [0x62, 0x0a, 0xf8, 0xff, 0, 0, 0, 0]);
        assert_eq!(p[3].bytes(), [0x79, 0x61, 64, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn jumps_land_on_their_labels() {
        let mut a = Asm::default();
        a.jump_imm(Cond::Ne, R1, 6, "out").ld_imm64(R1, 1 << 40).jump_reg(Cond::Eq, R0, R1, "out").label("out").goto("end").exit().label("end").exit();
        let p = a.finish();
        assert_eq!(p.len(), 7);
        assert_eq!((p[0].code, p[0].off), (0x55, 3));
        assert_eq!((p[3].code, p[3].off, p[3].regs), (0x1d, 0, 0x10));
        assert_eq!((p[1].imm, p[2].imm), (0, 256));
        assert_eq!(p[4].bytes(), [0x05, 0, 1, 0, 0, 0, 0, 0], "goto skips one");
    }

    #[test]
    #[should_panic(expected = "unknown label")]
    fn an_unknown_label_is_a_bug() {
        Asm::default().jump_imm(Cond::Eq, R0, 0, "nowhere").finish();
    }
}
