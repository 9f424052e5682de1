/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the test suite under Wine 8 (ci/cross.sh).
 *
 * Rust's standard library gets its random bytes (the seeds of HashMap's hasher) from ProcessPrng in
 * bcryptprimitives.dll, which Windows 10 and later have and Wine 8.0 does not: without this DLL every
 * x86_64-pc-windows-gnu binary fails at start-up under Wine. This one exports ProcessPrng alone and fills the
 * buffer from RtlGenRandom (exported by advapi32 as SystemFunction036), which Wine has.
 * Built by ci/cross.sh: x86_64-w64-mingw32-gcc -shared -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    /* RtlGenRandom takes a 32-bit length: fill larger buffers in pieces. */
    while (length > 0) {
        ULONG piece = length > 0x80000000u ? 0x80000000u : (ULONG)length;
        if (!SystemFunction036(data, piece))
            return FALSE;
        data += piece;
        length -= piece;
    }
    return TRUE;
}
