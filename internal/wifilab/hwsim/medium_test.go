package hwsim

import (
	"testing"
)

func ifaddr(radio Addr) Addr { radio[0] &^= 0x40; return radio }

func newLab() *Medium {
	m := New(Options{})
	for _, r := range []Addr{ap, ap2, sta} {
		m.AddRadio(r, ifaddr(r))
	}
	return m
}

func receivers(rx []RxFrame) map[Addr]int32 {
	r := map[Addr]int32{}
	for _, f := range rx {
		r[f.Receiver] = f.Signal
	}
	return r
}

func TestRouteBroadcastByThreshold(t *testing.T) {
	m := newLab()
	m.SetSignal(ap, sta, -72)
	m.SetSignal(ap, ap2, -96) // below -95
	beacon := make([]byte, 36)
	beacon[0] = 0x80
	copy(beacon[4:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	apIf := ifaddr(ap)
	copy(beacon[10:], apIf[:])
	rx, st := m.Route(Frame{Transmitter: ap, Data: beacon, Flags: TxCtlNoACK, TxInfo: []TxRate{{0, 1}}, Cookie: 7, Freq: 2412})
	got := receivers(rx)
	if len(got) != 1 || got[sta] != -72 {
		t.Fatalf("receivers %v, want only the station at -72", got)
	}
	if rx[0].Freq != 2412 {
		t.Errorf("freq %d", rx[0].Freq)
	}
	if st.Flags&TxStatACK != 0 || st.Cookie != 7 || st.Transmitter != ap {
		t.Errorf("status %+v", st)
	}
	s := m.Stats()
	if s.Forwarded != 1 || s.Dropped != 1 || s.Frames != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestRouteUnicastAck(t *testing.T) {
	m := newLab()
	m.SetSignal(ap, sta, -60)
	m.SetSignal(sta, ap, -61)
	f := Frame{Transmitter: ap, Data: dataFrame(ifaddr(sta), ifaddr(ap)), Flags: TxCtlReqTxStatus,
		TxInfo: []TxRate{{2, 3}, {1, 3}, {0, 3}, {-1, 0}}, Cookie: 1, Freq: 2412}
	rx, st := m.Route(f)
	if len(rx) != 2 { // ap2 hears it at the default signal too
		t.Fatalf("receivers %v", receivers(rx))
	}
	if st.Flags&TxStatACK == 0 || st.Signal != -61 || st.TxInfo[0] != (TxRate{2, 1}) || st.TxInfo[1].Idx != -1 {
		t.Fatalf("status %+v, want acknowledged at -61 on the first try", st)
	}
	if rx[0].RxRate != 2 {
		t.Errorf("rx rate %d", rx[0].RxRate)
	}

	m.SetLink(ap, sta, false)
	rx, st = m.Route(f)
	if _, ok := receivers(rx)[sta]; ok || st.Flags&TxStatACK != 0 {
		t.Fatalf("link off: receivers %v, status %+v", receivers(rx), st)
	}
	if st.TxInfo[0] != (TxRate{2, 3}) {
		t.Errorf("lost frame's tx info %+v, want the attempts as given", st.TxInfo)
	}
	m.SetLink(ap, sta, true)
	if dBm, on := m.Signal(ap, sta); dBm != -60 || !on {
		t.Fatalf("link back on: %d %v", dBm, on)
	}
	// The acknowledgement must come back: the station does not hear... the AP
	// does not hear the station.
	m.SetLink(sta, ap, false)
	if _, st = m.Route(f); st.Flags&TxStatACK != 0 {
		t.Fatal("acknowledged though the ACK cannot return")
	}
	if s := m.Stats(); s.Acked != 1 || s.NotAcked != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestRouteLearnsAddresses(t *testing.T) {
	m := New(Options{})
	scan := Addr{0x06, 1, 2, 3, 4, 5}
	// A probe request from a random scan address teaches the medium the
	// address and the radio; the response is then acknowledged.
	probe := dataFrame(Addr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, scan)
	probe[0] = 0x40
	m.Route(Frame{Transmitter: sta, Data: probe, Flags: TxCtlNoACK, Cookie: 1})
	m.learn(MACAddrEvent{Radio: ap, Addr: ifaddr(ap)}, true)
	resp := dataFrame(scan, ifaddr(ap))
	resp[0] = 0x50
	_, st := m.Route(Frame{Transmitter: ap, Data: resp, Cookie: 2})
	if st.Flags&TxStatACK == 0 {
		t.Fatalf("probe response not acknowledged: %+v", st)
	}
	if len(m.Radios()) != 2 {
		t.Fatalf("radios %v", m.Radios())
	}
}

func TestRadioAddr(t *testing.T) {
	if got := RadioAddr(Addr{2, 0, 0, 0, 1, 0}).String(); got != "42:00:00:00:01:00" {
		t.Fatal(got)
	}
}
