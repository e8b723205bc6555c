package hwsim

import (
	"fmt"
	"sort"
	"sync"
)

// DefaultThreshold is the signal, in dBm, below which a Medium loses a
// frame: -95 dBm, about the noise floor mac80211_hwsim reports (-92 dBm in
// its survey) less a little, so that -90 dBm still gets through, barely.
const DefaultThreshold = -95

// DefaultSignal is the signal, in dBm, between two radios whose link was
// never set: a good link (-50 dBm), so that a medium nobody configured
// behaves like the kernel's perfect one.
const DefaultSignal = -50

// Options configure a Medium.
type Options struct {
	// Threshold is the signal (dBm) below which frames are lost; 0 means
	// DefaultThreshold.
	Threshold int
	// DefaultSignal is the signal (dBm) of a link never set; 0 means
	// DefaultSignal.
	DefaultSignal int
	// Logf, when set, receives a line for each change of the medium.
	Logf func(format string, args ...any)
}

// Stats count what a Medium did.
type Stats struct {
	Frames      uint64 // frames received from transmitters
	Forwarded   uint64 // copies delivered to receivers
	Dropped     uint64 // copies not delivered: no link or below the threshold
	Acked       uint64 // unicast frames reported acknowledged
	NotAcked    uint64 // unicast frames reported lost
	Rejected    uint64 // copies the kernel refused (receiver idle or off-channel)
	SendErrors  uint64 // messages that could not be sent to the kernel
	RecvErrors  uint64 // receive errors survived (e.g. ENOBUFS: frames lost in the socket)
	BadMessages uint64 // messages from the kernel that did not decode
}

type link struct{ tx, rx Addr }

type linkState struct {
	dBm int
	off bool
}

// Medium decides which radios hear which frames, by the signal set for each
// (transmitter, receiver) pair. It is safe for concurrent use: Run delivers
// frames while the setters change the links.
type Medium struct {
	threshold, def int
	logf           func(string, ...any)

	mu     sync.Mutex
	radios map[Addr]bool
	owner  map[Addr]Addr // interface (or scan) address -> radio
	links  map[link]linkState
	stats  Stats
}

// New returns a Medium with no radios: AddRadio adds them, and Run adds each
// radio it sees transmit.
func New(o Options) *Medium {
	m := &Medium{
		threshold: o.Threshold, def: o.DefaultSignal, logf: o.Logf,
		radios: map[Addr]bool{}, owner: map[Addr]Addr{}, links: map[link]linkState{},
	}
	if m.threshold == 0 {
		m.threshold = DefaultThreshold
	}
	if m.def == 0 {
		m.def = DefaultSignal
	}
	if m.logf == nil {
		m.logf = func(string, ...any) {}
	}
	return m
}

// Threshold is the signal (dBm) below which frames are lost.
func (m *Medium) Threshold() int { return m.threshold }

// AddRadio adds the radio named radio (see RadioAddr) and says that the
// interface addresses addrs belong to it.
func (m *Medium) AddRadio(radio Addr, addrs ...Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addRadioLocked(radio)
	for _, a := range addrs {
		m.owner[a] = radio
	}
}

func (m *Medium) addRadioLocked(radio Addr) {
	if !m.radios[radio] {
		m.radios[radio] = true
		m.logf("radio %v added", radio)
	}
}

// Radios returns the radios known, sorted.
func (m *Medium) Radios() []Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := make([]Addr, 0, len(m.radios))
	for a := range m.radios {
		r = append(r, a)
	}
	sort.Slice(r, func(i, j int) bool { return string(r[i][:]) < string(r[j][:]) })
	return r
}

// SetSignal sets the signal rx hears from tx, in dBm, and turns the link
// on.
func (m *Medium) SetSignal(tx, rx Addr, dBm int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.links[link{tx, rx}] = linkState{dBm: dBm}
	m.logf("signal %v -> %v %d dBm", tx, rx, dBm)
}

// SetLink turns the link from tx to rx off (rx hears nothing from tx,
// whatever the signal) or back on with the signal it had.
func (m *Medium) SetLink(tx, rx Addr, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.linkLocked(tx, rx)
	l.off = !on
	m.links[link{tx, rx}] = l
	m.logf("link %v -> %v %s (signal %d dBm)", tx, rx, map[bool]string{true: "on", false: "off"}[on], l.dBm)
}

func (m *Medium) linkLocked(tx, rx Addr) linkState {
	l, ok := m.links[link{tx, rx}]
	if !ok {
		l.dBm = m.def
	}
	return l
}

// Signal returns the signal rx hears from tx and whether the link is on.
func (m *Medium) Signal(tx, rx Addr) (dBm int, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.linkLocked(tx, rx)
	return l.dBm, !l.off
}

