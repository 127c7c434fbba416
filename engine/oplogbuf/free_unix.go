//go:build unix

package oplogbuf

import "syscall"

// FreeBytes is the disk space free for an unprivileged user where dir is (ok false
// when unknown).
func FreeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
