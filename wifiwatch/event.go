package wifiwatch

import (
	"net"
	"time"
)

// Event is something the watcher observed. It is a sealed interface: the
// concrete types are [Baseline], [Associated], [Disconnected], [Roamed],
// [SignalChanged], [ConnectFailed], [Quality], [ReadFailed], [Gap] and
// [Unavailable].
// Switch on the type. Every event's Time is when the watcher observed what
// it reports: when it handled the kernel notification, or when the poll
// that found the change began.
type Event interface {
	// Kind is a short lower-case name for logs ("baseline", "associated",
	// "disconnected", "roamed", "signal", "connect-failed", "quality",
	// "read-failed", "gap", "unavailable").
	Kind() string
	event() // seals the interface
}

// Baseline is always the first event once nl80211 answered: every wireless
// station interface as first read (a [ReadFailed] for an interface that
// could not be read may follow it at once). It is a state dump, never an edge. No
// wireless interface at all is not an error (a USB adapter may be plugged in
// later): Links is then empty.
type Baseline struct {
	Time time.Time // when the first read began
	// Links holds every station and P2P client interface, ordered by
	// index. Interfaces of other types (AP, monitor, mesh, ...) and
	// wireless devices without a network interface (P2P-Device, NAN) are
	// not watched.
	Links []Link
}

// Associated reports that an interface joined a network (and is not a roam
// within the same SSID, see [Roamed]). Link is the state right after.
type Associated struct {
	Time time.Time // when the watcher observed it
	Link Link      // the interface right after the association
}

// Disconnected reports that an interface lost its association. It is
// emitted from the kernel's NL80211_CMD_DISCONNECT, DEAUTHENTICATE or
// DISASSOCIATE event (FromEvent true), usually before the kernel publishes
// the carrier loss, or else from a poll that found no station (FromEvent
// false, Reason 0).
type Disconnected struct {
	Time  time.Time        // when the watcher observed it
	Index int              // ifindex
	Iface string           // interface name
	SSID  string           // the network that was lost
	BSSID net.HardwareAddr // the access point that was lost
	// Reason is the IEEE 802.11 reason code (e.g. 3 deauth leaving, 4
	// inactivity, 8 disassoc leaving, 15 4-way handshake timeout), 0 when
	// unknown.
	Reason uint16
	// ByAP is true when the access point ended the association
	// (NL80211_ATTR_DISCONNECTED_BY_AP, or a deauth frame sent by the BSSID).
	// When false the disconnect was locally generated: the supplicant, the
	// driver (e.g. beacon loss) or an administrator.
	ByAP bool
	// FromEvent is true when a kernel event reported the disconnect, false
	// when a poll discovered it.
	FromEvent bool
	// SignalDBm is the last signal read before the loss (0 if unknown): the
	// context an error report needs ("lost at -84 dBm").
	SignalDBm int
}

// Roamed reports that an interface moved to another access point of the
// same network: either seamlessly (NL80211_CMD_ROAM, Downtime 0) or through
// a disconnect followed within [Config].RoamWindow by an association to the
// same SSID on a new BSSID (Downtime is the gap). A roam is not an outage;
// a [Disconnected] event still precedes the second kind.
type Roamed struct {
	Time  time.Time // when the watcher observed it
	Index int       // ifindex
	Iface string    // interface name
	SSID  string    // the network, as associated after the roam
	// From is the BSSID of the access point left, To that of the one
	// joined (Link.BSSID).
	From, To net.HardwareAddr
	// Downtime is how long the interface was without association, as the
	// watcher saw it: from the disconnect to the read that found the new
	// association; 0 for a seamless roam.
	Downtime time.Duration
	Link     Link // state right after the roam
}

// SignalChanged reports that the signal band of an associated interface
// changed (with hysteresis). It is not emitted for every poll.
type SignalChanged struct {
	Time  time.Time // when the watcher observed it
	Index int       // ifindex
	Iface string    // interface name
	// From is the previous band (BandUnknown when the signal was not known
	// at the last poll) and To the new one, never BandUnknown.
	From, To  Band
	SignalDBm int // the signal that caused the change (average when known)
}

// ConnectFailed reports an NL80211_CMD_CONNECT result with a non-zero
// IEEE 802.11 status code, or one that timed out.
type ConnectFailed struct {
	Time     time.Time        // when the watcher observed it
	Index    int              // ifindex
	Iface    string           // interface name, "" if the watcher does not track the interface
	BSSID    net.HardwareAddr // the access point tried (NL80211_ATTR_MAC); may be nil
	Status   uint16           // IEEE 802.11 status code (1 unspecified failure, 17 AP full, ...)
	TimedOut bool             // NL80211_ATTR_TIMED_OUT: no answer from the AP
}

// QualityKind says which connection quality notification the kernel sent.
type QualityKind uint8

// Kinds of [Quality] notification (NL80211_CMD_NOTIFY_CQM).
const (
	QualityRSSILow    QualityKind = iota + 1 // signal fell below the armed threshold
	QualityRSSIHigh                          // signal rose above the armed threshold
	QualityPacketLoss                        // consecutive unacknowledged frames
	QualityBeaconLoss                        // the AP's beacons stopped arriving
)

