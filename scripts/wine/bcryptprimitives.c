/*
 * A stand-in bcryptprimitives.dll for Wine 8.0 (Debian 12's wine64), used only by
 * scripts/windows-smoke.sh, never shipped. Go's Windows runtime (Go 1.22 and newer)
 * loads ProcessPrng from System32's bcryptprimitives.dll at start-up, which every
 * Windows 10 and 11 has and Wine has only from 9.0: without it Shardlift.exe stops
 * with "fatal error: bcryptprimitives.dll not found" before main. ProcessPrng is
 * answered by RtlGenRandom (advapi32's SystemFunction036), which Wine 8.0 has.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
	while (length > 0) {
		ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		length -= n;
	}
	return TRUE;
}
