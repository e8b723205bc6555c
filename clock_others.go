//go:build !linux

package netmon

// clockSynced assumes the system clock is synchronised: netmon reads the
// kernel's clock status only on Linux (clock_linux.go).
func clockSynced() bool { return true }
