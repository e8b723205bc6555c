package netmon

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestClockSyncedReadsTheKernel: the check the Monitor gives its Gate
// (gate.Config.ClockSynced) reads adjtimex(2) without privileges and
// agrees with the kernel's STA_UNSYNC flag.
func TestClockSyncedReadsTheKernel(t *testing.T) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		t.Fatalf("adjtimex: %v", err)
	}
	want := tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR
	if got := clockSynced(); got != want {
		t.Errorf("clockSynced() = %v, want %v (status %#x, state %d)", got, want, tx.Status, state)
	}
	t.Logf("clock synchronised: %v (status %#x, state %d)", want, tx.Status, state)
}
