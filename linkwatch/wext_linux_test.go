package linkwatch

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// TestWEXTEncoding pins wextLinkMsg to the bytes a 64-bit little-endian
// kernel sends for a SIOCGIWAP event (see wextLinkMsg for the source).
func TestWEXTEncoding(t *testing.T) {
	if strconv.IntSize != 64 || ne.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the golden bytes are those of a 64-bit little-endian kernel")
	}
	got := wextLinkMsg(3, "wlan0", unix.IFF_UP|unix.IFF_BROADCAST|unix.IFF_RUNNING|unix.IFF_MULTICAST|unix.IFF_LOWER_UP,
		[6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee})
	want := []byte{
		// nlmsghdr: len 72, RTM_NEWLINK, flags 0, seq 0, port id 0
		72, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		// ifinfomsg: AF_UNSPEC, pad, ARPHRD_ETHER, ifindex 3, flags 0x11043, change 0
		0, 0, 1, 0, 3, 0, 0, 0, 0x43, 0x10, 0x01, 0, 0, 0, 0, 0,
		// IFLA_IFNAME "wlan0\0", padded to 12
		10, 0, 3, 0, 'w', 'l', 'a', 'n', '0', 0, 0, 0,
		// IFLA_WIRELESS (11): struct iw_event {len 24, cmd SIOCGIWAP, pad,
		// sockaddr {ARPHRD_ETHER, BSSID, zeros}}
		28, 0, 11, 0, 24, 0, 0x15, 0x8b, 0, 0, 0, 0,
		1, 0, 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("wextLinkMsg =\n% x\nwant\n% x", got, want)
	}
}

// TestModelWEXT: the RTM_NEWLINK of a wireless extensions event carries
// only flags, name and IFLA_WIRELESS. It must not be read as a link that
// lost its operstate, MTU and MAC.
func TestModelWEXT(t *testing.T) {
	later := t0.Add(10 * time.Second)
	up := uint32(unix.IFF_UP | unix.IFF_BROADCAST | unix.IFF_RUNNING | unix.IFF_MULTICAST | unix.IFF_LOWER_UP)
	bssid := [6]byte{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	known := with(wlan, func(l *Link) { l.CarrierChanges = 4; l.Master = 12 }) // a port of a bridge
	plain := with(known, func(l *Link) { l.Kind = "" })                        // another namespace: no sysfs hint
	noCarrier := with(known, func(l *Link) { l.Carrier = false })
	tests := []struct {
		name   string
		setup  []byte // folded at t0
		msg    []byte // folded at later
		want   []Event
		effect effect
		state  map[int]Link
	}{{
		name:  "connect event on a known up link changes nothing",
		setup: linkMsg(known, false),
		msg:   wextLinkMsg(3, "wlan0", up, bssid),
		state: map[int]Link{3: known},
	}, {
		name:   "carrier cleared: a carrier change, the rest kept",
		setup:  linkMsg(known, false),
		msg:    wextLinkMsg(3, "wlan0", up&^(unix.IFF_LOWER_UP|unix.IFF_RUNNING), [6]byte{}),
		want:   []Event{LinkEvent{At: later, Op: LinkChanged, Link: noCarrier, Prev: known}},
		effect: relistRoutes,
		state:  map[int]Link{3: noCarrier},
	}, {
		name:  "IFLA_WIRELESS marks an unknown kind wireless, nothing else changes",
		setup: linkMsg(plain, false),
		msg:   wextLinkMsg(3, "wlan0", up, bssid),
		want:  []Event{LinkEvent{At: later, Op: LinkChanged, Link: known, Prev: plain}},
		state: map[int]Link{3: known},
	}, {
		name:  "renamed",
		setup: linkMsg(known, false),
		msg:   wextLinkMsg(3, "wl0", up, bssid),
		want: []Event{LinkEvent{At: later, Op: LinkChanged,
			Link: with(known, func(l *Link) { l.Name = "wl0" }), Prev: known}},
		state: map[int]Link{3: with(known, func(l *Link) { l.Name = "wl0" })},
	}, {
		name: "unknown link: what the message carries",
		msg:  wextLinkMsg(3, "wlan0", up, bssid),
		want: []Event{LinkEvent{At: later, Op: LinkAdded,
			Link: Link{Index: 3, Name: "wlan0", Kind: "wireless", AdminUp: true, Carrier: true}}},
		state: map[int]Link{3: {Index: 3, Name: "wlan0", Kind: "wireless", AdminUp: true, Carrier: true}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(defaultFilter, nil)
			if tt.setup != nil {
				fold(t, m, t0, tt.setup)
			}
			got, eff := fold(t, m, later, tt.msg)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), equateIP()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if eff != tt.effect {
				t.Errorf("effect = %b, want %b", eff, tt.effect)
			}
			if diff := cmp.Diff(tt.state, m.links, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("links (-want +got):\n%s", diff)
			}
			for _, ev := range got {
				e := ev.(LinkEvent)
				if e.Op == LinkChanged && e.Link.Oper != e.Prev.Oper {
					t.Errorf("operstate %v -> %v from a message without IFLA_OPERSTATE", e.Prev.Oper, e.Link.Oper)
				}
			}
		})
	}
	// The carrier change is a path change; a rename alone is not.
	m := newModel(defaultFilter, nil)
	fold(t, m, t0, linkMsg(known, false))
	evs, _ := fold(t, m, later, wextLinkMsg(3, "wlan0", up&^unix.IFF_LOWER_UP, [6]byte{}))
	if e := evs[0].(LinkEvent); e.Changes() != ChangedCarrier || !e.PathChanged() {
		t.Errorf("carrier loss through WEXT: Changes %v PathChanged %v, want carrier, true", e.Changes(), e.PathChanged())
	}
}
