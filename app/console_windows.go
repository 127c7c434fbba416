package app

import (
	"os"
	"syscall"
)

// Shardlift.exe is built as a Windows GUI program (-H windowsgui), so that the app
// started from the Start menu opens no console window. Windows then gives it no
// standard handles, and a command typed in cmd.exe or PowerShell would print
// nothing: attachConsole attaches it to the console of the shell that started it.
// Output already redirected to a file or a pipe keeps its handle.

var procAttachConsole = syscall.NewLazyDLL("kernel32.dll").NewProc("AttachConsole")

const attachParentProcess = ^uintptr(0) // ATTACH_PARENT_PROCESS, (DWORD)-1

func attachConsole() {
	missing := func(std int) bool {
		h, err := syscall.GetStdHandle(std)
		return err != nil || h == 0 || h == syscall.InvalidHandle
	}
	out, errOut, in := missing(syscall.STD_OUTPUT_HANDLE), missing(syscall.STD_ERROR_HANDLE), missing(syscall.STD_INPUT_HANDLE)
	if !out && !errOut && !in {
		return
	}
	if r, _, _ := procAttachConsole.Call(attachParentProcess); r == 0 {
		return // started without a console (from Explorer): nothing to print to
	}
	if f, err := os.OpenFile("CONOUT$", os.O_WRONLY, 0); err == nil {
		if out {
			os.Stdout = f
		}
		if errOut {
			os.Stderr = f
		}
	}
	if in {
		if f, err := os.OpenFile("CONIN$", os.O_RDONLY, 0); err == nil {
			os.Stdin = f
		}
	}
}
