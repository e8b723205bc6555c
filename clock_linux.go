package netmon

import "golang.org/x/sys/unix"

// clockSynced reports whether the kernel considers the system clock
// synchronised: adjtimex(2) with no modes only reads, and the kernel sets
// STA_UNSYNC until a time daemon (chronyd, systemd-timesyncd, ntpd) has
// disciplined the clock, and returns TIME_ERROR while it is set. A robot
// without an RTC boots with STA_UNSYNC and a clock in the past; the Gate
// then retries certificates "not yet valid" or "expired" instead of
// failing them (gate.Config.ClockSynced). When the call fails, nothing is
// known, and the clock is assumed to be synchronised, as on other systems.
func clockSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return true
	}
	return tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR
}
