package netmon

import (
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/gate"
)

// TestOptionsReleaseDefaults: by default a return is not held by a
// stabilisation window, and the Gates release behind a probe sender; a
// window or a release the user sets is kept.
func TestOptionsReleaseDefaults(t *testing.T) {
	probe := gate.Release{Probe: true, ProbeTimeout: DefaultProbeTimeout}
	paced := gate.Release{Rate: 10}
	for _, tc := range []struct {
		name          string
		in            Options
		wantStabilize time.Duration
		wantRelease   gate.Release
	}{
		{"defaults", Options{}, 0, probe},
		{"negative stabilize is off", Options{Stabilize: -1}, 0, probe},
		{"damping asked for", Options{Stabilize: 200 * time.Millisecond}, 200 * time.Millisecond, probe},
		{"release set by the user", Options{Gate: gate.Config{Release: paced}}, 0, paced},
		{"probe without a timeout", Options{Gate: gate.Config{Release: gate.Release{Probe: true}}}, 0, gate.Release{Probe: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.in.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			if o.Stabilize != tc.wantStabilize || o.Gate.Release != tc.wantRelease {
				t.Fatalf("Stabilize %v, Release %+v; want %v, %+v", o.Stabilize, o.Gate.Release, tc.wantStabilize, tc.wantRelease)
			}
		})
	}
}
