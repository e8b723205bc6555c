package wifiwatch

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Default values used for the zero fields of [Config].
const (
	DefaultPollInterval = 2 * time.Second
	DefaultHysteresis   = 4 // dB
	DefaultRoamWindow   = 5 * time.Second
)

// DefaultBands returns the thresholds used when [Config].Bands is zero: good
// at -67 dBm or better (the level commonly quoted for voice and video), fair
// from -75, weak from -82, critical below. It is a function, not a variable,
// so that no caller can change the defaults of every other caller.
func DefaultBands() Bands { return Bands{Good: -67, Fair: -75, Weak: -82} }

// Config configures a [Watcher]. The zero value is ready to use.
type Config struct {
	// PollInterval is how often the station of each associated interface is
	// read (NL80211_CMD_GET_STATION). 0 means DefaultPollInterval (2 s;
	// Android polls every 3 s, NetworkManager and iwd every 6 s). Events from
	// the kernel (connect, disconnect, roam, CQM) are handled at once,
	// independently of this interval.
	PollInterval time.Duration

	// Bands are the signal thresholds in dBm. The zero value means
	// DefaultBands(): good >= -67, fair >= -75, weak >= -82.
	Bands Bands

	// Hysteresis in dB, on the way down and on the way up: a signal must
	// fall this far below the lowest value of its band before the band
	// drops, and rise this far above the highest value of its band before
	// it rises ([Bands.Classify]), so that a signal hovering on a boundary
	// does not produce an event storm. 0 means DefaultHysteresis (4 dB:
	// the last frame's signal of a driver without SIGNAL_AVG jitters by
	// ±3 dB, which a 3 dB deadband does not contain); a negative value
	// disables hysteresis.
	Hysteresis int

	// RoamWindow is how long after a disconnect a re-association to the same
	// SSID on a different BSSID still counts as a roam ([Roamed] with a
	// Downtime) rather than an outage followed by a new association. 0 means
	// DefaultRoamWindow (5 s).
	RoamWindow time.Duration

	// ArmCQM makes the watcher configure the kernel's connection quality
	// monitor (NL80211_CMD_SET_CQM) with the Weak threshold when an
	// interface associates. Off by default, and it should stay off where
	// wpa_supplicant or iwd run: the kernel keeps one CQM configuration per
	// interface and the last writer wins, so arming it steals the
	// supplicant's roaming thresholds. It needs CAP_NET_ADMIN.
	ArmCQM bool

	// Logger receives diagnostics. nil means zap.NewNop().
	Logger *zap.Logger
}

// Bands are signal thresholds in dBm, each the lowest signal of its band.
// Below Weak the signal is [BandCritical].
type Bands struct {
	Good int // lowest signal that is BandGood, e.g. -67
	Fair int // lowest signal that is BandFair, e.g. -75
	Weak int // lowest signal that is BandWeak, e.g. -82
}

// withDefaults returns c with every zero field replaced by its default, or
// an error naming the first field that is out of range.
func (c Config) withDefaults() (Config, error) {
	if c.PollInterval < 0 {
		return c, fmt.Errorf("wifiwatch: Config.PollInterval: %v, want >= 0", c.PollInterval)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.RoamWindow < 0 {
		return c, fmt.Errorf("wifiwatch: Config.RoamWindow: %v, want >= 0", c.RoamWindow)
	}
	if c.RoamWindow == 0 {
		c.RoamWindow = DefaultRoamWindow
	}
	switch {
	case c.Hysteresis == 0:
		c.Hysteresis = DefaultHysteresis
	case c.Hysteresis < 0:
		c.Hysteresis = 0
	case c.Hysteresis > 20:
		return c, fmt.Errorf("wifiwatch: Config.Hysteresis: %d dB, want at most 20", c.Hysteresis)
	}
	if c.Bands == (Bands{}) {
		c.Bands = DefaultBands()
	}
	b := c.Bands
	if !(b.Good > b.Fair && b.Fair > b.Weak) || b.Good > 0 || b.Weak < -127 {
		return c, fmt.Errorf("wifiwatch: Config.Bands: %+v, want 0 >= Good > Fair > Weak >= -127 dBm", b)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c, nil
}

// Band is a coarse signal quality class.
type Band uint8

// Bands from worst to best, so that they compare with < and >.
const (
	BandUnknown  Band = iota // not associated, or the driver reports no signal
	BandCritical             // below Bands.Weak: expect losses and a disconnect
	BandWeak                 // Bands.Weak up to Bands.Fair
	BandFair                 // Bands.Fair up to Bands.Good
	BandGood                 // Bands.Good and better
)

// String returns the lower-case name of b, as used in logs.
func (b Band) String() string {
	switch b {
	case BandUnknown:
		return "unknown"
	case BandCritical:
		return "critical"
	case BandWeak:
		return "weak"
	case BandFair:
		return "fair"
	case BandGood:
		return "good"
	}
	return fmt.Sprintf("band(%d)", uint8(b))
}

// raw classifies dbm without hysteresis.
func (b Bands) raw(dbm int) Band {
	switch {
	case dbm >= b.Good:
		return BandGood
	case dbm >= b.Fair:
		return BandFair
	case dbm >= b.Weak:
		return BandWeak
	}
	return BandCritical
}

// Classify returns the band of a signal of dbm dBm given the previous band
// prev and a hysteresis of hyst dB. It is a Schmitt trigger with a
// symmetric deadband around each band edge: the band falls only once the
// signal is hyst dB or more below the lowest value of prev's band, and
// rises only once it is hyst dB or more above the highest value of prev's
// band. With the default bands and 4 dB, good falls to fair at -71 dBm and
// fair rises to good at -64 dBm; a signal that jitters between -70 and -65
// keeps whichever band it had. A change of several bands at once is taken
// in one step. With prev BandUnknown (a first reading), or hyst of 1 or
// less, the band is the plain threshold class.
//
// The deadband is the whole of the smoothing: the watcher feeds it the
// driver's SIGNAL_AVG when there is one, else the last frame's signal, and
// adds no average of its own, which would delay a real fade by several
// polls (signal_test.go measures both on a jittery trace).
func (b Bands) Classify(dbm int, prev Band, hyst int) Band {
	now := b.raw(dbm)
	if prev == BandUnknown || hyst <= 1 || now == prev {
		return now
	}
	if now > prev {
		// At least hyst dB above the top of prev's band (the edge above
		// it minus 1): raw(dbm-hyst+1) is above prev exactly then.
		if up := b.raw(dbm - hyst + 1); up > prev {
			return up
		}
		return prev
	}
	// At least hyst dB below the edge of prev's band, i.e. dbm+hyst <= edge.
	if down := b.raw(dbm + hyst - 1); down < prev {
		return down
	}
	return prev
}
