package wifiwatch

import (
	"strings"
	"testing"
)

func TestBandsClassify(t *testing.T) {
	b := DefaultBands()
	tests := []struct {
		name string
		dbm  int
		prev Band
		want Band
	}{
		{"first reading good", -50, BandUnknown, BandGood},
		{"first reading on the good edge", -67, BandUnknown, BandGood},
		{"first reading just below good", -68, BandUnknown, BandFair},
		{"first reading critical", -83, BandUnknown, BandCritical},
		{"good stays within hysteresis", -69, BandGood, BandGood},
		{"good drops 3 dB below the edge", -70, BandGood, BandFair},
		{"fair stays at the edge", -67, BandFair, BandFair},
		{"fair stays 2 dB above its top", -66, BandFair, BandFair},
		{"fair rises 3 dB above its top", -65, BandFair, BandGood},
		{"weak rises 3 dB above its top", -73, BandWeak, BandFair},
		{"critical stays 2 dB above its top", -82, BandCritical, BandCritical},
		{"weak stays within hysteresis", -84, BandWeak, BandWeak},
		{"weak drops 3 dB below", -85, BandWeak, BandCritical},
		{"good falls through several bands", -90, BandGood, BandCritical},
		{"critical rises to good at once", -60, BandCritical, BandGood},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Classify(tt.dbm, tt.prev, 3); got != tt.want {
				t.Fatalf("Classify(%d, %v, 3) = %v, want %v", tt.dbm, tt.prev, got, tt.want)
			}
		})
	}
	for _, hyst := range []int{0, 1} {
		if got := b.Classify(-68, BandGood, hyst); got != BandFair {
			t.Fatalf("hysteresis %d: -68 from good = %v, want fair", hyst, got)
		}
		if got := b.Classify(-67, BandFair, hyst); got != BandGood {
			t.Fatalf("hysteresis %d: -67 from fair = %v, want good", hyst, got)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.PollInterval != DefaultPollInterval || c.Hysteresis != DefaultHysteresis || c.Bands != DefaultBands() || c.Logger == nil || c.RoamWindow != DefaultRoamWindow {
		t.Fatalf("defaults: %+v", c)
	}
	if c, _ := (Config{Hysteresis: -1}).withDefaults(); c.Hysteresis != 0 {
		t.Fatalf("negative hysteresis gives %d, want 0 (disabled)", c.Hysteresis)
	}
	for _, tt := range []struct {
		cfg   Config
		field string
	}{
		{Config{PollInterval: -1}, "PollInterval"},
		{Config{RoamWindow: -1}, "RoamWindow"},
		{Config{Hysteresis: 40}, "Hysteresis"},
		{Config{Bands: Bands{Good: -80, Fair: -70, Weak: -60}}, "Bands"},
		{Config{Bands: Bands{Good: 10, Fair: -70, Weak: -80}}, "Bands"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), "Config."+tt.field) {
			t.Errorf("New(%+v) error %v, want one naming Config.%s", tt.cfg, err, tt.field)
		}
	}
	if _, err := NewWithDial(Config{}, nil); err == nil {
		t.Error("NewWithDial with a nil dial: no error")
	}
}

func TestBandString(t *testing.T) {
	for b, want := range map[Band]string{BandUnknown: "unknown", BandCritical: "critical", BandWeak: "weak", BandFair: "fair", BandGood: "good", Band(9): "band(9)"} {
		if got := b.String(); got != want {
			t.Errorf("Band(%d).String() = %q, want %q", b, got, want)
		}
	}
}
