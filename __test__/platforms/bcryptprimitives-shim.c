// Test-only stand-in for Windows' bcryptprimitives.dll under wine 8 (Debian 12), which
// lacks it. Rust's std (1.78+) takes its random seeds from ProcessPrng there; every
// Windows 10+ ships the real DLL, so this is never packaged: scripts/test-platforms.js
// builds it into .toolchains/ and puts it on wine's PATH only.
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length); // RtlGenRandom (advapi32)

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
