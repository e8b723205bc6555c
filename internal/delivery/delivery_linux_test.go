//go:build linux

package delivery

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// The table's flags (see the package doc for the command).
var (
	full      = flag.Bool("delivery.full", false, "run TestDeliveryTable: every schedule and sender, full length, and print the Markdown table")
	schedules = flag.String("delivery.schedules", strings.Join(Schedules, ","), "schedules of the table, comma-separated")
	senders   = flag.String("delivery.senders", "plain,daemon,netmon,netmon:drop:stabilize=200ms,python,mqtt", "senders of the table, comma-separated: KIND or KIND:OPTION[:OPTION] with stabilize=DURATION (netmon's --stabilize; 0 disables the hold) or drop (netmon: drop connections when the Gate closes)")
	seeds     = flag.String("delivery.seeds", "1,2,3", "seeds of the schedules, comma-separated: each schedule runs once per seed and the table pools the runs")
	short     = flag.Bool("delivery.short", false, "use the short schedules in the table")
	out       = flag.String("delivery.out", "", "also write the table to this file")
	events    = flag.Bool("delivery.events", false, "log the in-process Monitor's events")
	batching  = flag.Bool("delivery.linkwatch-batching", false, "keep the kernel's once-a-second batching of the robot's carrier changes (see NewNet)")
)

// runAll runs every spec on every schedule (each name drawn from every
// seed), each run in its own namespaces and in parallel, and returns one
// row per schedule name and spec, the seeds' runs pooled, in order.
func runAll(t *testing.T, scs []Schedule, specs []Spec) []Row {
	LogEvents, LinkwatchBatching = *events, *batching
	var names []string // schedule names in order, each once
	idx := map[string]int{}
	for _, sc := range scs {
		if _, ok := idx[sc.Name]; !ok {
			idx[sc.Name] = len(names)
			names = append(names, sc.Name)
		}
	}
	var mu sync.Mutex
	got := map[[2]int][]Sample{}
	t.Run("runs", func(t *testing.T) {
		for _, sc := range scs {
			for j, sp := range specs {
				name := fmt.Sprintf("%s/seed%d/%s_%s_%v", sc.Name, sc.Seed, sp.Kind, sp.Stabilize, sp.Drop)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					bin := ""
					if sp.Kind == "daemon" || sp.Kind == "python" {
						bin = buildNetmon(t)
					}
					smp := Run(t, sc, sp, bin)
					t.Logf("%s on %s (seed %d): %+v", sp, sc.Name, sc.Seed, Compute(smp))
					mu.Lock()
					k := [2]int{idx[sc.Name], j}
					got[k] = append(got[k], smp)
					mu.Unlock()
				})
			}
		}
	})
	var rows []Row
	for i, name := range names {
		for j, sp := range specs {
			if len(got[[2]int{i, j}]) == 0 {
				continue // skipped (mosquitto or paho missing)
			}
			rows = append(rows, Row{Schedule: name, Sender: sp.String(), Kind: sp.Kind, Figures: Compute(got[[2]int{i, j}]...)})
		}
	}
	return rows
}

// TestDeliveryBrief runs a short edge-of-coverage schedule for the plain
// loop and netmon's Go pattern: every message must arrive and the figures
// be computed. It asserts no timing: the figures come from the table.
func TestDeliveryBrief(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	sc, err := NewSchedule("edge", 1, true)
	if err != nil {
		t.Fatal(err)
	}
	specs := []Spec{{Kind: "plain"}, {Kind: "netmon"}}
	rows := runAll(t, []Schedule{sc}, specs)
	for _, r := range rows {
		switch {
		case r.Messages < int(sc.Length/Every)/2:
			t.Errorf("%s: %d messages made in %v, want about %d", r.Sender, r.Messages, sc.Length, sc.Length/Every)
		case r.Lost != 0:
			t.Errorf("%s: %d of %d messages lost", r.Sender, r.Lost, r.Messages)
		case r.Dials < 1:
			t.Errorf("%s: %d connection attempts counted", r.Sender, r.Dials)
		case r.DownTime <= 0:
			t.Errorf("%s: no outage applied", r.Sender)
		}
	}
	t.Logf("short edge schedule %+v:\n%s", sc.Steps, Table(rows))
}

// TestDeliveryTable prints the table of every schedule and sender (with
// -delivery.full; skipped otherwise).
func TestDeliveryTable(t *testing.T) {
	if !*full {
		t.Skip("the full table takes minutes: run with -delivery.full")
	}
	netnstest.RequirePrivileged(t)
	var scs []Schedule
	for _, name := range strings.Split(*schedules, ",") {
		for _, s := range strings.Split(*seeds, ",") {
			seed, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
			if err != nil {
				t.Fatalf("-delivery.seeds: %v", err)
			}
			sc, err := NewSchedule(strings.TrimSpace(name), seed, *short)
			if err != nil {
				t.Fatal(err)
			}
			scs = append(scs, sc)
		}
	}
	var specs []Spec
	for _, v := range strings.Split(*senders, ",") {
		sp, err := ParseSpec(strings.TrimSpace(v))
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, sp)
	}
	rows := runAll(t, scs, specs)
	tab := Table(rows)
	t.Logf("seeds %s\n%s", *seeds, tab)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(tab), 0o644); err != nil {
			t.Error(err)
		}
	}
	for _, r := range rows {
		// Our senders must lose nothing; MQTT's figures are what they are.
		if r.Lost != 0 && r.Kind != "mqtt" {
			t.Errorf("%s on %s: %d of %d messages lost", r.Sender, r.Schedule, r.Lost, r.Messages)
		}
	}
}

func TestParseSpec(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Spec
		bad  bool
	}{
		{in: "plain", want: Spec{Kind: "plain"}},
		{in: "netmon:stabilize=0", want: Spec{Kind: "netmon", Stabilize: "0"}},
		{in: "netmon:drop:stabilize=0s", want: Spec{Kind: "netmon", Drop: true, Stabilize: "0s"}},
		{in: "daemon:stabilize=200ms", want: Spec{Kind: "daemon", Stabilize: "200ms"}},
		{in: "daemon:drop", bad: true},
		{in: "python:stabilize=0", want: Spec{Kind: "python", Stabilize: "0"}},
		{in: "python:drop", bad: true},
		{in: "plain:stabilize=0", bad: true},
		{in: "mqtt:stabilize=0", bad: true},
		{in: "netmon:stabilize=soon", bad: true},
		{in: "netmon:fast", bad: true},
		{in: "carrier-pigeon", bad: true},
	} {
		got, err := ParseSpec(c.in)
		if (err != nil) != c.bad || err == nil && got != c.want {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v, error %v", c.in, got, err, c.want, c.bad)
		}
	}
}
