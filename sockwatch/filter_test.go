package sockwatch

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestConfigValidateFilters(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name     string
		cfg      Config
		wantErr  string         // substring; "" means valid
		wantDsts []netip.Prefix // Destinations after validate
	}{
		{name: "no filters", cfg: Config{}},
		{name: "cgroups", cfg: Config{Cgroups: []uint64{1, 4242}}},
		{name: "cgroup 0", cfg: Config{Cgroups: []uint64{7, 0}}, wantErr: "Config.Cgroups[1] is 0: want a cgroup v2 ID, the inode number of a cgroup directory"},
		{name: "empty destinations", cfg: Config{Destinations: []netip.Prefix{}}},
		{name: "destinations", cfg: Config{Destinations: []netip.Prefix{pfx("10.0.0.0/8"), pfx("2001:db8::/32"), pfx("192.0.2.1/32")}},
			wantDsts: []netip.Prefix{pfx("10.0.0.0/8"), pfx("2001:db8::/32"), pfx("192.0.2.1/32")}},
		{name: "host bits cleared", cfg: Config{Destinations: []netip.Prefix{pfx("10.1.2.3/8")}},
			wantDsts: []netip.Prefix{pfx("10.0.0.0/8")}},
		{name: "v4-mapped written as v4", cfg: Config{Destinations: []netip.Prefix{pfx("::ffff:10.0.0.0/104"), pfx("::ffff:0:0/96")}},
			wantDsts: []netip.Prefix{pfx("10.0.0.0/8"), pfx("0.0.0.0/0")}},
		{name: "zero prefix", cfg: Config{Destinations: []netip.Prefix{pfx("10.0.0.0/8"), {}}},
			wantErr: "Config.Destinations[1] is not a valid prefix: want an IPv4 or IPv6 prefix such as 10.0.0.0/8"},
		{name: "bits out of range", cfg: Config{Destinations: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 33)}},
			wantErr: "Config.Destinations[0] is not a valid prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var orig []netip.Prefix
			if tc.cfg.Destinations != nil {
				orig = append([]netip.Prefix{}, tc.cfg.Destinations...)
			}
			got, err := tc.cfg.validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "sockwatch: ") {
					t.Errorf("validate: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if diff := cmp.Diff(tc.wantDsts, got.Destinations, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("Destinations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(orig, tc.cfg.Destinations, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
				t.Errorf("validate modified the caller's Destinations (-before +after):\n%s", diff)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	pfx := netip.MustParsePrefix
	ev := func(cgroup uint64, dst string) Event {
		e := Event{Cgroup: cgroup}
		if dst != "" {
			e.Dst = netip.MustParseAddrPort(dst)
		}
		return e
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		ev   Event
		want bool
	}{
		{"no filter", Config{}, ev(0, ""), true},
		{"cgroup in set", Config{Cgroups: []uint64{5, 9}}, ev(9, "10.0.0.5:443"), true},
		{"cgroup not in set", Config{Cgroups: []uint64{5, 9}}, ev(7, "10.0.0.5:443"), false},
		{"cgroup unknown", Config{Cgroups: []uint64{5}}, ev(0, "10.0.0.5:443"), false},
		{"v4 in prefix", Config{Destinations: []netip.Prefix{pfx("10.0.0.0/8")}}, ev(0, "10.0.0.5:443"), true},
		{"v4 outside prefix", Config{Destinations: []netip.Prefix{pfx("10.0.0.0/8")}}, ev(0, "192.0.2.1:443"), false},
		{"v4 host", Config{Destinations: []netip.Prefix{pfx("192.0.2.1/32")}}, ev(0, "192.0.2.1:53"), true},
		{"v6 in prefix", Config{Destinations: []netip.Prefix{pfx("10.0.0.0/8"), pfx("2001:db8::/32")}}, ev(0, "[2001:db8::1]:443"), true},
		{"v6 against v4 prefix", Config{Destinations: []netip.Prefix{pfx("0.0.0.0/0")}}, ev(0, "[2001:db8::1]:443"), false},
		{"v4-mapped against v4 prefix", Config{Destinations: []netip.Prefix{pfx("10.0.0.0/8")}}, ev(0, "[::ffff:10.0.0.5]:443"), true},
		{"v4 against v4-mapped prefix", Config{Destinations: []netip.Prefix{pfx("::ffff:10.0.0.0/104")}}, ev(0, "10.0.0.5:443"), true},
		{"no destination", Config{Destinations: []netip.Prefix{pfx("0.0.0.0/0"), pfx("::/0")}}, ev(0, ""), false},
		{"both match", Config{Cgroups: []uint64{5}, Destinations: []netip.Prefix{pfx("10.0.0.0/8")}}, ev(5, "10.0.0.5:443"), true},
		{"cgroup matches, destination not", Config{Cgroups: []uint64{5}, Destinations: []netip.Prefix{pfx("10.0.0.0/8")}}, ev(5, "192.0.2.1:443"), false},
		{"destination matches, cgroup not", Config{Cgroups: []uint64{5}, Destinations: []netip.Prefix{pfx("10.0.0.0/8")}}, ev(6, "10.0.0.5:443"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.cfg.validate()
			if err != nil {
				t.Fatal(err)
			}
			if got := newFilter(cfg).match(tc.ev); got != tc.want {
				t.Errorf("match(cgroup %d, dst %v) = %v, want %v", tc.ev.Cgroup, tc.ev.Dst, got, tc.want)
			}
		})
	}
}

func TestValidateExported(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	err := Config{Comms: []string{"a-name-longer-than-15"}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "want 1 to 15 bytes") {
		t.Fatalf("over-long comm: %v, want an error naming the 15-byte limit", err)
	}
}
