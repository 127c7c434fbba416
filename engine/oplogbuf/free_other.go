//go:build !unix

package oplogbuf

// FreeBytes is unknown here: the buffer's limit is the configured one.
func FreeBytes(string) (int64, bool) { return 0, false }