// Stats returns the counters.
func (m *Medium) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

func (m *Medium) count(f func(*Stats)) {
	m.mu.Lock()
	f(&m.stats)
	m.mu.Unlock()
}

// hears reports whether rx hears tx, and at what signal.
func (m *Medium) hearsLocked(tx, rx Addr) (int, bool) {
	l := m.linkLocked(tx, rx)
	return l.dBm, !l.off && l.dBm >= m.threshold
}

// frameAddrs returns addr1 (receiver) and, for management and data frames,
// addr2 (transmitter) of an 802.11 frame.
func frameAddrs(b []byte) (a1, a2 Addr, hasA2 bool, ok bool) {
	if len(b) < 10 {
		return a1, a2, false, false
	}
	copy(a1[:], b[4:10])
	ftype := (b[0] >> 2) & 3
	if (ftype == 0 || ftype == 2) && len(b) >= 24 {
		copy(a2[:], b[10:16])
		hasA2 = true
	}
	return a1, a2, hasA2, true
}

// Route decides the fate of f: the copies to deliver, one per radio that
// hears the transmitter (link on, signal at or above the threshold), and the
// status to report to the transmitter. A unicast frame is acknowledged when
// the radio that owns its receiver address (addr1) got a copy and the
// transmitter hears that radio back. Route learns the transmitter as a
// radio and the frame's addr2 as one of its addresses (how probe requests
// from a random scan address find their responses). The frequency is passed
// on: the kernel itself drops copies for a radio on another channel or idle.
func (m *Medium) Route(f Frame) ([]RxFrame, TxStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Frames++
	m.addRadioLocked(f.Transmitter)
	a1, a2, hasA2, ok := frameAddrs(f.Data)
	if hasA2 && !a2.IsGroup() {
		m.owner[a2] = f.Transmitter
	}
	var rate uint32
	if len(f.TxInfo) > 0 && f.TxInfo[0].Idx > 0 {
		rate = uint32(f.TxInfo[0].Idx)
	}
	var out []RxFrame
	acked := false
	ackSignal := int32(0)
	dst, dstKnown := m.owner[a1]
	for rx := range m.radios {
		if rx == f.Transmitter {
			continue
		}
		dBm, hears := m.hearsLocked(f.Transmitter, rx)
		if !hears {
			m.stats.Dropped++
			continue
		}
		m.stats.Forwarded++
		out = append(out, RxFrame{Receiver: rx, Data: f.Data, RxRate: rate, Signal: int32(dBm), Freq: f.Freq})
		if ok && !a1.IsGroup() && dstKnown && dst == rx {
			if back, hearsBack := m.hearsLocked(rx, f.Transmitter); hearsBack {
				acked, ackSignal = true, int32(back)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].Receiver[:]) < string(out[j].Receiver[:]) })
	st := TxStatus{Transmitter: f.Transmitter, Flags: f.Flags &^ TxStatACK, Cookie: f.Cookie, Signal: ackSignal}
	st.TxInfo = append([]TxRate(nil), f.TxInfo...)
	unicast := ok && !a1.IsGroup() && f.Flags&TxCtlNoACK == 0
	if unicast && acked {
		st.Flags |= TxStatACK
		m.stats.Acked++
		// Acknowledged at the first attempt of the first rate.
		if len(st.TxInfo) > 0 {
			st.TxInfo[0].Count = 1
			for i := 1; i < len(st.TxInfo); i++ {
				st.TxInfo[i] = TxRate{Idx: -1}
			}
		}
	} else if unicast {
		m.stats.NotAcked++
	}
	return out, st
}

// learn records a HWSIM_CMD_ADD_MAC_ADDR or DEL_MAC_ADDR.
func (m *Medium) learn(e MACAddrEvent, add bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addRadioLocked(e.Radio)
	if add {
		m.owner[e.Addr] = e.Radio
	} else if m.owner[e.Addr] == e.Radio {
		delete(m.owner, e.Addr)
	}
}

// String describes the links set and the counters.
func (m *Medium) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ls []string
	for l, s := range m.links {
		st := fmt.Sprintf("%v -> %v %d dBm", l.tx, l.rx, s.dBm)
		if s.off {
			st += " off"
		}
		ls = append(ls, st)
	}
	sort.Strings(ls)
	s := fmt.Sprintf("threshold %d dBm, default %d dBm, %d radios\n", m.threshold, m.def, len(m.radios))
	for _, l := range ls {
		s += l + "\n"
	}
	return s + fmt.Sprintf("%+v\n", m.stats)
}
