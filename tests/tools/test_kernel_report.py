"""Parsers of scripts/kernel_report.py on hand-written ptxas / cuobjdump excerpts (no CUDA needed)."""
import importlib.util
import os
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("kernel_report", os.path.join(ROOT, "scripts", "kernel_report.py"))
kr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kr)

PTXAS = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    40 bytes stack frame, 52 bytes spill stores, 48 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 1056 bytes smem, 400 bytes cmem[0]
ptxas info    : Compiling entry function '_Z3barv' for 'sm_90'
ptxas info    : Function properties for _Z3barv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 360 bytes cmem[0]
"""

# ptxas's wgmma pipeline notes name their function and may come before its entry line.
PTXAS_WGMMA = """ptxas info    : (C7514) Potential Performance Loss: wgmma.mma_async instructions are serialized due to \
non wgmma instructions reading accumulator registers of  a wgmma between start and end of the pipeline stage in the \
function '_Z3wgmv'
ptxas info    : Compiling entry function '_Z3wgmv' for 'sm_90a'
ptxas info    : Function properties for _Z3wgmv
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : (C7519) warpgroup.arrive is injected in around line 650 by compiler to allow use of registers in \
GMMA in function '_Z3wgmv'
ptxas info    : Used 180 registers, used 1 barriers, 400 bytes cmem[0]
"""

# A loop at 0x10..0x60 with two HMMA and one spill load, nested in an outer loop back to 0x0.
SASS = """
        code for sm_90
                Function : _Z3fooPf
        .headerflags    @"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   HMMA.16816.F32.BF16 R4, R8, R12, R4 ;
        /*0020*/                   LDL R2, [R1+0x8] ;
        /*0030*/                   HMMA.16816.F32.BF16 R16, R8, R14, R16 ;
        /*0040*/               @P0 LDSM.16.M88.4 R8, [R3] ;
        /*0050*/                   ISETP.GE.AND P0, PT, R2, 0x4, PT ;
        /*0060*/              @!P0 BRA 0x10 ;
        /*0070*/                   MUFU.EX2 R5, R5 ;
        /*0080*/                   BRA 0x0 ;
        /*0090*/                   EXIT ;
                ..........
"""

ELF = """
.nv.info._Z3fooPf
	<0x1>
	Attribute:	EIATTR_MAX_THREADS
	Format:	EIFMT_SVAL
	Value:	0x80 0x1 0x1 
.nv.info._Z3barv
	<0x1>
	Attribute:	EIATTR_REGCOUNT
	Format:	EIFMT_SVAL
	Value:	0x20 
"""


class KernelReportParsers(unittest.TestCase):
    def test_ptxas(self):
        res = kr.parse_ptxas(PTXAS)
        self.assertEqual(res["_Z3fooPf"], {"stack": 40, "spill_stores": 52, "spill_loads": 48, "registers": 255,
                                           "barriers": 1, "static_smem": 1056})
        self.assertEqual(res["_Z3barv"]["registers"], 32)
        self.assertEqual(res["_Z3barv"]["static_smem"], 0)

    def test_wgmma_pipeline_notes(self):
        res = kr.parse_ptxas(PTXAS_WGMMA)
        notes = res["_Z3wgmv"]["wgmma_notes"]
        self.assertEqual(len(notes), 2)
        self.assertTrue(notes[0].startswith("C7514 Potential Performance Loss: wgmma.mma_async instructions are "
                                            "serialized"))
        self.assertTrue(notes[1].startswith("C7519 warpgroup.arrive is injected"))
        self.assertEqual(res["_Z3wgmv"]["registers"], 180)
        self.assertNotIn("wgmma_notes", kr.parse_ptxas(PTXAS)["_Z3fooPf"])

    def test_hot_loop_is_the_innermost_loop_with_most_hmma(self):
        funcs = kr.parse_sass(SASS)
        self.assertEqual(list(funcs), ["_Z3fooPf"])
        loop = kr.hot_loop(funcs["_Z3fooPf"])
        self.assertEqual(loop["HMMA"], 2)
        self.assertEqual(loop["LDL"], 1)
        self.assertEqual(loop["LDSM"], 1)  # the predicate guard is not the opcode
        self.assertEqual(loop["MUFU"], 0)  # outside the inner loop
        self.assertEqual(loop["total"], 6)

    def test_launch_bounds(self):
        self.assertEqual(kr.parse_launch_bounds(ELF), {"_Z3fooPf": 128})

    def test_ctas_per_sm_by_registers(self):
        self.assertEqual(kr.ctas_per_sm_by_regs(255, 128), 2)  # 8192 registers per warp, 4 warps
        self.assertEqual(kr.ctas_per_sm_by_regs(255, 256), 1)
        self.assertEqual(kr.ctas_per_sm_by_regs(32, 128), 16)  # then the 64-warp limit
        self.assertEqual(kr.ctas_per_sm_by_regs(16, 32), 32)   # and the 32-CTA limit


if __name__ == "__main__":
    unittest.main()
