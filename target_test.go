package netmon

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Target
	}{
		{"10.1.0.5", Target{Addr: netip.MustParseAddr("10.1.0.5")}},
		{"10.1.0.5:8883", Target{Addr: netip.MustParseAddr("10.1.0.5"), Port: 8883}},
		{"2001:db8::5", Target{Addr: netip.MustParseAddr("2001:db8::5")}},
		{"[2001:db8::5]:443", Target{Addr: netip.MustParseAddr("2001:db8::5"), Port: 443}},
		{"::ffff:10.1.0.5", Target{Addr: netip.MustParseAddr("10.1.0.5")}},
		{"broker.example.com", Target{Host: "broker.example.com"}},
		{"broker.example.com:8883", Target{Host: "broker.example.com", Port: 8883}},
		{"robot-server_1.local.", Target{Host: "robot-server_1.local."}},
	} {
		got, err := ParseTarget(c.in)
		c.want.Spec = c.in
		if err != nil || got != c.want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, why string }{
		{"", "empty"},
		{"10.0.0.300", "not a valid IP address"},
		{"1.2.3", "not a valid IP address"},
		{"fe80::1%eth0", "zone"},
		{"0.0.0.0", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"10.1.0.5:0", "port 0"},
		{"host:http", `port "http"`},
		{"[2001:db8::5]", "not allowed"},
		{"bad host", "not allowed"},
		{"-lead.example", "starts or ends with '-'"},
		{"a..b", "1 to 63"},
		{strings.Repeat("a", 64) + ".com", "1 to 63"},
	} {
		_, err := ParseTarget(c.in)
		if err == nil || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "want an address") {
			t.Errorf("ParseTarget(%q) error = %v, want one saying %q and what is valid", c.in, err, c.why)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"10.1.0.5", "[2001:db8::5]:443", "broker.example.com:8883", "fe80::1%eth0", "a..b", ":1", "[::]:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Addr.IsValid() == (tg.Host != "") {
			t.Fatalf("ParseTarget(%q) = %+v: want exactly one of an address and a host name", s, tg)
		}
		again, err := ParseTarget(tg.Spec)
		if err != nil || again != tg {
			t.Fatalf("ParseTarget(Spec %q) = %+v, %v; want %+v", tg.Spec, again, err, tg)
		}
	})
}