// String returns the lower-case name of k.
func (k QualityKind) String() string {
	switch k {
	case QualityRSSILow:
		return "rssi-low"
	case QualityRSSIHigh:
		return "rssi-high"
	case QualityPacketLoss:
		return "packet-loss"
	case QualityBeaconLoss:
		return "beacon-loss"
	}
	return "unknown"
}

// Quality is a connection quality monitor notification from the kernel. RSSI
// notifications only arrive when someone armed CQM (usually the supplicant);
// packet loss is sent by mac80211 drivers unconditionally.
type Quality struct {
	Time     time.Time   // when the watcher observed it
	Index    int         // ifindex
	Iface    string      // interface name, "" if the watcher does not track the interface
	Type     QualityKind // which notification
	LevelDBm int         // for RSSI notifications, when the kernel includes it; else 0
	Packets  uint32      // for packet loss: the number of lost frames
}

// ReadFailed reports that reading one interface failed, for example a
// fullmac driver that answers NL80211_CMD_GET_STATION with EOPNOTSUPP. It
// concerns that interface only: the others are read as usual, and this one
// keeps the state it had (Link.Err says why it may be stale). It is sent
// once per distinct error, not at every poll; Link.Err turns nil again when
// a read works.
type ReadFailed struct {
	Time  time.Time // when the watcher observed it
	Index int       // ifindex
	Iface string    // interface name
	Err   error     // what failed, e.g. wrapping syscall.EOPNOTSUPP
}

// Gap reports that kernel events may have been lost: the event socket
// overflowed (ENOBUFS), receiving from it failed (the watcher then re-opens
// it with backoff and re-subscribes; one Gap per episode, however many
// attempts it takes), or a notification could not be decoded and was
// dropped. The watcher re-reads every interface at once, and again after a
// new subscription, so the next events and [Watcher.State] are consistent
// again; but a disconnect-and-reconnect inside the gap is invisible. A gap
// never ends [Watcher.Run].
type Gap struct {
	Time time.Time // when the watcher observed it
	Err  error     // the overflow, or why a notification could not be decoded
}

// Unavailable reports that Wi-Fi cannot be watched on this machine (no
// nl80211 family, no generic netlink, a missing capability). It is the last
// event: [Watcher.Run] then returns an error wrapping [ErrUnavailable].
type Unavailable struct {
	Time   time.Time // when the watcher observed it
	Reason string    // e.g. "no nl80211 family (kernel without cfg80211, or no Wi-Fi driver loaded)"
	Err    error     // wraps ErrUnavailable and the underlying error; Run returns it
}

// Kind implements Event.
func (Baseline) Kind() string { return "baseline" }

// Kind implements Event.
func (Associated) Kind() string { return "associated" }

// Kind implements Event.
func (Disconnected) Kind() string { return "disconnected" }

// Kind implements Event.
func (Roamed) Kind() string { return "roamed" }

// Kind implements Event.
func (SignalChanged) Kind() string { return "signal" }

// Kind implements Event.
func (ConnectFailed) Kind() string { return "connect-failed" }

// Kind implements Event.
func (Quality) Kind() string { return "quality" }

// Kind implements Event.
func (ReadFailed) Kind() string { return "read-failed" }

// Kind implements Event.
func (Gap) Kind() string { return "gap" }

// Kind implements Event.
func (Unavailable) Kind() string { return "unavailable" }

func (Baseline) event()      {}
func (Associated) event()    {}
func (Disconnected) event()  {}
func (Roamed) event()        {}
func (SignalChanged) event() {}
func (ConnectFailed) event() {}
func (Quality) event()       {}
func (ReadFailed) event()    {}
func (Gap) event()           {}
func (Unavailable) event()   {}

// Link is the Wi-Fi state of one station interface. Its slices are never
// modified after the Link is published, so copies may share them.
type Link struct {
	Index int              // ifindex
	Iface string           // interface name (NL80211_ATTR_IFNAME)
	MAC   net.HardwareAddr // the interface's own address
	// Associated is true while the interface has an access point
	// (GET_STATION finds one); it turns false at a disconnect.
	Associated bool
	SSID       string           // "" when not associated (or hidden and not yet read)
	BSSID      net.HardwareAddr // the access point, nil when not associated
	FreqMHz    int              // channel centre frequency, 0 when unknown
	// SignalDBm is the signal of the last frame received from the access
	// point; 0 when the driver does not report it.
	SignalDBm int
	// SignalAvgDBm is the driver's running average of the signal; 0 when
	// the driver does not report it.
	SignalAvgDBm int
	// Band classifies SignalAvgDBm (or SignalDBm when there is no average),
	// with hysteresis.
	Band Band
	// TxBitrate and RxBitrate are the last unicast rates in bits/s (from
	// NL80211_RATE_INFO_BITRATE32, in 100 kbit/s on the wire); 0 if unknown.
	TxBitrate, RxBitrate uint64
	// Connected is how long the station has been associated, as the kernel
	// counts it (whole seconds).
	Connected time.Duration
	// BeaconLoss, TxRetries and TxFailed are the kernel's counters for the
	// current association, 0 where the driver does not report them.
	BeaconLoss, TxRetries, TxFailed uint32
	// Since is when Associated last changed (or when the watcher first saw
	// the interface).
	Since time.Time
	// LastRoam is the time of the last roam, zero if none was seen.
	LastRoam time.Time
	// Err is non-nil while reading this interface fails (see
	// [ReadFailed]); the other fields are then as last read.
	Err error
}
